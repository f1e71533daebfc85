"""Listening sockets: what closing (or shutting down) a listener does to the connections queued on it, and what
a full accept queue does to new ones. Several clients share one wire here, so segments are matched per
connection (client port) with `lab.wire.conn(port)`."""

import socket
import time

import pytest

from conformance.claims import Key
from fixtures.kernel_changes import REQUEST_SOCK_ON_LISTENER_CLOSE
from fixtures.lab import SERVER_PORT
from fixtures.references import reference
from fixtures.tolerance import PROMPT_S, prompt_window, timer_window, wait_s

TIMEOUT_INIT_S = 1.0  # include/net/tcp.h TCP_TIMEOUT_INIT: first SYN and SYN-ACK retransmission timeout
QUEUED = 3


def queue_established_children(lab, n=QUEUED):
    """n clients whose handshakes completed into the accept queue, none accepted; returns (clients, children)."""
    clients = [lab.connect_client(name=f"queued{i}") for i in range(n)]
    children = [lab.watch_peer(c) for c in clients]
    for child in children:
        lab.wait_state(child, "ESTABLISHED", within=PROMPT_S)
    lab.expect_equal("listener accept queue (sock_diag rqueue)", lab.state("listener").rqueue, n,
                     why="set-up: every handshake completed into the accept queue")
    return clients, children


def half_open(lab, name):
    """A client whose final handshake ACK never reaches the server: ESTABLISHED on the client, a request sock
    (reported as SYN_RECV) on the server. Needs a drop rule on pure ACKs towards the server."""
    client = lab.start_connect(name)
    request = lab.watch_peer(client)
    lab.wait_state(name, "ESTABLISHED", within=PROMPT_S)
    lab.wait_state(request, "SYN_RECV", within=PROMPT_S)
    return client, request


LINGER = {"linger-off": None, "linger-0": (1, 0), "linger-5": (1, 5)}


@pytest.mark.parametrize("linger", list(LINGER))
@reference("RFC 9293 §3.10.4 (CLOSE in LISTEN: any outstanding RECEIVEs are returned)", "RFC 9293 §3.10.5",
           kernel=("net/ipv4/tcp.c __tcp_close() (TCP_LISTEN branch)",
                   "net/ipv4/inet_connection_sock.c inet_csk_listen_stop() inet_child_forget()",
                   "net/ipv4/tcp.c tcp_disconnect()"))
def test_close_resets_every_unaccepted_child(lab, linger):
    """close() of a listener resets every established child still in its accept queue, at once, whatever SO_LINGER.

    __tcp_close() on a TCP_LISTEN socket goes straight to inet_csk_listen_stop(), which takes each child off the
    accept queue and calls inet_child_forget() -> tcp_disconnect(): an ESTABLISHED child needs a reset
    (tcp_need_reset), so each client gets an RST+ACK from its own child. The linger branch of __tcp_close() is
    never reached for a listener, so SO_LINGER {1,0} or {1,5} changes nothing and close() does not block. No
    FIN is sent (the old comment in inet_csk_listen_stop() weighs a normal FIN close against an active reset)."""
    lab.listen()
    clients, children = queue_established_children(lab)
    if LINGER[linger] is not None:
        lab.listener.set_linger(True, LINGER[linger][1])
    lab.listener.close()
    closed = lab.log.last("listener", "close")
    lab.expect_duration("close() of the listener", closed.t, closed.t_end, prompt_window(), "syscall")
    for client, child in zip(clients, children, strict=True):
        lab.wire.conn(client.port).expect("server", "RA", within=PROMPT_S, since=closed.t,
                  why="inet_child_forget() -> tcp_disconnect() resets an ESTABLISHED child")
        lab.wire.conn(client.port).expect_no("server", has="F", during=0.1, since=closed.t)
        lab.wait_gone(child, within=PROMPT_S)
        lab.wait_gone(client.name, within=PROMPT_S, why="the client socket is closed by the RST")
    lab.wait_gone("listener", within=PROMPT_S)
    for child in children:
        lab.expect_states_seen(child, ["ESTABLISHED", "CLOSED"])
    lab.expect_nstat("server", "TcpOutRsts", QUEUED)
    lab.expect_nstat("client", "TcpEstabResets", QUEUED)


