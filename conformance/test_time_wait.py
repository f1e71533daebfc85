"""TIME_WAIT, measured: its fixed 60 s timer, what restarts it, what kills it (RFC 1337 assassination), what
happens when no TIME_WAIT bucket may be kept, and a new SYN for the same four-tuple."""

import socket
import time

import pytest

from conformance.claims import Key
from fixtures.constants import TCP_TIMEWAIT_LEN_S
from fixtures.references import reference
from fixtures.tolerance import JIFFY_S, PROMPT_S, chain_window, timer_window, wait_s

ACK_BEFORE_CLOSE = ("the ACK of the FIN has arrived before the second close: one still queued on the veth (another "
                    "CPU's backlog) could otherwise arrive after that side's FIN, and the TIME_WAIT's duplicate ACK "
                    "to it draws an RST that kills the TIME_WAIT (RFC 1337; seen under load)")

def _close_active_then_passive(lab, orphan=True):
    """Client closes first, server second: the client ends in TIME_WAIT. Returns (client FIN, server FIN).
    With orphan=False the client only shuts down its sending side: its FIN_WAIT2 is not orphaned, so
    tcp_fin_timeout does not bound it and a slow server cannot be raced by it."""
    if orphan:  # the orphan's path is the configuration's, not the ACK's timing against close() (lab.py)
        fin, _ack = lab.close_holding_fin_ack("client")
        lab.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)
    else:
        lab.client.shutdown("SHUT_WR")
        fin = lab.wire.expect("client", "FA", within=PROMPT_S)
        lab.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)
        lab.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S, why=ACK_BEFORE_CLOSE)
    lab.server.close()
    server_fin = lab.wire.expect("server", "FA", within=PROMPT_S)
    lab.wire.expect("client", "A", ack=server_fin.seq + 1, within=PROMPT_S)
    lab.wait_state("client", "TIME_WAIT", within=PROMPT_S)
    return fin, server_fin


def _time_wait_timer(lab, side, since, name):
    """The TIME_WAIT's full length: from `since` (the segment that armed it) to its expiry as sock_diag reads it,
    checked against TCP_TIMEWAIT_LEN. Returns the longest length the read allows (its answer came by t_end)."""
    st = lab.expect_state(side, "TIME_WAIT", timer="timewait")
    return lab.expect_timer(name, since, st, timer_window(TCP_TIMEWAIT_LEN_S)).measured_high_s


@pytest.mark.parametrize("fin_timeout", [1, 60])
@reference("RFC 9293 §3.6 (2 MSL)", "RFC 1122 §4.2.2.13",
           kernel=("include/net/tcp.h TCP_TIMEWAIT_LEN", "net/ipv4/tcp_input.c tcp_rcv_state_process() FIN_WAIT2",
                   "net/ipv4/tcp_minisocks.c tcp_time_wait()"))
def test_time_wait_timer_is_60s_whatever_tcp_fin_timeout(pair, fin_timeout):
    """TIME_WAIT lasts TCP_TIMEWAIT_LEN (60 s), a compile-time constant: tcp_fin_timeout does not change it.

    tcp_fin() in FIN_WAIT2 calls tcp_time_wait(sk, TCP_TIME_WAIT, 0) and a zero timeout means
    TCP_TIMEWAIT_LEN; tcp_fin_timeout only bounds an orphaned FIN_WAIT2 (a common misconception). The client
    shuts down instead of closing, so its FIN_WAIT2 is not orphaned: with tcp_fin_timeout 1 an orphaned one would
    end 1 s after the FIN, before a slow (emulated) server closes, and the FIN would get an RST instead."""
    pair.requires_time_wait("client", why="the case measures TIME_WAIT")
    pair.sysctl("net.ipv4.tcp_fin_timeout", fin_timeout)
    _, server_fin = _close_active_then_passive(pair, orphan=False)
    st = pair.expect_state("client", "TIME_WAIT", timer="timewait")
    total = st.t + st.expires_ms / 1000 - server_fin.ts
    pair.observe(Key.TIME_WAIT_LENGTH, round(total, 3), "sock_diag expiry + time since the peer's FIN")
    pair.expect_timer("TIME_WAIT timer from the peer's FIN", server_fin, st,
                      timer_window(TCP_TIMEWAIT_LEN_S))
    pair.wait_gone("server", within=PROMPT_S, why="the passive closer keeps no TIME_WAIT")


