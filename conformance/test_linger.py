"""SO_LINGER: the abortive close {1,0} in every state, and the lingering close {1,N}: when close() returns,
what it returns, what is sent, and when lingering does not apply (dup, O_NONBLOCK, exit)."""

from __future__ import annotations

import threading
import time

import pytest

from conformance.claims import Key
from conformance.support_linger import Holder, fill, small_window_pair
from fixtures.lab import SERVER_PORT
from fixtures.reach import reach
from fixtures.references import reference
from fixtures.tolerance import PROMPT_S, prompt_window, timer_window

LINGER_S = 1  # SO_LINGER counts whole seconds: 1 s is the shortest lingering close
READ_AFTER_S = 0.3  # a peer that reads its queue this long after close() started


# --- SO_LINGER {1,0}: abortive close ---------------------------------------------------------------

# state reached (fixtures/reach.py) -> (RST seq or None for "nothing sent", client after close, server after,
# abort counted)
LINGER0 = {
    "close-wait": (1, "CLOSED", "CLOSED", True),
    "fin-wait1": (2, "CLOSED", None, True),  # the RST is blackholed too
    "fin-wait2": (2, "CLOSED", "CLOSED", True),
    "after-shutdown-rdwr": (2, "CLOSED", "CLOSED", True),
    "last-ack": (None, "CLOSED", "TIME_WAIT", True),
    "time-wait": (None, "TIME_WAIT", "CLOSED", False),
}


@pytest.mark.parametrize("state", list(LINGER0))
@reference("RFC 9293 §3.10.5 (ABORT: RST in ESTABLISHED/FIN-WAIT/CLOSE-WAIT, none in LAST-ACK)",
           "RFC 1122 §4.2.2.13",
           kernel=("net/ipv4/tcp.c __tcp_close() (SOCK_LINGER, zero lingertime)",
                   "net/ipv4/tcp.c tcp_disconnect() tcp_need_reset()",
                   "net/ipv4/tcp_minisocks.c tcp_time_wait()"))
def test_zero_linger_close_in(pair, state):
    """SO_LINGER {1,0} resets from CLOSE_WAIT, FIN_WAIT1/2; from LAST_ACK it frees silently; TIME_WAIT stays.

    __tcp_close() hands a {1,0} socket to tcp_disconnect(), which sends an RST only if tcp_need_reset()
    lists the state (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2, SYN_RECV) or, in CLOSING/LAST_ACK, if
    data is still unsent; so a LAST_ACK socket whose FIN is out is deleted without an RST, as RFC 9293's
    ABORT says for CLOSING/LAST-ACK/TIME-WAIT. TIME_WAIT is where Linux differs: after the peer's FIN in
    FIN_WAIT2 the fd's socket is already CLOSE and a separate timewait socket holds TIME_WAIT
    (tcp_time_wait()), so close() finds nothing to abort, counts nothing, and the TIME_WAIT entry lives on
    instead of being deleted."""
    rst_seq, client_after, server_after, counted = LINGER0[state]
    if state == "time-wait":
        pair.requires_time_wait("client", why="{1,0} close() in TIME_WAIT")
    reach(pair, state)
    pair.client.set_linger(True, 0)
    pair.client.close()
    call = pair.log.last("client", "close")
    pair.expect_duration("close() with SO_LINGER {1,0}", call.t, call.t_end, prompt_window(), "syscall")
    if rst_seq is not None:
        pair.wire.expect("client", "RA", within=PROMPT_S, seq=rst_seq)
    else:
        pair.wire.expect_no("client", during=0.1, since=call.t, why="nothing is sent from this state")
    pair.wire.expect_no("client", has="F", during=0.05, since=call.t, why="an abort never sends a FIN")
    pair.wait_state("client", client_after, within=PROMPT_S)
    if client_after == "TIME_WAIT":
        pair.expect_state("client", "TIME_WAIT", timer="timewait", why="the timewait socket is not the fd's")
    if server_after is not None:
        pair.wait_state("server", server_after, within=PROMPT_S)
    pair.expect_nstat("client", "TcpExtTCPAbortOnData", 1 if counted else 0)


@pytest.mark.parametrize("socket_kind", ["unbound", "bound", "listener", "listener-with-unaccepted-child"])
@reference("RFC 9293 §3.10.5 (ABORT in LISTEN: no RST)",
           kernel=("net/ipv4/tcp.c __tcp_close() (TCP_LISTEN: inet_csk_listen_stop())",
                   "net/ipv4/inet_connection_sock.c inet_child_forget()"))