@reference("RFC 9293 §3.10.7.4 (RST in ESTABLISHED: RECEIVE and SEND get 'connection reset')",
           kernel=("net/ipv4/tcp_input.c tcp_reset()", "include/net/sock.h sock_error()",
                   "net/ipv4/tcp.c tcp_recvmsg_locked() tcp_sendmsg_locked()"))
def test_client_of_a_reset_child_sees_econnreset_once(lab):
    """The client of a reset child reads ECONNRESET once; after that recv() returns EOF and send() fails EPIPE.

    tcp_reset() stores ECONNRESET in sk_err and tcp_done() shuts both directions. The first recv() or send()
    reports sk_err and clears it (sock_error()); later calls only see the shutdown: recv() returns 0 (EOF),
    send() fails with EPIPE. Nothing goes on the wire from the client: it has no socket state left to speak for."""
    lab.listen()
    (reader, writer), _children = queue_established_children(lab, n=2)
    lab.listener.close()
    closed = lab.log.last("listener", "close")
    for client in (reader, writer):
        lab.wire.conn(client.port).expect("server", "RA", within=PROMPT_S, since=closed.t)
        lab.wait_gone(client.name, within=PROMPT_S)
    lab.expect_errno(reader, "recv", 100, errno_name="ECONNRESET", why="first recv() after the RST")
    lab.expect_equal("second recv() after the RST", reader.recv(100), b"", why="EOF")
    lab.expect_errno(writer, "send", b"x", errno_name="ECONNRESET", why="first send() after the RST")
    lab.expect_errno(writer, "send", b"x", errno_name="EPIPE", why="second send() after the RST")
    for client in (reader, writer):
        lab.wire.conn(client.port).expect_no("client", during=0.05, since=closed.t,
                       why="a reset socket sends nothing, not even for the failed send()")


@reference("RFC 9293 §3.10.4", kernel=("net/ipv4/inet_connection_sock.c inet_csk_listen_stop()",
                                       "include/net/request_sock.h reqsk_queue_remove()"))
def test_accepted_child_survives_listener_close(lab):
    """Closing the listener does not touch a connection already accept()ed; only the queued sibling is reset.

    inet_csk_listen_stop() walks only the accept queue (reqsk_queue_remove()); an accepted socket has left it
    and is an independent socket with its own file. It keeps exchanging data and later closes with the usual
    FIN handshake."""
    lab.listen()
    accepted_client = lab.connect_client(name="accepted-client")
    server = lab.accept(name="server")
    queued, _children = queue_established_children(lab, n=1)
    lab.listener.close()
    closed = lab.log.last("listener", "close")
    lab.wire.conn(queued[0].port).expect("server", "RA", within=PROMPT_S, since=closed.t)
    lab.wire.conn(accepted_client.port).expect_no("server", during=0.1, since=closed.t,
                   why="nothing is sent on the accepted connection")
    lab.expect_state("server", "ESTABLISHED")
    lab.expect_state("accepted-client", "ESTABLISHED")
    server.sendall(b"still here")
    lab.expect_equal("accepted-client reads", accepted_client.recv_exactly(10), b"still here")
    accepted_client.sendall(b"me too")
    lab.expect_equal("server reads", server.recv_exactly(6), b"me too")
    accepted_client.close()
    lab.wire.conn(accepted_client.port).expect("client", "FA", within=PROMPT_S, since=lab.log.last().t)
    lab.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)


@reference("RFC 9293 §3.10.4", "RFC 2525 §2.17", kernel=("net/ipv4/inet_connection_sock.c inet_child_forget()",
                                                        "net/ipv4/tcp.c tcp_disconnect()"))