@pytest.mark.slow
@reference("RFC 9293 §3.6 (2 MSL)", "RFC 1122 §4.2.2.13",
           kernel=("include/net/tcp.h TCP_TIMEWAIT_LEN", "net/ipv4/inet_timewait_sock.c tw_timer_handler()"))
def test_time_wait_lasts_60s_end_to_end(pair):
    """A TIME_WAIT socket really disappears 60 s after the peer's FIN, silently (slow: ~61 s).

    The timewait timer (inet_twsk_schedule, TCP_TIMEWAIT_LEN) fires tw_timer_handler(), which unhashes the
    mini-socket; nothing is sent. TcpExtTW counts timewait socks scheduled with a timer above 4 s (at
    creation, __inet_twsk_schedule; shorter ones count as TWKilled): one here."""
    pair.requires_time_wait("client", why="the case measures TIME_WAIT")
    _, server_fin = _close_active_then_passive(pair)
    gone = pair.wait_gone("client", within=wait_s(timer_window(TCP_TIMEWAIT_LEN_S)))
    pair.observe(Key.TIME_WAIT_LENGTH, round(gone - server_fin.ts, 3), "from the peer's FIN to the end (sock_diag)")
    pair.expect_duration("TIME_WAIT lifetime", server_fin.ts, gone, timer_window(TCP_TIMEWAIT_LEN_S),
                         "sock_diag")
    pair.wire.expect_no("client", during=gone - server_fin.ts, since=server_fin.ts + 0.01,
                        why="TIME_WAIT ends silently")
    pair.expect_nstat("client", "TcpExtTW", 1)


@pytest.mark.parametrize("rfc1337", [0, 1, "as-configured"], ids=["rfc1337-0", "rfc1337-1", "rfc1337-as-configured"])
@reference("RFC 1337", "RFC 9293 §3.10.7.4",
           kernel="net/ipv4/tcp_minisocks.c tcp_timewait_state_process() (TIME-WAIT assassination)")
def test_rst_in_time_wait_kills_it_unless_tcp_rfc1337(pair, rfc1337):
    """An in-window RST kills a TIME_WAIT ("TIME-WAIT assassination") unless tcp_rfc1337 is 1.

    tcp_timewait_state_process() accepts an RST whose seq is the next expected one; with tcp_rfc1337 0 it
    deschedules the timewait sock at once (RFC 1337 hazard H1 left open, the Linux default); with 1 it
    ignores the RST and the timer keeps running, not restarted. Nothing is sent in reply either way. The
    "as-configured" variant keeps the run's tcp_rfc1337 and expects what it implies."""
    pair.requires_time_wait("client", why="an RST into TIME_WAIT")
    if rfc1337 == "as-configured":
        rfc1337 = pair.cfg("net.ipv4.tcp_rfc1337", "client", why="whether an RST kills the TIME_WAIT")
    else:
        pair.sysctl("net.ipv4.tcp_rfc1337", rfc1337)
    killed = rfc1337 == 0
    _, server_fin = _close_active_then_passive(pair)
    pair.wait_gone("server", within=PROMPT_S)
    pair.inject("server", "R", seq=server_fin.raw_seq + 1)
    injected = pair.log.calls[-1].t
    try:
        if killed:
            gone = pair.wait_gone("client", within=PROMPT_S, why="tcp_rfc1337 0: the RST kills the TIME_WAIT")
    finally:
        time.sleep(max(0.0, injected + 0.2 - time.time()))
        answered = bool(pair.wire.all("client", since=injected))
        pair.observe(Key.TIME_WAIT_LATE_SEGMENT, {"late": "RST", "answered": answered,
                                                  "survived": pair.state("client").state == "TIME_WAIT"},
                     f"an in-window RST, 0.2 s after it (tcp_rfc1337 {rfc1337})")
    if killed:  # from the RST on the wire: the kernel can take it (and sock_diag see it gone) before inject() returns
        rst = pair.wire.expect("server", "R", origin="injected", since=injected, within=PROMPT_S)
        pair.expect_duration("TIME_WAIT end after the RST", rst, gone, timer_window(0.0), "sock_diag")
    pair.wire.expect_no("client", during=0.2, since=injected, why="nothing is sent in reply to the RST")
    if not killed:
        _time_wait_timer(pair, "client", server_fin, "TIME_WAIT timer after the RST, from the FIN (not restarted)")


@pytest.mark.sysctls({"net.ipv4.tcp_rto_min_us": 500_000})
@reference("RFC 9293 §3.10.7.4 (TIME-WAIT: restart the 2 MSL timeout on a retransmitted FIN)", "RFC 1122 §4.2.2.13",
           kernel="net/ipv4/tcp_minisocks.c tcp_timewait_state_process() (inet_twsk_reschedule)")
