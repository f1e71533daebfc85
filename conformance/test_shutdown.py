"""shutdown(2) on a TCP socket: which call sends the FIN, in which order with close() and the peer's close,
what SHUT_RD really does on Linux, and shutdown() on sockets that are not connected."""

import errno
import signal
import socket
import threading

import pytest

from conformance.support_orderings import signal_blocked
from fixtures.references import reference
from fixtures.states import GONE
from fixtures.tolerance import PROMPT_S, prompt_window

WRITE_SIDE = {"SHUT_WR", "SHUT_RDWR"}


def _errno_of(call):  # type: ignore[no-untyped-def]
    """The errno name a call fails with, or "0"."""
    try:
        call()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return "0"
READ_SIDE = {"SHUT_RD", "SHUT_RDWR"}

# The client's state after each step, per shutdown mode and order: (state, sock_diag timer or None).
# A FIN_WAIT2 whose fd is open has no timer; once orphaned ("orphan") it has the timer the configuration implies
# (a timewait mini-socket for tcp_fin_timeout, or the keepalive timer above TCP_TIMEWAIT_LEN: lab.orphan_fin_wait2).
ORDERS = {
    "shutdown-close-peerclose": ("shutdown", "close", "peer-close"),
    "shutdown-peerclose-close": ("shutdown", "peer-close", "close"),
    "peerclose-shutdown-close": ("peer-close", "shutdown", "close"),
}
AFTER = {
    ("write", "shutdown-close-peerclose"): [("FIN_WAIT2", "none"), ("FIN_WAIT2", "orphan"),
                                            ("TIME_WAIT", "timewait")],
    ("read", "shutdown-close-peerclose"): [("ESTABLISHED", "none"), ("FIN_WAIT2", "orphan"),
                                           ("TIME_WAIT", "timewait")],
    ("write", "shutdown-peerclose-close"): [("FIN_WAIT2", "none"), ("TIME_WAIT", "timewait"),
                                            ("TIME_WAIT", "timewait")],
    ("read", "shutdown-peerclose-close"): [("ESTABLISHED", "none"), ("CLOSE_WAIT", "none"), (GONE, None)],
    ("write", "peerclose-shutdown-close"): [("CLOSE_WAIT", "none"), (GONE, None), (GONE, None)],
    ("read", "peerclose-shutdown-close"): [("CLOSE_WAIT", "none"), ("CLOSE_WAIT", "none"), (GONE, None)],
}


@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("how", ["SHUT_WR", "SHUT_RD", "SHUT_RDWR"])
@reference("RFC 9293 §3.10.4 (CLOSE)", "RFC 9293 §3.6", "RFC 1122 §4.2.2.13",
           kernel=("net/ipv4/af_inet.c inet_shutdown()", "net/ipv4/tcp.c tcp_shutdown() tcp_close_state()",
                   "net/ipv4/tcp.c __tcp_close()", "net/ipv4/tcp_input.c tcp_fin()"))
def test_shutdown_then_close_in_each_order_with_peer_close(pair, how, order):
    """shutdown(how) and close() in each order with the peer's close: one FIN, sent by the call that closes the
    write side, and the states that follow.

    tcp_shutdown() sends the FIN only when SEND_SHUTDOWN is asked (SHUT_WR, SHUT_RDWR): SHUT_RD sends nothing
    and leaves the FIN to close(). A FIN_WAIT2 with the fd open has no timer; close() orphans it into a
    timewait mini-socket. In CLOSE_WAIT, shutdown(SHUT_WR) alone sends the FIN and the socket goes through
    LAST_ACK to CLOSED while the fd is still open; the later close() then has nothing to send. Whoever's FIN
    goes first, the other side is the one left without TIME_WAIT."""
    mode = "write" if how in WRITE_SIDE else "read"
    fin_step = "shutdown" if mode == "write" else "close"
    steps = {"shutdown": lambda: pair.client.shutdown(how), "close": pair.client.close,
             "peer-close": pair.server.close}
    sequence = ORDERS[order]
    if sequence.index(fin_step) > sequence.index("peer-close"):
        pair.requires_time_wait("server", why="the server's orphaned FIN_WAIT2 takes the client's FIN")
    elif sequence.index("close") < sequence.index("peer-close"):
        pair.requires_time_wait("client", why="the client's orphaned FIN_WAIT2 takes the server's FIN")
    fin = None
    for step, (state, timer) in zip(ORDERS[order], AFTER[(mode, order)], strict=True):
        if step == fin_step == "close" and timer == "orphan":  # the orphan's path is the configuration's (lab.py)
            fin, _ack = pair.close_holding_fin_ack("client")
        else:
            steps[step]()
        if step == fin_step and fin is None:
            fin = pair.wire.expect("client", "FA", within=PROMPT_S, why=f"{step}() closes the write side")
        if step == "peer-close":
            pair.wire.expect("server", "FA", within=PROMPT_S)
        pair.wait_state("client", state, within=PROMPT_S, why=f"after {step}")
        if timer == "orphan":
            pair.expect_orphan_fin_wait2("client", why=f"after {step}")
        elif timer is not None:
            pair.expect_state("client", state, timer=timer, why=f"after {step}")
    client_fin_first = ORDERS[order].index(fin_step) < ORDERS[order].index("peer-close")
    if client_fin_first:
        pair.wait_gone("server", within=PROMPT_S, why="the server closed last: LAST_ACK, then gone")
    else:
        pair.wait_state("server", "TIME_WAIT", within=PROMPT_S, why="the server's FIN went first")
    fins = pair.wire.all("client", has="F")
    pair.expect_equal("FINs the client sent", len({f.seq for f in fins}), 1,
                      why=f"exactly one FIN, at {fin_step}() (a retransmission of it is the same FIN)")
    call = pair.log.last("client", fin_step)
    pair.expect_equal(f"the FIN left during {fin_step}()", call.t <= fin.ts <= call.t_end, True,
                      why="it is sent from the syscall")