def test_zero_linger_close_without_connection(lab, socket_kind):
    """SO_LINGER {1,0} on a never-connected or listening socket sends nothing and frees the port at once.

    A socket that never connected has no peer to reset; a listener's close goes through the TCP_LISTEN
    branch of __tcp_close(), before any linger test, so SO_LINGER changes nothing: inet_csk_listen_stop()
    resets the established children still waiting in the accept queue (inet_child_forget() ->
    tcp_disconnect()), and sends nothing for the listener itself. The port can be bound again at once,
    without SO_REUSEADDR."""
    side = "server" if socket_kind.startswith("listener") else "client"
    child = None
    if side == "server":
        ep = lab.listen()
        port = SERVER_PORT
        if socket_kind == "listener-with-unaccepted-child":
            child = lab.connect_client()
            lab.wait_state("client", "ESTABLISHED", within=PROMPT_S)
    else:
        sock = lab.socket("client")
        if socket_kind == "bound":
            sock.bind((lab.family.client, 0))
        ep = lab.adopt("idle", sock, "client")
        port = ep.port
    ep.set_linger(True, 0)
    ep.close()
    call = lab.log.last(ep.name, "close")
    lab.expect_duration("close() with SO_LINGER {1,0}", call.t, call.t_end, prompt_window(), "syscall")
    if child is None:
        lab.wire.expect_no("server", during=0.1, since=call.t)
        lab.wire.expect_no("client", during=0.1, since=call.t)
    else:
        rst = lab.wire.expect("server", "RA", within=PROMPT_S, seq=1, ack=1,
                              why="the unaccepted child is reset by inet_csk_listen_stop()")
        lab.wait_gone("client", within=PROMPT_S)
        lab.wire.expect_no("server", has="F", during=0.1, since=call.t, why="an abort, not a FIN")
        lab.expect_equal("the child's RST leaves after close() began", rst.ts >= call.t, True)
    if port:
        again = lab.socket(side)
        try:
            addr = lab.family.server if side == "server" else lab.family.client
            lab.log.record(side, "bind", f"[{addr}]:{port} (no SO_REUSEADDR)", lambda: again.bind((addr, port)))
        finally:
            again.close()


# --- SO_LINGER {1,N}: lingering close ----------------------------------------------------------------

@reference("RFC 9293 §3.10.4", "POSIX close()/SO_LINGER",
           kernel=("net/ipv4/af_inet.c inet_release() (timeout = sk_lingertime)",
                   "net/core/stream.c sk_stream_wait_close()"))
def test_linger_close_returns_when_the_fin_is_acked(pair):
    """With SO_LINGER {1,N} and a responsive peer, close() returns as soon as the FIN is acknowledged.

    sk_stream_wait_close() sleeps only while the socket is in FIN_WAIT1, CLOSING or LAST_ACK; the peer's
    ACK of the FIN moves it to FIN_WAIT2 and wakes close() long before N seconds. The orphan then lives in
    FIN_WAIT2 as usual."""
    pair.client.set_linger(True, 5)
    pair.client.close()
    call = pair.log.last("client", "close")
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    ack = pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
    pair.expect_equal("close() returned after the FIN's ACK", call.t_end >= ack.ts, True,
                      why="sk_stream_wait_close() sleeps until the FIN is acknowledged")
    pair.expect_duration("close() with SO_LINGER {1,5}, peer acknowledging", call.t, call.t_end,
                         prompt_window(), "syscall")
    pair.expect_duration("close() return after the FIN's ACK", ack.ts, call.t_end, prompt_window(), "syscall")
    pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    pair.expect_orphan_fin_wait2("client")


@pytest.mark.parametrize("mode", ["blocking", "o-nonblock"])
@reference("RFC 9293 §3.10.4", "POSIX close()/SO_LINGER",
           kernel=("net/ipv4/af_inet.c inet_release() (O_NONBLOCK is not consulted)",
                   "net/core/stream.c sk_stream_wait_close() (returns void)",
                   "net/ipv4/tcp_timer.c tcp_retransmit_timer()"))