def test_retransmitted_fin_in_time_wait_is_acked_and_restarts_the_timer(lab):
    """A retransmitted FIN arriving in TIME_WAIT is ACKed again and restarts the 60 s timer.

    The client's ACK of the server's FIN is dropped, so the server (LAST_ACK) re-sends its FIN after ~0.5 s
    (tcp_rto_min_us 500 ms on both sides). tcp_timewait_state_process() answers it with an ACK
    (TCP_TW_ACK) and calls inet_twsk_reschedule(tw, TCP_TIMEWAIT_LEN), as RFC 9293 requires."""
    lab.requires_time_wait("client", why="a FIN into TIME_WAIT")
    lab.connect()
    rto = lab.server.rto_s()
    lab.client.close()
    lab.wire.expect("client", "FA", within=PROMPT_S)
    lab.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)
    lab.drop(towards="server", name="client-pure-acks", exactly="A")
    lab.server.close()
    server_fin = lab.wire.expect("server", "FA", within=PROMPT_S)
    lab.wire.expect("client", "A", ack=server_fin.seq + 1, within=PROMPT_S)
    lab.wait_state("client", "TIME_WAIT", within=PROMPT_S)
    resend = lab.retransmission("server").series(rto, 2)[-1]  # the first resend comes by this (TLP or RTO)
    refin = lab.wire.expect("server", "FA", seq=server_fin.seq, within=wait_s(chain_window(resend, timers=2)),
                            since=server_fin.ts)
    gap = refin.ts - server_fin.ts
    try:
        reack = lab.wire.expect("client", "A", ack=server_fin.seq + 1, within=PROMPT_S, since=refin.ts)
    finally:
        st = lab.state("client")
        after_refin = st.expires_ms / 1000 + st.t_end - refin.ts  # the longest the read allows
        restarted_by = after_refin + gap - TCP_TIMEWAIT_LEN_S
        restarted = restarted_by >= gap - 2 * JIFFY_S
        answered = bool(lab.wire.all("client", since=refin.ts))
        lab.observe(Key.TIME_WAIT_LATE_SEGMENT, {"late": "FIN", "answered": answered,
                                                 "survived": st.state == "TIME_WAIT", "timer_restarted": restarted},
                    f"the peer's FIN resent {gap:.3f} s into TIME_WAIT: {st.describe()}")
    lab.expect_duration("ACK of the retransmitted FIN", refin.ts, reack.ts, timer_window(0.0), "wire")
    total = _time_wait_timer(lab, "client", refin, "TIME_WAIT timer counted from the retransmitted FIN")
    restarted_by = total + gap - TCP_TIMEWAIT_LEN_S
    lab.expect_equal("TIME_WAIT restarted by the resent FIN", restarted_by >= gap - 2 * JIFFY_S,
                     True, why=f"TIME_WAIT ends {restarted_by:.3f} s later than 60 s after the first FIN; a restart by "
                               f"the resend {gap:.3f} s later makes it ~{gap:.3f} s")


@pytest.mark.parametrize("how", ["close-orphan-fin-wait2", "shutdown-then-peer-fin"])
# the subject: no timewait bucket; tcp_fin_timeout 60 keeps the orphaned FIN_WAIT2 a timewait sock
@pytest.mark.sysctls({"net.ipv4.tcp_max_tw_buckets": 0, "net.ipv4.tcp_fin_timeout": 60}, subject=True)
@reference("RFC 9293 §3.10.4", "RFC 1337",
           kernel=("net/ipv4/tcp_minisocks.c tcp_time_wait() (TCPTimeWaitOverflow)",
                   "net/ipv4/inet_timewait_sock.c inet_twsk_alloc() (tw_refcount >= sysctl_max_tw_buckets)"))
