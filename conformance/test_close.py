"""close() on an established connection: what goes on the wire, and what is left behind."""

import time

from conformance.claims import Key
from fixtures.references import reference
from fixtures.tolerance import CAPTURE_LAG_S, PROMPT_S, chain_window, timer_window, wait_s

TIME_WAIT_LEN_MS = 60_000  # include/net/tcp.h TCP_TIMEWAIT_LEN (60 s, not a sysctl)


@reference("RFC 9293 §3.10.4", "RFC 2525 §2.17", "RFC 1122 §4.2.2.13", kernel="net/ipv4/tcp.c __tcp_close()")
def test_close_with_unread_data_sends_rst(pair):
    """close() with unread data in the receive queue sends RST, not FIN.

    The server's bytes were acknowledged but never read: the kernel discards them and resets the connection
    (data_was_unread in __tcp_close) so the peer learns the data was lost. No FIN is sent and no TIME_WAIT
    is left behind; the namespace counts it in TCPAbortOnClose."""
    pair.server.sendall(b"x" * 1000)
    pair.client.wait_readable()
    unread = pair.client.unread_bytes()
    pair.client.close()
    closed = pair.log.last("client", "close")
    try:
        pair.wire.expect("client", "RA", within=PROMPT_S)
    finally:
        sent = pair.wire.all("client", since=closed.t)
        pair.observe(Key.CLOSE_UNREAD_DATA, {"unread_bytes": unread, "flags": sent[0].flags if sent else ""},
                     f"close() with {unread} unread bytes")
    pair.wire.expect_no("client", has="F", during=0.1)
    pair.wait_gone("client", within=PROMPT_S)
    pair.expect_nstat("client", "TcpExtTCPAbortOnClose", 1)


@reference("RFC 9293 §3.10.5", "RFC 1122 §4.2.2.13",
           kernel="net/ipv4/tcp.c __tcp_close() (SOCK_LINGER, lingertime 0)")
def test_linger_zero_close_sends_rst(pair):
    """SO_LINGER {1,0} then close() aborts: RST at once, no FIN, no TIME_WAIT.

    __tcp_close() calls tcp_disconnect() when lingering with a zero timeout, which sends an RST
    (tcp_need_reset) and frees the socket. Linux counts it in TCPAbortOnData, not TCPAbortOnLinger."""
    pair.client.set_linger(True, 0)
    pair.client.close()
    pair.wire.expect("client", "RA", within=PROMPT_S)
    pair.wire.expect_no("client", has="F", during=0.1)
    pair.wait_gone("client", within=PROMPT_S)
    pair.expect_nstat("client", "TcpExtTCPAbortOnData", 1)


@reference("RFC 9293 §3.6", "RFC 9293 §3.10.4", kernel=("net/ipv4/tcp.c tcp_close()",
           "net/ipv4/tcp_input.c tcp_rcv_state_process()", "net/ipv4/tcp_minisocks.c tcp_time_wait()"))
def test_active_close_then_peer_close_ends_in_time_wait(pair):
    """Active close, then the peer's close: FIN/ACK both ways, the closer ends in TIME_WAIT for 60 s.

    Client: ESTABLISHED -> FIN_WAIT1 -> FIN_WAIT2 -> TIME_WAIT; server: CLOSE_WAIT -> LAST_ACK -> gone.
    The TIME_WAIT timer is TCP_TIMEWAIT_LEN (60 s, 2*MSL with Linux's 30 s MSL), not a sysctl."""
    pair.requires_time_wait("client", why="the case measures the TIME_WAIT timer")
    pair.close_holding_fin_ack("client")  # an orphan, its path the configuration's (lab.py)
    pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    pair.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)
    pair.expect_equal("server recv() after the client's FIN", pair.server.recv(), b"",
                      why="the server reads EOF after the client's FIN")
    pair.server.close()
    server_fin = pair.wire.expect("server", "FA", within=PROMPT_S)
    try:
        pair.wait_state("client", "TIME_WAIT", within=PROMPT_S)
    finally:
        time.sleep(CAPTURE_LAG_S)
        acks = [s for s in pair.wire.all("client", "A", since=server_fin.ts) if s.ack == server_fin.seq + 1]
        pair.observe(Key.FIN_WAIT2_PEER_FIN, {"states": pair.states_seen("client"),
                                              "ack_delay_s": round(acks[0].ts - server_fin.ts, 6) if acks else None},
                     "the server's FIN reaching the client's FIN_WAIT2")
    pair.wire.expect("client", "A", ack=server_fin.seq + 1, within=PROMPT_S)
    pair.wait_gone("server", within=PROMPT_S)
    pair.observe(Key.CLOSE_ROLES, {"active": ["client"],
                                   "states": {s: pair.states_seen(s) for s in ("client", "server")}},
                 "client closes first, then the server")
    tw = pair.expect_state("client", "TIME_WAIT", timer="timewait")
    pair.expect_timer("TIME_WAIT timer from the peer's FIN", server_fin, tw,
                      timer_window(TIME_WAIT_LEN_MS / 1000))
    pair.expect_states_seen("client", ["ESTABLISHED", "FIN_WAIT2", "TIME_WAIT"])
    pair.expect_states_seen("server", ["ESTABLISHED", "CLOSE_WAIT", "CLOSED"])