def test_unaccepted_child_with_unread_data_is_reset_acknowledging_it(lab):
    """Data sent to a child never accepted is acknowledged, then lost: the listener's close() resets the child.

    The child is a full socket: it acknowledges the client's bytes and queues them (rqueue in sock_diag) though
    no application can read them. inet_child_forget() calls tcp_disconnect(), which resets ESTABLISHED
    regardless of unread data (it is not __tcp_close(): no TCPAbortOnClose is counted). The RST acknowledges
    every byte sent, so the client cannot tell that nobody ever read them."""
    lab.listen()
    (client,), (child,) = queue_established_children(lab, n=1)
    client.sendall(b"d" * 1000)
    data = lab.wire.conn(client.port).expect("client", has="A", within=PROMPT_S, since=lab.log.last().t)
    lab.expect_equal("length of the client's data segment", data.length, 1000)
    lab.wire.conn(client.port).expect("server", "A", within=PROMPT_S, since=data.ts, why="the child acknowledges it")
    deadline = time.time() + PROMPT_S
    while lab.state(child).rqueue != 1000 and time.time() < deadline:
        time.sleep(0.002)
    lab.expect_equal("unaccepted child's receive queue (sock_diag rqueue)", lab.state(child).rqueue, 1000,
                     why="the 1000 bytes wait where no application can read them")
    lab.listener.close()
    rst = lab.wire.conn(client.port).expect("server", "RA", within=PROMPT_S, since=lab.log.last().t)
    lab.expect_equal("RST raw ack", rst.raw_ack, (data.raw_seq + data.length) % 2**32,
                     why="the RST acknowledges all 1000 bytes")
    lab.wait_gone(child, within=PROMPT_S)
    lab.expect_errno(client, "recv", 100, errno_name="ECONNRESET")
    lab.expect_nstat("server", "TcpExtTCPAbortOnClose", 0, why="tcp_disconnect(), not __tcp_close()")


@reference("RFC 9293 §3.10.4", "RFC 9293 §3.10.7.1 (segment for no connection: RST)",
           kernel=("net/ipv4/inet_connection_sock.c inet_csk_listen_stop()",
                   "net/ipv4/inet_connection_sock.c reqsk_timer_handler()",
                   "net/ipv4/tcp_ipv4.c tcp_v4_rcv() (TCP_NEW_SYN_RECV, listener not LISTEN)"))