@reference("RFC 9293 §3.10.4 (no SHUT_RD in TCP)", "RFC 1122 §4.2.2.13",
           kernel=("net/ipv4/af_inet.c inet_shutdown()", "net/ipv4/tcp.c tcp_shutdown()",
                   "net/ipv4/tcp.c tcp_recvmsg_locked()", "net/ipv4/tcp_input.c tcp_data_queue()"))
def test_shut_rd_then_peer_data_is_acked_queued_and_readable(pair):
    """shutdown(SHUT_RD) sends nothing, recv() returns EOF at once, yet the peer's later data is still ACKed,
    queued and returned by recv().

    TCP has no half-close of the receive side: inet_shutdown() only sets RCV_SHUTDOWN, tcp_shutdown() returns
    without sending. tcp_recvmsg_locked() copies whatever is queued and only when the queue is empty stops on
    RCV_SHUTDOWN (EOF instead of blocking); tcp_data_queue() keeps accepting and acknowledging in-window data
    in ESTABLISHED. (BSDs discard data arriving after SHUT_RD; Linux does not.) Sending still works, and a
    later close() with everything read is an ordinary FIN."""
    pair.client.set_nonblocking()
    pair.client.shutdown("SHUT_RD")
    pair.expect_equal("client recv() after SHUT_RD", pair.client.recv(), b"", why="EOF at once, not EAGAIN")
    pair.server.sendall(b"d" * 1000)
    data = pair.wire.expect("server", "PA", len=1000, within=PROMPT_S)
    pair.wire.expect("client", "A", ack=data.seq + 1000, within=PROMPT_S, why="data after SHUT_RD is ACKed")
    queued = pair.expect_state("client", "ESTABLISHED")
    pair.expect_equal("client receive queue (sock_diag rqueue, FIONREAD)", [queued.rqueue, pair.client.unread_bytes()],
                      [1000, 1000], why="the data is queued, not dropped")
    pair.expect_equal("client recv() of the queued data", pair.client.recv(), b"d" * 1000,
                      why="queued data is still returned after SHUT_RD")
    pair.expect_equal("client recv() once the queue is empty", pair.client.recv(), b"", why="then EOF again")
    pair.client.send(b"still-writing")
    pair.expect_equal("server reads", pair.server.recv_exactly(13), b"still-writing")
    pair.client.close()
    pair.wire.expect("client", "FA", within=PROMPT_S, why="nothing unread: an ordinary FIN")
    pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    pair.expect_equal("RSTs the client sent", pair.wire.count("client", has="R"), 0)
    pair.expect_nstat("client", "TcpExtTCPAbortOnData", 0)


@pytest.mark.parametrize("flags, raises_sigpipe", [
    pytest.param(0, True, id="default"),
    pytest.param(socket.MSG_NOSIGNAL, False, id="MSG_NOSIGNAL"),
])
@reference("RFC 9293 §3.10.2 (SEND in FIN-WAIT: error)",
           kernel=("net/ipv4/tcp.c tcp_sendmsg_locked()", "net/core/stream.c sk_stream_error()"))