@reference("RFC 9293 §3.10.4 (half-close)", "RFC 1122 §4.2.2.13",
           kernel=("net/ipv4/tcp.c tcp_shutdown()", "net/ipv4/tcp_input.c tcp_rcv_state_process()"))
def test_shutdown_write_keeps_reading_then_peer_close(pair):
    """shutdown(SHUT_WR) sends FIN but keeps the socket readable; a non-orphaned FIN_WAIT2 has no timer.

    The fd stays open, so FIN_WAIT2 is not an orphan: no tcp_fin_timeout applies (timer none). Data from
    the peer still arrives; the peer's FIN then moves the client to TIME_WAIT and recv() returns EOF."""
    pair.client.shutdown("SHUT_WR")
    pair.wire.expect("client", "FA", within=PROMPT_S)
    pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    pair.expect_state("client", "FIN_WAIT2", timer="none", why="a FIN_WAIT2 socket with an open fd")
    pair.server.sendall(b"after-half-close")
    pair.expect_equal("client reads after SHUT_WR", pair.client.recv_exactly(16), b"after-half-close",
                      why="the read side stays open after shutdown(SHUT_WR)")
    pair.server.close()
    pair.wire.expect("server", "FA", within=PROMPT_S)
    pair.wait_state("client", "TIME_WAIT", within=PROMPT_S)
    pair.expect_equal("client recv() after the peer's FIN", pair.client.recv(), b"", why="EOF")


@reference("RFC 9293 §3.6", "RFC 9293 §3.10.4", kernel=("net/ipv4/tcp_input.c tcp_rcv_state_process() LAST_ACK",
                                                      "net/ipv4/tcp_timer.c tcp_retransmit_timer()"))
def test_passive_close_close_wait_last_ack_gone(pair):
    """Passive close: CLOSE_WAIT until the application closes, LAST_ACK until its FIN is acknowledged.

    The client's ACK of the server's FIN is dropped once, so LAST_ACK lasts long enough to be read (with
    its retransmission timer); when the ACK gets through, the socket is gone at once (no TIME_WAIT on the
    passive side)."""
    pair.requires_time_wait("client", why="its orphaned FIN_WAIT2 ACKs the server's FIN")
    pair.client.close()
    pair.wire.expect("client", "FA", within=PROMPT_S)
    pair.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)
    pair.drop(towards="server", name="client-pure-acks", exactly="A")
    rto = pair.server.rto_s()
    pair.server.close()
    pair.wire.expect("server", "FA", within=PROMPT_S)
    pair.wait_state("server", "LAST_ACK", within=PROMPT_S)
    pair.expect_state("server", "LAST_ACK", timer="retrans", why="the FIN waits for its ACK")
    pair.undrop(towards="server", name="client-pure-acks")
    resend = pair.retransmission("server").series(rto, 2)[-1]  # by then the FIN was resent (TLP or RTO)
    again = pair.wire.expect("server", "FA", within=wait_s(chain_window(resend, timers=2)),
                             why="the FIN is retransmitted on its timer")
    pair.wire.allow("server", "FA", seq=again.seq, why="resent again if the rule change is slower than its timer")
    pair.wait_gone("server", within=wait_s(chain_window(pair.retransmission("server").series(rto, 3)[-1], timers=3)),
                   why="a resent FIN's ACK gets through")
    pair.expect_states_seen("server", ["ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"])