def test_half_open_request_outlives_listener_close_silently(lab):
    """A half-open connection gets no RST when the listener closes: its request sock dies silently ≈1 s later.

    Since Linux 4.4 a request sock (TCP_NEW_SYN_RECV, shown as SYN_RECV) is hashed on its own with the
    SYN-ACK timer; inet_csk_listen_stop() only empties the accept queue and never sees it. When the timer
    fires (TCP_TIMEOUT_INIT after the SYN-ACK), reqsk_timer_handler() finds the listener not in LISTEN and
    drops it without retransmitting the SYN-ACK or sending anything. The client, ESTABLISHED all along,
    learns only when it sends: no socket matches, tcp_v4_rcv()/tcp_v6_rcv() answer with a bare RST whose
    seq is the segment's ack (RFC 9293 §3.10.7.1 reset generation), and recv() reports ECONNRESET. (The seed
    article claims an RST is sent to each half-open connection: observed here as listener.close_half_open.)
    Where the request sock lives is kernel-keyed (request_sock_on_listener_close); kernels before 4.4 are not
    modelled and skip."""
    fate = lab.kernel_expectation(REQUEST_SOCK_ON_LISTENER_CLOSE)
    lab.listen()
    lab.drop(towards="server", name="final-handshake-ack", exactly="A")
    client, request = half_open(lab, "half-open")
    synack = lab.wire.conn(client.port).expect("server", "SA", within=PROMPT_S,
                                               since=lab.log.last("half-open", "connect").t)
    lab.listener.close()
    closed = lab.log.last("listener", "close")
    lab.wait_gone("listener", within=PROMPT_S)
    gone = None
    try:
        if fate.outlives_listener:
            lab.expect_state(request, "SYN_RECV", timer="retrans", why=fate.describe())
            gone = lab.wait_gone(request, within=wait_s(timer_window(TIMEOUT_INIT_S)), why=fate.describe())
        else:
            gone = lab.wait_gone(request, within=PROMPT_S, why=fate.describe())
    finally:
        rst_seen = bool(lab.wire.conn(client.port).all("server", has="R", since=closed.t))
        lab.observe(Key.LISTENER_CLOSE_HALF_OPEN, {"rst_seen": rst_seen, "request_gone": gone is not None},
                    "close() of the listener with one half-open connection, before the client sends anything")
    if fate.outlives_listener:
        lab.expect_duration("request sock lifetime after its SYN-ACK", synack.ts, gone,
                            timer_window(TIMEOUT_INIT_S), "sock_diag", why=fate.describe())
    lab.wire.conn(client.port).expect_no("server", during=gone - closed.t + 0.05, since=closed.t,
                   why=f"no RST and no SYN-ACK retransmission for a request whose listener is gone: {fate.describe()}")
    lab.expect_state("half-open", "ESTABLISHED", why="the client was never told")
    client.sock.setblocking(True)
    client.send(b"hello")
    sent = lab.wire.conn(client.port).expect("client", "PA", within=PROMPT_S, since=lab.log.last().t)
    rst = lab.wire.conn(client.port).expect("server", "R", within=PROMPT_S, since=sent.ts)
    lab.expect_equal("RST raw seq", rst.raw_seq, sent.raw_ack,
                     why="a reset for no connection takes its seq from the segment's ack")
    lab.wait_gone("half-open", within=PROMPT_S)
    lab.expect_errno(client, "recv", 100, errno_name="ECONNRESET")
    lab.expect_states_seen(request, ["SYN_RECV", "CLOSED"])


@reference("RFC 9293 §3.10.7.1", kernel=("net/ipv4/tcp_ipv4.c tcp_v4_rcv() (TCP_NEW_SYN_RECV, listener not LISTEN)",
                                         "net/ipv6/tcp_ipv6.c tcp_v6_rcv()",
                                         "net/ipv4/inet_connection_sock.c inet_csk_reqsk_queue_drop_and_put()"))
def test_half_open_client_sending_before_request_expires_gets_rst(lab):
    """A half-open client that sends right after the listener closed gets an RST, and its request sock goes at once.

    The data segment finds the request sock (TCP_NEW_SYN_RECV) in ehash, but its listener is no longer in
    LISTEN: tcp_v4_rcv()/tcp_v6_rcv() drop the request (inet_csk_reqsk_queue_drop_and_put()) and look up
    again; nothing matches now, so the segment is answered with a bare RST. The request does not wait for
    its timer."""
    lab.listen()
    lab.drop(towards="server", name="final-handshake-ack", exactly="A")
    client, request = half_open(lab, "half-open")
    lab.listener.close()
    lab.expect_state(request, "SYN_RECV")
    client.sock.setblocking(True)
    client.send(b"hello")
    sent = lab.wire.conn(client.port).expect("client", "PA", within=PROMPT_S, since=lab.log.last().t)
    rst = lab.wire.conn(client.port).expect("server", "R", within=PROMPT_S, since=sent.ts)
    lab.expect_equal("RST raw seq", rst.raw_seq, sent.raw_ack, why="seq = the segment's ack")
    lab.wait_gone(request, within=PROMPT_S, why="dropped by the segment, long before its SYN-ACK timer")
    lab.wait_gone("half-open", within=PROMPT_S)
    lab.expect_errno(client, "recv", 100, errno_name="ECONNRESET")
    lab.expect_nstat("server", "TcpOutRsts", 1)


@reference("RFC 9293 §3.10.7.2", kernel=("net/ipv4/tcp_input.c tcp_conn_request() (sk_acceptq_is_full: drop)",
                                         "net/ipv4/tcp_timer.c tcp_retransmit_timer() (SYN_SENT)"))