def test_send_after_shut_wr_fails_with_epipe(pair, flags, raises_sigpipe):
    """send() after shutdown(SHUT_WR) fails with EPIPE and raises SIGPIPE unless MSG_NOSIGNAL; nothing is sent.

    tcp_sendmsg_locked() checks SEND_SHUTDOWN before queueing anything and goes to sk_stream_error(), which
    returns -EPIPE and sends SIGPIPE to the caller unless MSG_NOSIGNAL. Python sets SIGPIPE to SIG_IGN, so
    the program sees BrokenPipeError; the signal is observed here by blocking it (a blocked signal stays
    pending even when ignored). The peer reads EOF and no data."""
    pair.expect_equal("SIGPIPE disposition", signal.getsignal(signal.SIGPIPE), signal.SIG_IGN,
                      why="set-up: Python ignores SIGPIPE at start-up")
    pair.client.shutdown("SHUT_WR")
    pair.wire.expect("client", "FA", within=PROMPT_S)
    label = "3 bytes" + (" MSG_NOSIGNAL" if flags else "")
    with signal_blocked(signal.SIGPIPE):
        pair.expect_equal(f"client send({label}) errno",
                          _errno_of(lambda: pair.log.record("client", "send", label,
                                                            lambda: pair.client.sock.send(b"abc", flags))),
                          "EPIPE", why="SEND_SHUTDOWN: sk_stream_error()")
        pending = signal.SIGPIPE in signal.sigpending()
    pair.expect_equal(f"SIGPIPE pending after send({label})", pending, raises_sigpipe)
    pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    pair.expect_equal("server recv()", pair.server.recv(), b"", why="the peer reads EOF, no data")
    pair.expect_equal("data segments the client sent", [s.length for s in pair.wire.all("client") if s.length], [])


@pytest.mark.parametrize("how", ["SHUT_WR", "SHUT_RD", "SHUT_RDWR"])
@reference("RFC 9293 §3.10.4 (CLOSE in CLOSED: error: connection does not exist)",
           kernel=("net/ipv4/af_inet.c inet_shutdown() (TCP_CLOSE: -ENOTCONN, then sk_shutdown |= how)",
                   "net/ipv4/tcp.c tcp_sendmsg_locked()", "net/ipv4/tcp.c tcp_recvmsg_locked()"))
def test_shutdown_unconnected_fails_enotconn_but_latches(lab, how):
    """shutdown() on an unconnected socket fails with ENOTCONN, yet the shutdown sticks through a later connect().

    inet_shutdown() returns -ENOTCONN for TCP_CLOSE but falls through ("hack to wake up other listeners")
    and still ORs `how` into sk_shutdown; connect() never clears it. So after a successful connect(), a
    latched SHUT_WR makes send() fail with EPIPE and a latched SHUT_RD makes recv() return EOF at once,
    although the handshake was normal, no FIN is sent, and the peer's data is still received."""
    lab.listen()
    sock = lab.socket("client")
    sock.bind((lab.family.client, 0))
    lab.client = lab.adopt("client", sock, "client")
    lab.expect_errno(lab.client, "shutdown", how, errno_name="ENOTCONN", why="TCP_CLOSE")
    lab.connect_endpoint(lab.client)
    lab.server = lab.accept()
    lab.wire.expect("client", "A", within=PROMPT_S, why="the handshake completes as usual")
    lab.expect_state("client", "ESTABLISHED")
    lab.client.set_nonblocking()
    if how in READ_SIDE:
        lab.expect_equal("client recv()", lab.client.recv(), b"",
                         why="a latched SHUT_RD: recv() returns EOF before any data")
    else:
        lab.expect_errno(lab.client, "recv", errno_name="EAGAIN", why="nothing to read, non-blocking")
    if how in WRITE_SIDE:
        lab.expect_errno(lab.client, "send", b"abc", errno_name="EPIPE", why="a latched SHUT_WR")
    else:
        lab.client.send(b"abc")
        lab.expect_equal("server reads", lab.server.recv_exactly(3), b"abc")
    lab.server.sendall(b"hello")
    lab.client.wait_readable(PROMPT_S)
    lab.expect_equal("client recv()", lab.client.recv(), b"hello", why="data from the peer is still received")
    lab.expect_equal("FINs the client sent", lab.wire.count("client", has="F"), 0,
                     why="a latched SHUT_WR sends no FIN")
    lab.expect_state("client", "ESTABLISHED")


@pytest.mark.parametrize("how", ["SHUT_WR", "SHUT_RD", "SHUT_RDWR"])
@reference("RFC 9293 §3.10.4 (CLOSE in LISTEN)",
           kernel=("net/ipv4/af_inet.c inet_shutdown() (TCP_LISTEN: disconnect only with RCV_SHUTDOWN)",
                   "net/ipv4/tcp.c tcp_disconnect()", "net/ipv4/inet_connection_sock.c inet_csk_listen_stop()",
                   "net/ipv4/inet_connection_sock.c inet_csk_accept()"))