def test_linger_close_against_a_blackholed_peer_blocks_n_seconds(pair, mode):
    """SO_LINGER {1,1} against a blackholed peer: close() blocks ~1 s, even with O_NONBLOCK, and returns 0.

    inet_release() passes sk_lingertime to tcp_close() without looking at O_NONBLOCK, and
    sk_stream_wait_close() returns nothing, so close() reports success whether or not the FIN was
    acknowledged. Nothing happens at the expiry: no RST; the orphan stays in FIN_WAIT1 and keeps
    retransmitting its FIN on the retransmission timer."""
    pair.drop(towards="server", name="blackhole")
    pair.client.set_linger(True, LINGER_S)
    if mode == "o-nonblock":
        pair.client.set_nonblocking()
    pair.client.close()
    call = pair.log.last("client", "close")
    pair.observe(Key.LINGER_CLOSE_UNACKED, {"linger_s": LINGER_S, "blocked_s": round(call.t_end - call.t, 6)},
                 f"close() with SO_LINGER {{1,{LINGER_S}}}, FIN never ACKed ({mode})")
    pair.expect_equal("close() result", call.errno or call.result, "0",
                      why="sk_stream_wait_close() returns void: close() succeeds whether or not the FIN was ACKed")
    pair.expect_duration(f"close() with SO_LINGER {{1,{LINGER_S}}}, peer blackholed", call.t, call.t_end,
                         timer_window(LINGER_S), "syscall")
    fin = pair.wire.expect("client", "FA", within=PROMPT_S, since=call.t)
    lingered = call.t_end - call.t
    pair.wire.expect("client", "FA", seq=fin.seq, within=lingered, since=fin.ts,
                     why="the FIN is retransmitted while close() lingers")
    pair.wire.allow("client", "FA", seq=fin.seq, why="further FIN retransmissions against the blackholed peer")
    pair.wire.expect_no("client", has="R", during=lingered + 0.1, since=call.t,
                        why="Linux sends nothing special when the linger time expires")
    pair.expect_state("client", "FIN_WAIT1", timer="retrans", why="the orphan keeps retransmitting its FIN")


@pytest.mark.parametrize("peer", ["reads-after-300ms", "never-reads"])
@reference("RFC 9293 §3.10.4", "RFC 1122 §4.2.2.17 (zero window probing)",
           kernel=("net/core/stream.c sk_stream_wait_close()", "net/ipv4/tcp_output.c tcp_send_fin()",
                   "net/ipv4/tcp_timer.c tcp_probe_timer()"))
def test_linger_close_against_a_zero_window_peer(lab, peer):
    """SO_LINGER {1,1} with data stuck behind a zero window: close() waits for the FIN's ACK or 1 s, no longer.

    The FIN is queued behind the unsent data (state FIN_WAIT1, persist timer), so sk_stream_wait_close()
    keeps sleeping until everything, FIN included, is acknowledged. If the peer reads within the linger
    time, close() returns right after the FIN's ACK; if not, it returns 0 after 1 s and the data is not
    discarded: the orphan keeps probing and delivers everything, FIN last, once the peer reads."""
    small_window_pair(lab)
    sent = fill(lab.client)
    lab.expect_equal("the server advertised a zero window", any(s.win == 0 for s in lab.wire.all("server", "A")),
                     True, why="set-up: the small receive buffer fills")
    lab.client.set_linger(True, LINGER_S)
    received = bytearray()
    read_at: list[float] = []

    def drain() -> None:
        read_at.append(time.time())
        while chunk := lab.server.recv(65536):
            received.extend(chunk)

    reader = threading.Timer(READ_AFTER_S, drain) if peer == "reads-after-300ms" else None
    if reader is not None:
        reader.start()
    lab.client.close()
    call = lab.log.last("client", "close")
    lab.expect_equal("close() result", call.errno or call.result, "0")
    if reader is None:
        lab.expect_duration(f"close() with SO_LINGER {{1,{LINGER_S}}}, zero window", call.t, call.t_end,
                            timer_window(LINGER_S), "syscall")
        lab.wire.expect_no("client", has="F", during=call.t_end - call.t, since=call.t,
                           why="the FIN waits behind the unsent data")
        lab.wire.expect_no("client", has="R", during=call.t_end - call.t, since=call.t,
                           why="the linger time expires silently")
        lab.expect_state("client", "FIN_WAIT1", timer="probe", why="the orphan keeps probing the zero window")
        drain()
    else:
        reader.join()
    lab.expect_equal("bytes the server read", len(received), sent, why="no data is discarded by the linger timeout")
    fin = lab.wire.expect("client", has="F", within=PROMPT_S, since=read_at[0],
                          why="once the peer reads, the window opens and the data and FIN go out")
    ack = lab.wire.expect("server", "A", ack=fin.seq + fin.length + 1, within=PROMPT_S, since=fin.ts)
    lab.wire.allow("client", has="F", seq=fin.seq, until=ack.ts,
                   why="a tail-loss probe resends the last segment if the reader's ACK of it is slow (seen under "
                       "load: resent 4.7 ms later, then ACKed with a D-SACK)")
    if reader is not None:
        lab.expect_equal("close() returned after the FIN's ACK", call.t_end >= ack.ts, True)
        lab.expect_duration("close() return after the FIN's ACK", ack.ts, call.t_end, prompt_window(), "syscall")
        lab.expect_equal("close() returned before the linger time", call.t_end - call.t < LINGER_S, True,
                         why="the peer read within the linger time")
    lab.wait_state("client", "FIN_WAIT2", within=PROMPT_S)