def test_syn_to_full_accept_queue_is_dropped_even_with_abort_on_overflow(lab):
    """A SYN that finds the accept queue full is dropped silently, even with tcp_abort_on_overflow=1.

    tcp_conn_request() checks sk_acceptq_is_full() before creating any request sock and drops the SYN
    (ListenOverflows and ListenDrops count it); tcp_abort_on_overflow is only consulted later, for the
    handshake's final ACK. The client just retransmits its SYN after TCP_TIMEOUT_INIT (1 s); once accept()
    has made room, that retransmission completes the handshake, so connect() takes one SYN timeout."""
    lab.sysctl("net.ipv4.tcp_abort_on_overflow", 1, sides=("server",))
    lab.listen(backlog=0)
    lab.connect_client(name="queued")
    late = lab.start_connect("late")
    syn = lab.wire.conn(late.port).expect("client", "S", within=PROMPT_S, since=lab.log.last().t)
    lab.wire.conn(late.port).expect_no("server", during=0.2, since=syn.ts, why="no SYN-ACK and no RST")
    lab.expect_state("late", "SYN_SENT")
    lab.expect_nstat("server", "TcpExtListenOverflows", 1)
    lab.expect_nstat("server", "TcpExtListenDrops", 1)
    lab.accept(name="server")
    window = timer_window(TIMEOUT_INIT_S)
    again = lab.wire.conn(late.port).expect("client", "S", within=window.high_s, since=syn.ts + 1e-6)
    lab.expect_duration("SYN retransmission after the dropped SYN", syn.ts, again.ts, window, "wire")
    lab.wire.conn(late.port).expect("server", "SA", within=PROMPT_S, since=again.ts)
    lab.wait_state("late", "ESTABLISHED", within=PROMPT_S)
    lab.expect_nstat("server", "TcpExtListenOverflows", 1)


ABORT_ON_OVERFLOW = {"abort-on-overflow-0": 0, "abort-on-overflow-1": 1, "abort-on-overflow-as-configured": None}


@pytest.mark.parametrize("mode", list(ABORT_ON_OVERFLOW))
@reference("RFC 9293 §3.10.7.4 (SYN-RECEIVED: the ACK that completes the handshake)",
           kernel=("net/ipv4/tcp_minisocks.c tcp_check_req() (listen_overflow, embryonic_reset)",
                                         "net/ipv4/tcp_ipv4.c tcp_v4_syn_recv_sock() (sk_acceptq_is_full)",
                                         "net/ipv4/inet_connection_sock.c reqsk_timer_handler() syn_ack_recalc()"))