def test_max_tw_buckets_zero_keeps_no_time_wait(pair, how):
    """With tcp_max_tw_buckets 0 no timewait socket is kept: TIME_WAIT and orphaned FIN_WAIT2 vanish at once.

    tcp_time_wait() cannot allocate a timewait bucket (inet_twsk_alloc returns NULL), counts
    TCPTimeWaitOverflow and closes the socket (tcp_done). An orphaned FIN_WAIT2 is also a timewait sock, so
    it goes the moment its FIN is ACKed, and the peer's later FIN is answered with an RST; a socket
    receiving the peer's FIN in FIN_WAIT2 still ACKs it, then keeps no TIME_WAIT."""
    if how == "close-orphan-fin-wait2":
        fin, ack = pair.close_holding_fin_ack("client")  # not from the backlog: a full socket on keepalive (lab.py)
        gone = pair.wait_gone("client", within=PROMPT_S, why="no bucket for the orphaned FIN_WAIT2")
        pair.expect_duration("orphaned FIN_WAIT2 lifetime", ack.ts, gone, timer_window(0.0),
                             "sock_diag")
        pair.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)
        pair.server.close()
        server_fin = pair.wire.expect("server", "FA", within=PROMPT_S)
        try:
            pair.wire.expect("client", "R", seq=fin.seq + 1, within=PROMPT_S, why="no socket left to take the FIN")
        finally:
            replies = pair.wire.all("client", since=server_fin.ts)
            pair.observe(Key.CLOSED_PEER_FIN_ANSWER, replies[0].flags if replies else None,
                         "the server's FIN reaching a closer without a socket (tcp_max_tw_buckets 0)")
    else:
        pair.client.shutdown("SHUT_WR")
        fin = pair.wire.expect("client", "FA", within=PROMPT_S)
        pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
        pair.expect_state("client", "FIN_WAIT2", timer="none")
        pair.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)
        pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S, why=ACK_BEFORE_CLOSE)
        pair.server.close()
        server_fin = pair.wire.expect("server", "FA", within=PROMPT_S)
        pair.wire.expect("client", "A", ack=server_fin.seq + 1, within=PROMPT_S)
        pair.wait_gone("client", within=PROMPT_S, why="no bucket for the TIME_WAIT")
    pair.wait_gone("server", within=PROMPT_S)
    pair.expect_nstat("client", "TcpExtTCPTimeWaitOverflow", 1)
    pair.expect_nstat("client", "TcpExtTW", 0, why="no timewait sock was ever scheduled")


@reference("RFC 1122 §4.2.2.13 (a new SYN MAY reopen a TIME-WAIT connection)", "RFC 6191",
           kernel=("net/ipv4/tcp_minisocks.c tcp_timewait_state_process() (TCP_TW_SYN)",
                   "net/ipv4/tcp_ipv4.c tcp_v4_rcv() (do_time_wait)"))
def test_new_syn_from_same_port_reopens_server_time_wait(pair):
    """A new SYN for the same four-tuple reopens a TIME_WAIT connection at once when its ISN/timestamp is newer.

    Here the server closes first and holds the TIME_WAIT. The client reconnects from the same port:
    tcp_timewait_state_process() sees a SYN with a higher sequence number (and a newer timestamp) and
    returns TCP_TW_SYN, so the listener answers with a SYN-ACK and the timewait sock is freed (RFC 1122
    4.2.2.13, RFC 6191), instead of an ACK for the old connection."""
    pair.requires_time_wait("server", why="a SYN into the server's TIME_WAIT")
    port = pair.client.port
    pair.server.close()
    server_fin = pair.wire.expect("server", "FA", within=PROMPT_S)
    pair.wait_state("client", "CLOSE_WAIT", within=PROMPT_S)
    pair.wire.expect("client", "A", ack=server_fin.seq + 1, within=PROMPT_S, why=ACK_BEFORE_CLOSE)
    pair.client.close()
    pair.wire.expect("client", "FA", within=PROMPT_S)
    pair.wait_state("server", "TIME_WAIT", within=PROMPT_S)
    pair.wait_gone("client", within=PROMPT_S)
    sock = pair.socket("client")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((pair.family.client, port))
    again = pair.adopt("client2", sock, "client")
    pair.log.record("client2", "connect", f"[{pair.family.server}]:8080 from port {port}",
                    lambda: sock.connect((pair.family.server, 8080)))
    syn = pair.wire.expect("client", "S", within=PROMPT_S)
    old_rcv_nxt = server_fin.raw_ack + 1  # the server's rcv_nxt after the client's FIN
    pair.expect_equal("the new ISN lies after the old connection's rcv_nxt",
                      0 < (syn.raw_seq - old_rcv_nxt) % 2**32 < 2**31, True,
                      why="TCP_TW_SYN needs a higher sequence number (or a newer timestamp)")
    pair.wire.expect("server", "SA", within=PROMPT_S, since=syn.ts, why="TCP_TW_SYN: the listener takes it")
    new_server = pair.accept("server2")
    new_server.sendall(b"reopened")
    pair.expect_equal("client2 reads on the reopened connection", again.recv_exactly(8), b"reopened")
    pair.wait_state("server2", "ESTABLISHED", within=PROMPT_S)