def test_shutdown_listener_with_queued_connection(lab, how):
    """shutdown() on a listener: SHUT_WR does nothing; SHUT_RD/SHUT_RDWR stop listening and reset the queue.

    For TCP_LISTEN, inet_shutdown() ignores a shutdown without RCV_SHUTDOWN. With it, it calls
    tcp_disconnect(): inet_csk_listen_stop() resets every connection still in the accept queue (RST), the
    socket goes to CLOSE, accept() fails with EINVAL and new SYNs are refused, yet the fd stays usable:
    listen() again re-opens the same port (unlike close())."""
    lab.listen()
    queued = lab.connect_client("queued")
    lab.wire.expect("client", "A", within=PROMPT_S, why="handshake complete, not accepted yet")
    lab.listener.shutdown(how)
    if how not in READ_SIDE:
        lab.expect_state("listener", "LISTEN")
        lab.accept("accepted")
        lab.expect_state("queued", "ESTABLISHED")
        lab.expect_equal("RSTs the server sent", lab.wire.count("server", has="R"), 0,
                         why="SHUT_WR on a listener resets nothing")
        return
    lab.wire.expect("server", "RA", within=PROMPT_S, why="the queued connection is reset")
    lab.wait_gone("queued", within=PROMPT_S)
    lab.expect_errno(queued, "recv", errno_name="ECONNRESET")
    lab.wait_gone("listener", within=PROMPT_S, why="no longer LISTEN")
    lab.expect_errno(lab, "accept", "never", errno_name="EINVAL", why="the socket is no longer LISTEN")
    lab.expect_errno(lab, "connect_client", "refused", errno_name="ECONNREFUSED", why="no listener: RST")
    lab.wire.expect("server", "RA", within=PROMPT_S, why="no listener: the SYN is refused")
    lab.log.record("listener", "listen", "16 (again)", lambda: lab.listener.sock.listen(16))
    lab.wait_state("listener", "LISTEN", within=PROMPT_S)
    lab.connect_client("after-relisten")
    lab.expect_state("after-relisten", "ESTABLISHED")


@pytest.mark.parametrize("how", ["SHUT_RD", "SHUT_WR"])
@reference("RFC 9293 §3.10.4 (CLOSE in LISTEN)",
           kernel=("net/ipv4/af_inet.c inet_shutdown() (sk->sk_state_change())",
                   "net/ipv4/inet_connection_sock.c inet_csk_wait_for_connect()"))
def test_shutdown_listener_and_a_blocked_accept(lab, how):
    """shutdown(SHUT_RD) on a listener wakes a thread blocked in accept() at once with EINVAL; SHUT_WR does not.

    inet_shutdown() ends with sk_state_change(), which wakes the accept() sleeper; inet_csk_wait_for_connect()
    then sees the socket is no longer LISTEN and returns -EINVAL. With SHUT_WR the listener is untouched: the
    accept() keeps waiting and returns the next connection. This is the "temporary solution for missing
    close() in multithreaded environment" the kernel comments on."""
    lab.listen()
    result: dict[str, object] = {}

    def accept() -> None:
        try:
            result["conn"] = lab.accept("accepted")
        except OSError as exc:
            result["errno"] = exc.errno

    waiter = threading.Thread(target=accept, name="blocked-accept", daemon=True)
    waiter.start()
    lab.wait_state("listener", "LISTEN", within=PROMPT_S)
    lab.listener.shutdown(how)
    call = lab.log.last("listener", "shutdown")
    waiter.join(PROMPT_S)
    if how == "SHUT_RD":
        lab.expect_equal("blocked accept() after shutdown(SHUT_RD)",
                         [waiter.is_alive(), errno.errorcode.get(result.get("errno"), result.get("errno"))],
                         [False, "EINVAL"], why="woken at once with EINVAL")
        woke = lab.log.last("listener", "accept")
        lab.expect_duration("accept() woken by shutdown(SHUT_RD)", call.t, woke.t_end, prompt_window(), "syscall")
        lab.wait_gone("listener", within=PROMPT_S)
        return
    lab.expect_equal("accept() still blocked after shutdown(SHUT_WR)", waiter.is_alive(), True,
                     why="shutdown(SHUT_WR) on a listener must not wake accept()")
    lab.expect_state("listener", "LISTEN")
    lab.connect_client("late")
    waiter.join(PROMPT_S)
    lab.expect_equal("the blocked accept() returned a connection", "conn" in result, True, why=f"got {result}")