def test_handshake_completion_into_full_accept_queue(lab, mode):
    """The ACK completing a handshake into a full accept queue: dropped (SYN-ACK resent) with 0, RST with 1.

    The client got its SYN-ACK while there was room and believes it is ESTABLISHED; its first data segment
    (which also completes the handshake) reaches tcp_check_req() when the queue is full, and
    tcp_v4_syn_recv_sock() refuses to create the child (ListenOverflows, ListenDrops). With
    tcp_abort_on_overflow=0, tcp_check_req() marks the request acked and drops the segment: the client
    retransmits its data, the request stays SYN_RECV and its timer resends the SYN-ACK TCP_TIMEOUT_INIT after
    the first, giving the application time to accept(). With 1, it jumps to embryonic_reset: a bare RST (seq =
    the segment's ack) and the client's next call reports ECONNRESET."""
    abort = ABORT_ON_OVERFLOW[mode]
    if abort is None:  # the run's configuration decides, and the case expects what it implies
        abort = lab.cfg("net.ipv4.tcp_abort_on_overflow", "server", why="RST or drop on accept-queue overflow")
    else:
        lab.sysctl("net.ipv4.tcp_abort_on_overflow", abort, sides=("server",))
    lab.listen(backlog=1)  # sk_acceptq_is_full() is ack_backlog > backlog: two children fill it
    lab.connect_client(name="queued0")
    lab.drop(towards="server", name="final-handshake-ack", exactly="A")
    filler, filler_req = half_open(lab, "queued1")
    late, late_req = half_open(lab, "late")
    first_synack = lab.wire.conn(late.port).expect("server", "SA", within=PROMPT_S,
                                                   since=lab.log.last("late", "connect").t)
    # The final ACKs stay dropped: a SYN-ACK the requests' timers resend (1 s, TCP_TIMEOUT_INIT) must not let a pure
    # ACK complete a handshake behind the case's back on a slow machine; the data segments complete them.
    for request_client in (filler, late):
        lab.wire.conn(request_client.port).allow("server", "SA", why="the request's SYN-ACK timer resends it while "
                                                                     "the final ACK is dropped")
    filler.sock.setblocking(True)
    filler.send(b"fill")
    lab.wait_state(filler_req, "ESTABLISHED", within=PROMPT_S)
    lab.expect_equal("listener accept queue (sock_diag rqueue)", lab.state("listener").rqueue, 2,
                     why="set-up: the accept queue is full")
    late.sock.setblocking(True)
    late.send(b"late")
    sent = lab.wire.conn(late.port).expect("client", "PA", within=PROMPT_S, since=lab.log.last().t)
    if abort:
        rst = lab.wire.conn(late.port).expect("server", "R", within=PROMPT_S, since=sent.ts,
                        why="tcp_abort_on_overflow=1: embryonic_reset")
        lab.expect_equal("RST raw seq", rst.raw_seq, sent.raw_ack, why="seq = the segment's ack")
        lab.wait_gone(late_req, within=PROMPT_S)
        lab.wait_gone("late", within=PROMPT_S)
        lab.expect_errno(late, "recv", 100, errno_name="ECONNRESET")
        lab.expect_nstat("server", "TcpExtListenOverflows", 1)
        lab.expect_nstat("server", "TcpExtListenDrops", 1)
        lab.expect_nstat("server", "TcpExtEmbryonicRsts", 1, why="tcp_check_req() dropped the reset request")
        return
    if not lab.cfg("net.ipv4.tcp_synack_retries", "server", why="the overflowed request's SYN-ACK is resent"):
        pytest.skip("not testable with this configuration: tcp_synack_retries=0, the overflowed request is never "
                    "given a resent SYN-ACK")
    lab.wire.conn(late.port).allow("client", "PA", len=4, why="the client retransmits its data: the overflowed "
                                   "request dropped it (tcp_abort_on_overflow=0)")
    lab.wire.conn(late.port).expect_no("server", has="R", during=PROMPT_S, since=sent.ts,
                   why="tcp_abort_on_overflow=0: the segment is dropped, no RST")
    lab.expect_state(late_req, "SYN_RECV", timer="retrans", why="the request stays, marked acked")
    lab.expect_state("late", "ESTABLISHED", why="the client does not know")
    lab.expect_equal("late client's unacked segments (TCP_INFO)", late.tcp_info()["unacked"], 1,
                     why="the client's data is still unacknowledged")
    window = timer_window(TIMEOUT_INIT_S)
    resent = lab.wire.conn(late.port).expect("server", "SA", within=window.high_s, since=first_synack.ts + 1e-6)
    lab.expect_duration("SYN-ACK retransmission of the overflowed request", first_synack.ts, resent.ts,
                        window, "wire")
    sends = len(lab.wire.conn(late.port).all("client", has="P", since=sent.ts))
    lab.expect_equal("the client retransmitted its data (2 or more transmissions)", sends >= 2, True,
                     why=f"{sends} transmissions")
    overflows = lab.nstat_delta()["server"].get("TcpExtListenOverflows", 0)
    lab.expect_equal("ListenOverflows grew by 2 or more", overflows >= 2, True,
                     why=f"each data retransmission overflows again (grew by {overflows})")