@pytest.mark.parametrize("linger_s", [0, LINGER_S], ids=["linger-1-0", f"linger-1-{LINGER_S}"])
@reference("POSIX close() (the socket is released on the last close of its file description)",
           kernel=("fs/file_table.c __fput()", "net/socket.c sock_close()", "net/ipv4/af_inet.c inet_release()"))
def test_linger_applies_only_on_the_last_close_of_a_dup(pair, linger_s):
    """With a dup()'ed descriptor, closing one copy does nothing; the last close aborts or lingers.

    close() drops one reference to the open file; only the last one reaches __fput() -> sock_close() ->
    inet_release() -> tcp_close(). So the first close() returns at once with the connection untouched
    (ESTABLISHED, nothing on the wire), and SO_LINGER acts on the last: RST for {1,0}, FIN and a blocking
    close() for {1,N} (peer blackholed)."""
    dup = pair.dup(pair.client, "client-dup")
    pair.drop(towards="server", name="blackhole")
    pair.client.set_linger(True, linger_s)
    pair.client.close()
    first = pair.log.last("client", "close")
    pair.expect_duration("first close() of two descriptors", first.t, first.t_end, prompt_window(), "syscall")
    pair.wire.expect_no("client", during=0.1, since=first.t, why="the socket is still open through the dup")
    pair.expect_state("client", "ESTABLISHED")
    dup.close()
    last = pair.log.last("client-dup", "close")
    if linger_s == 0:
        pair.wire.expect("client", "RA", within=PROMPT_S, since=last.t)
        pair.expect_duration("last close() with SO_LINGER {1,0}", last.t, last.t_end, prompt_window(), "syscall")
        pair.wait_gone("client", within=PROMPT_S)
    else:
        fin = pair.wire.expect("client", "FA", within=PROMPT_S, since=last.t)
        pair.wire.allow("client", "FA", seq=fin.seq, why="FIN retransmissions against the blackholed peer")
        pair.expect_duration(f"last close() with SO_LINGER {{1,{linger_s}}}", last.t, last.t_end,
                             timer_window(linger_s), "syscall")
        pair.expect_state("client", "FIN_WAIT1", timer="retrans")


@pytest.mark.parametrize("linger_s", [0, LINGER_S], ids=["linger-1-0", f"linger-1-{LINGER_S}"])
@pytest.mark.parametrize("ending", ["exit", "kill"])
@reference("POSIX _exit() (open descriptors are closed)",
           kernel=("net/ipv4/af_inet.c inet_release() (no lingering when PF_EXITING)",
                   "net/ipv4/tcp.c __tcp_close()", "kernel/exit.c do_exit() (exit_files(), fs/file.c)"))
def test_process_exit_does_not_linger(pair, ending, linger_s):
    """When a process exits or is killed, SO_LINGER {1,N} does not delay the exit; {1,0} still resets.

    The child holds the last descriptor of the socket. At exit, do_exit() closes its files and
    inet_release() sees PF_EXITING and passes a zero timeout: a {1,N} socket sends its FIN and is orphaned
    at once (FIN_WAIT1 against a blackholed peer) without delaying the exit. The abortive {1,0} path tests
    the SOCK_LINGER flag and lingertime, not the timeout, so it still sends an RST. SIGKILL and a normal
    exit behave alike."""
    pair.drop(towards="server", name="blackhole")
    pair.client.set_linger(True, linger_s)
    holder = Holder(pair, pair.client)
    try:
        pair.client.close()
        pair.wire.expect_no("client", during=0.05, why="the child still holds the socket")
        pair.expect_state("client", "ESTABLISHED")
        getattr(holder, ending)()
    finally:
        holder.cleanup()
    call = pair.log.last(holder.name, ending)
    pair.expect_duration(f"child {ending} until reaped, SO_LINGER {{1,{linger_s}}}", call.t, call.t_end,
                         prompt_window(), "syscall")
    if linger_s == 0:
        pair.wire.expect("client", "RA", within=PROMPT_S, since=call.t)
        pair.wait_gone("client", within=PROMPT_S)
    else:
        pair.wire.expect("client", "FA", within=PROMPT_S, since=call.t)
        pair.wire.expect_no("client", has="R", during=0.05)
        pair.expect_state("client", "FIN_WAIT1", timer="retrans", why="an orphan retransmitting its FIN")