SHUTDOWN = {"SHUT_RD": True, "SHUT_WR": False, "SHUT_RDWR": True}


@pytest.mark.parametrize("how", list(SHUTDOWN))
@reference("RFC 9293 §3.10.4", kernel=("net/ipv4/af_inet.c inet_shutdown() (case TCP_LISTEN)",
                                       "net/ipv4/tcp.c tcp_disconnect() (old_state == TCP_LISTEN)",
                                       "net/ipv4/inet_connection_sock.c inet_csk_listen_stop()"))
def test_shutdown_of_a_listener(lab, how):
    """shutdown() with the read half stops a listener like close() but keeps the port; SHUT_WR does nothing.

    inet_shutdown() on a TCP_LISTEN socket ignores a shutdown without RCV_SHUTDOWN (SHUT_WR returns 0 and the
    listener keeps working). With SHUT_RD or SHUT_RDWR it calls tcp_disconnect(), which for TCP_LISTEN runs
    inet_csk_listen_stop(): queued children are reset exactly as by close(), the socket goes to CLOSE (gone
    from sock_diag), accept() fails with EINVAL, yet the file and the explicitly bound port stay, so listen()
    can be called again and new clients connect."""
    stops = SHUTDOWN[how]
    lab.listen()
    (client,), (child,) = queue_established_children(lab, n=1)
    lab.listener.shutdown(how)
    done = lab.log.last("listener", "shutdown")
    if not stops:
        lab.wire.conn(client.port).expect_no("server", during=0.1, since=done.t)
        lab.expect_state("listener", "LISTEN")
        server = lab.accept(name="server")
        server.sendall(b"ok")
        lab.expect_equal("client reads", client.recv_exactly(2), b"ok")
        return
    lab.wire.conn(client.port).expect("server", "RA", within=PROMPT_S, since=done.t)
    lab.wait_gone(child, within=PROMPT_S)
    lab.wait_gone("listener", within=PROMPT_S, why="the listener is in CLOSE, not LISTEN")
    lab.expect_errno(client, "recv", 100, errno_name="ECONNRESET")
    lab.listener.set_nonblocking()
    lab.expect_errno(lab, "accept", "server", errno_name="EINVAL",
                     why="accept() on a socket no longer listening fails with EINVAL")
    lab.log.record("listener", "listen", "8", lambda: lab.listener.sock.listen(8))
    lab.wait_state("listener", "LISTEN", within=PROMPT_S, why="the same socket listens again on its port")
    again = lab.connect_client(name="after-relisten")
    lab.listener.sock.setblocking(True)
    server = lab.accept(name="server")
    lab.expect_equal("port of the connection accepted after listen() again", server.sock.getsockname()[1],
                     SERVER_PORT)
    server.sendall(b"ok")
    lab.expect_equal("after-relisten reads", again.recv_exactly(2), b"ok")
    lab.expect_states_seen("listener", ["LISTEN", "CLOSED", "LISTEN"])



@reference("RFC 1122 §4.2.3.6", kernel=("net/ipv4/tcp_timer.c tcp_set_keepalive() (nothing armed in LISTEN)",
                                       "net/ipv4/inet_connection_sock.c inet_csk_listen_stop()"))
def test_listener_with_so_keepalive_has_no_timer(lab):
    """A listening socket with SO_KEEPALIVE has no timer at all: there is no keepalive timer for close() to remove.

    tcp_set_keepalive() arms the keepalive timer only for sockets not in CLOSE or LISTEN; a listener's only
    timers belong to its request socks, each hashed with its own (since 4.4). sock_diag reads timer none."""
    lab.listen()
    lab.listener.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, "SO_KEEPALIVE 1")
    st = lab.state("listener")
    lab.observe(Key.LISTENER_KEEPALIVE_TIMER, str(st.timer), f"listener with SO_KEEPALIVE: {st.describe()}")
    lab.expect_state("listener", "LISTEN", timer="none", why="tcp_set_keepalive() arms nothing in LISTEN")
