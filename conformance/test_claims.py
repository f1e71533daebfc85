"""The seed article's claims (../shared/seed/tcp-close.md), one case per claim, checked against the kernel.

Each case quotes the claim, drives real sockets through the scenario it describes, asserts what Linux does
(wire, states, timers) and records whether the article was right. States are polled from the test's thread
(support_claims.Track) so that each case can assert the exact order of states it went through.
"""

import socket
import time

import pytest

from conformance.support_claims import Track
from fixtures.references import claim, reference
from fixtures.tcp_model import model_timeout_s, orphan_fin_wait1_model, orphan_retries_effective
from fixtures.tolerance import PROMPT_S, chain_window, timer_window

TIME_WAIT_LEN_S = 60.0  # include/net/tcp.h TCP_TIMEWAIT_LEN
RFC_MSL_S = 120.0  # RFC 9293 §3.4.1: MSL is "arbitrarily defined to be 2 minutes"
SYNACK_TIMEOUT_S = 1.0  # include/net/tcp.h TCP_TIMEOUT_INIT: first SYN-ACK retransmission timer

FIN_WAIT1_NO_ACK = ("如果在超时时间内没有收到确认ACK直接进入CLOSED状态"
                    " — FIN_WAIT1: if no ACK arrives within the timeout, go straight to CLOSED")
FIN_WAIT1_60S = "一般默认60s超时 — FIN_WAIT1 stuck without an ACK: the default timeout is 60 s"
FIN_WAIT2_60S = "超时时间：一般默认是60s — FIN_WAIT2 (waiting for the peer's FIN): the default timeout is 60 s"
FIN_WAIT2_EXPIRES = ("如果在超时时间内没有收这个FIN则直接进入CLOSED状态"
                     " — FIN_WAIT2: without the peer's FIN within the timeout, go straight to CLOSED")
FIN_WAIT2_FIN = "在FIN_WAIT2接受到了对端FIN后进入TIME_WAIT状态 — the peer's FIN in FIN_WAIT2 leads to TIME_WAIT"
FIN_WAIT1_FIN = ("如果在FIN_WAIT1状态时收到了对端的FIN则进入CLOSING状态"
                 " — the peer's FIN received in FIN_WAIT1 leads to CLOSING")
TIME_WAIT_2MSL = ("在TIME_WAIT状态等待2个MSL（2个报文最长存活周期）后进入CLOSED状态"
                  " — TIME_WAIT lasts 2 MSL (two maximum segment lifetimes), then CLOSED")
TIME_WAIT_DISCARDS = "在此状态的时候,任何迟到的报文都会被丢弃 — in TIME_WAIT every late segment is discarded"
TIME_WAIT_THEN_ACK = ("主动方收到对端的FIN后进入TIME_WAIT状态。然后发送最后一个确认ACK到对端"
                      " — the active closer enters TIME_WAIT on the peer's FIN, then sends the last ACK")
CLOSE_WAIT_PASSIVE = "只可能在被动方出现 — CLOSE_WAIT can only appear on the passive side"
CLOSE_WAIT_TIMEOUT = ("如果在超时时间内调用了close,则进入LAST_ACK状态;否则直接进入CLOSED状态"
                      " — CLOSE_WAIT: close() within the timeout leads to LAST_ACK, otherwise straight to CLOSED")
LAST_ACK_PASSIVE = "这个状态只可能在被动端出现 — LAST_ACK can only appear on the passive side"
LISTENER_RST = ("而是会发送RST复位标志去关闭请求"
                " — closing a listener closes each half-open connection by sending an RST, not a FIN")
LISTENER_KEEPALIVE = "close 首先会移除keepalive定时器 — close() of a listener first removes the keepalive timer"
UNREAD_RST = ("会向远端发送一个RST非正常复位关闭连接"
              " — close() with received but unread data sends an RST to the peer")
FIN_PIGGYBACK = ("会在最后一个报文中加入FIN标志"
                 " — with data still waiting to be sent, close() puts the FIN on the last data segment")
BARE_FIN = ("如果没有待发送的消息，则构造一个报文，仅含有FIN标志位，发送出去关闭连接"
            " — with nothing left to send, close() sends a segment carrying only the FIN flag")
SO_LINGER_HEADING = ("关闭的是普通ESTABLISH状态的句柄(设置so_linger)"
                     " — the article's (unfinished) SO_LINGER section: close() of an ESTABLISHED socket with"
                     " SO_LINGER set behaves differently")


def _fin_then_peer_fin(pair, track):
    """Active close by the client, EOF and close by the server; returns (server FIN, client's last ACK)."""
    pair.client.close()
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
    track.until_state("client", "FIN_WAIT2", within=PROMPT_S)
    assert pair.server.recv() == b"", "the server reads EOF after the client's FIN"
    pair.server.close()
    server_fin = pair.wire.expect("server", "FA", within=PROMPT_S)
    last_ack = pair.wire.expect("client", "A", ack=server_fin.seq + 1, within=PROMPT_S)
    track.until_state("client", "TIME_WAIT", within=PROMPT_S)
    return server_fin, last_ack


# --- FIN_WAIT1 --------------------------------------------------------------------------------------------

@claim(FIN_WAIT1_NO_ACK)
@pytest.mark.sysctls({"net.ipv4.tcp_orphan_retries": 1, "net.ipv4.tcp_rto_min_us": 50_000})
@reference("RFC 9293 §3.10.4", "RFC 1122 §4.2.3.5 (R2)",
           kernel=("net/ipv4/tcp_timer.c tcp_write_timeout() tcp_orphan_retries() retransmits_timed_out()",
                   "net/ipv4/tcp_timer.c tcp_model_timeout()", "net/ipv4/tcp_timer.c tcp_write_err()"))
def test_orphan_fin_wait1_without_ack_ends_silently_after_fin_retransmissions(pair):
    """An orphaned FIN_WAIT1 whose FIN is never ACKed goes straight to CLOSED, silently, when its FIN
    retransmission budget (tcp_orphan_retries) is spent, not when a FIN_WAIT1 timer runs out.

    There is no FIN_WAIT1 timer: the FIN is resent on the RTO (after one tail-loss probe) and at each RTO
    expiry tcp_write_timeout() asks retransmits_timed_out() whether the time since the first RTO
    retransmission reached tcp_model_timeout(tcp_orphan_retries, TCP_RTO_MIN) -- a time budget modelled on a
    200 ms RTO, so with tcp_rto_min_us=50 ms and tcp_orphan_retries=1 (budget 600 ms) three RTO
    retransmissions fit. Then tcp_write_err() frees the socket (TCPAbortOnTimeout) without an RST."""
    track = Track(pair, "client")
    rto = pair.client.rto_s()
    expected_rtx, expected_end = orphan_fin_wait1_model(1, rto)
    pair.drop(towards="server", name="blackhole")
    pair.client.close()
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    track.until_state("client", "FIN_WAIT1", within=PROMPT_S)
    gone = track.until_state("client", "CLOSED", within=fin.ts - time.time() + 3.0)
    rtx = [s for s in pair.wire.all("client", "FA") if s.index > fin.index]
    assert all(s.seq == fin.seq and s.length == 0 for s in rtx), "only the FIN is retransmitted"
    pair.expect_nstat("client", "TcpExtTCPLossProbes", 1, why="the first resend is a tail-loss probe")
    rto_rtx = rtx[1:]
    assert len(rto_rtx) == expected_rtx, pair.explain(
        f"expected {expected_rtx} RTO retransmissions of the FIN (tcp_orphan_retries=1, RTO {rto * 1000:.0f} ms),"
        f" saw {len(rto_rtx)}")
    pair.expect_duration("first RTO retransmission to the end of the orphan", rto_rtx[0].ts, gone,
                         chain_window(expected_end, expected_rtx, "sock_diag"), "sock_diag")
    pair.wire.expect_no("client", has="R", during=gone - fin.ts + 0.05, since=fin.ts)
    assert track.seen["client"] == ["ESTABLISHED", "FIN_WAIT1", "CLOSED"], track.seen
    pair.expect_nstat("client", "TcpExtTCPAbortOnTimeout", 1)
    confirmed = track.seen["client"][-2:] == ["FIN_WAIT1", "CLOSED"] and pair.wire.count("client", has="R") == 0
    pair.claim_verdict(confirmed, (
        f"peer blackholed, tcp_orphan_retries=1, RTO {rto * 1000:.0f} ms: the FIN was resent at "
        f"{', '.join(f'+{s.ts - fin.ts:.3f}' for s in rtx)} s and the socket went from FIN_WAIT1 straight to "
        f"CLOSED {gone - fin.ts:.2f} s after the FIN, no RST; what ends it is the retransmission budget "
        f"({model_timeout_s(1):.1f} s from the first RTO resend), not a FIN_WAIT1 timer."))


@claim(FIN_WAIT1_60S)
@reference("RFC 9293 §3.10.4", "RFC 6298 §5 (rule 5.5: RTO <- RTO * 2)",
           kernel=("net/ipv4/tcp_timer.c tcp_orphan_retries() (0 means 8)",
                   "net/ipv4/tcp_timer.c tcp_model_timeout() retransmits_timed_out()",
                   "net/ipv4/tcp_timer.c tcp_retransmit_timer()"))
def test_orphan_fin_wait1_default_lifetime_is_about_100_s_not_60(pair):
    """At the default tcp_orphan_retries (0, read as 8) an orphaned FIN_WAIT1 with a silent peer lives
    about 100 s, not 60 s: its FIN is retransmitted on a doubling RTO from ~200 ms.

    tcp_orphan_retries() turns 0 into 8 while the RTO is below TCP_RTO_MAX; the orphan ends when the time
    since the first RTO retransmission reaches tcp_model_timeout(8, TCP_RTO_MIN) = 511 * 200 ms = 102.2 s,
    checked at RTO expiries. The case reads the default, checks the first retransmissions' doubling on the
    wire (probe, then RTO), and derives the lifetime from the kernel's model (measured end to end by the slow case)."""
    track = Track(pair, "client")
    default = int(pair.namespaces["client"].sysctl_get("net.ipv4.tcp_orphan_retries"))
    assert default == 0, f"tcp_orphan_retries default in a fresh namespace is {default}, expected 0"
    rto = pair.client.rto_s()
    retries = orphan_retries_effective(default)
    expected_rtx, end_after_first = orphan_fin_wait1_model(retries, rto)
    pair.drop(towards="server", name="blackhole")
    pair.client.close()
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    tlp = pair.wire.expect("client", "FA", seq=fin.seq, within=rto + 0.1, since=fin.ts)
    first = pair.wire.expect("client", "FA", seq=fin.seq, within=rto * 1.125 + 0.1, since=tlp.ts)
    pair.expect_duration("loss probe to the first RTO retransmission", tlp.ts, first.ts, timer_window(rto),
                         "wire")
    track.poll()
    state = track.last["client"]
    assert state.state == "FIN_WAIT1" and state.timer == "retrans", state
    lifetime = first.ts - fin.ts + end_after_first
    confirmed = abs(lifetime - 60.0) <= 0.1 * 60.0
    pair.claim_verdict(confirmed, (
        f"tcp_orphan_retries defaults to {default} (used as {retries}); RTO {rto * 1000:.0f} ms, FIN resent "
        f"after {tlp.ts - fin.ts:.3f} s (probe) and {first.ts - fin.ts:.3f} s (RTO); the kernel's model gives "
        f"{expected_rtx} RTO retransmissions and an end ~{lifetime:.0f} s after the FIN "
        f"(budget {model_timeout_s(retries):.1f} s), not 60 s."))


# --- FIN_WAIT2 --------------------------------------------------------------------------------------------

@claim(FIN_WAIT2_60S)
@reference("RFC 9293 §3.10.4 (FIN-WAIT-2 has no timeout in the RFC)",
           kernel=("include/net/tcp.h tcp_fin_time()", "net/ipv4/tcp_input.c tcp_rcv_state_process() FIN_WAIT1",
                   "net/ipv4/tcp_minisocks.c tcp_time_wait()"))
def test_fin_wait2_60_s_default_applies_only_to_orphans(pair):
    """tcp_fin_timeout defaults to 60 s and bounds an orphaned FIN_WAIT2 (the fd closed); a FIN_WAIT2 whose
    fd is still open (after shutdown(SHUT_WR)) has no timer at all.

    When the ACK of an orphan's FIN arrives, tcp_rcv_state_process() arms tcp_fin_time() (tcp_fin_timeout, or
    TCP_LINGER2): at 60 s (not above TCP_TIMEWAIT_LEN) the socket becomes a timewait mini-socket in the
    FIN_WAIT2 substate with a 60 s timer. A socket that still has its fd is never timed out."""
    second = pair.connect_client(name="halfclosed")
    second_srv = pair.accept(name="halfclosed_server")
    track = Track(pair, "client", "halfclosed")
    default = int(pair.namespaces["client"].sysctl_get("net.ipv4.tcp_fin_timeout"))
    pair.client.close()
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
    track.until_state("client", "FIN_WAIT2", within=PROMPT_S)
    orphan = pair.expect_state("client", "FIN_WAIT2", timer="timewait", why="an orphan FIN_WAIT2")
    second.shutdown("SHUT_WR")
    track.until_state("halfclosed", "FIN_WAIT2", within=PROMPT_S)
    held = pair.expect_state("halfclosed", "FIN_WAIT2", timer="none", why="a FIN_WAIT2 with its fd open")
    assert second_srv.recv() == b""
    window = timer_window(float(default), "sock_diag")
    pair.expect_duration("orphan FIN_WAIT2 timer read-out", 0, orphan.expires_ms / 1000 + time.time() - fin.ts,
                         window, "sock_diag")
    confirmed = default == 60 and window.contains(orphan.expires_ms / 1000 + time.time() - fin.ts)
    pair.claim_verdict(confirmed, (
        f"tcp_fin_timeout defaults to {default} s and the orphan FIN_WAIT2 read timer=timewait "
        f"{orphan.expires_ms} ms; but a FIN_WAIT2 after shutdown(SHUT_WR) read timer={held.timer}: the 60 s "
        "bounds only the orphan that close() leaves."))


@claim(FIN_WAIT2_EXPIRES)
@pytest.mark.sysctls({"net.ipv4.tcp_fin_timeout": 1})
@reference("RFC 9293 §3.10.4", kernel=("include/net/tcp.h tcp_fin_time()",
                                      "net/ipv4/tcp_minisocks.c tcp_time_wait() (inet_twsk_hashdance_schedule() arms the timer)",
                                      "net/ipv4/inet_timewait_sock.c tw_timer_handler()"))
def test_orphan_fin_wait2_expires_silently_to_closed(pair):
    """An orphaned FIN_WAIT2 that never gets the peer's FIN vanishes after tcp_fin_timeout (1 s here),
    directly, without sending anything.

    The orphan is a timewait mini-socket in the FIN_WAIT2 substate; tw_timer_handler() just frees it: no RST,
    no FIN. The peer is left in CLOSE_WAIT; if it writes later, it gets an RST from the now socket-less host."""
    track = Track(pair, "client", "server")
    pair.client.close()
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    ack = pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
    track.until_state("client", "FIN_WAIT2", within=PROMPT_S)
    gone = track.until_state("client", "CLOSED", within=2.5)
    pair.expect_duration("orphan FIN_WAIT2 lifetime", ack.ts, gone, timer_window(1.0, "sock_diag"), "sock_diag")
    pair.wire.expect_no("client", during=gone - ack.ts + 0.02, since=ack.ts)
    assert track.seen["client"][-2:] == ["FIN_WAIT2", "CLOSED"], track.seen
    assert track.last["server"].state == "CLOSE_WAIT"
    pair.claim_verdict(track.seen["client"][-2:] == ["FIN_WAIT2", "CLOSED"], (
        f"orphan FIN_WAIT2 went straight to CLOSED {gone - ack.ts:.2f} s after the ACK of its FIN with "
        "tcp_fin_timeout=1, sending nothing (the peer stays in CLOSE_WAIT)."))


@claim(FIN_WAIT2_FIN)
@reference("RFC 9293 §3.10.7.4 (FIN-WAIT-2)", kernel=("net/ipv4/tcp_input.c tcp_fin() TCP_FIN_WAIT2",
                                                     "net/ipv4/tcp_minisocks.c tcp_time_wait()"))
def test_peer_fin_in_fin_wait2_leads_to_time_wait(pair):
    """The peer's FIN in FIN_WAIT2 is ACKed and the socket enters TIME_WAIT (timer 60 s).

    tcp_fin() in FIN_WAIT2 sends the ACK and calls tcp_time_wait(sk, TCP_TIME_WAIT, 0)."""
    track = Track(pair, "client", "server")
    _fin_then_peer_fin(pair, track)
    tw = pair.expect_state("client", "TIME_WAIT", timer="timewait")
    track.poll(until=lambda st: st["server"].state == "CLOSED")
    assert track.seen["client"][-2:] == ["FIN_WAIT2", "TIME_WAIT"], track.seen
    assert track.seen["server"][-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"] or \
        track.seen["server"][-2:] == ["CLOSE_WAIT", "CLOSED"], track.seen
    pair.claim_verdict(track.seen["client"][-2:] == ["FIN_WAIT2", "TIME_WAIT"], (
        f"client states {' -> '.join(track.seen['client'])}; after the peer's FIN it read TIME_WAIT "
        f"timer=timewait {tw.expires_ms} ms."))


# --- FIN_WAIT1 + FIN: CLOSING ----------------------------------------------------------------------------

@claim(FIN_WAIT1_FIN)
@reference("RFC 9293 §3.6 (simultaneous close)", "RFC 9293 §3.10.7.4 (FIN-WAIT-1)",
           kernel=("net/ipv4/tcp_input.c tcp_fin() TCP_FIN_WAIT1",
                   "net/ipv4/tcp_input.c tcp_rcv_state_process() TCP_CLOSING"))
def test_peer_fin_in_fin_wait1_leads_to_closing(pair):
    """A FIN that arrives in FIN_WAIT1 without acknowledging our FIN moves the socket to CLOSING; the ACK of
    our FIN then moves it to TIME_WAIT.

    The client's FIN is dropped so the server, still ESTABLISHED, sends its own FIN (ack not covering the
    client's). tcp_fin() in FIN_WAIT1 ACKs it and sets CLOSING; when the retransmitted FIN is ACKed,
    tcp_rcv_state_process() goes CLOSING -> TIME_WAIT. (A FIN that also ACKs ours skips CLOSING.)"""
    track = Track(pair, "client", "server")
    pair.drop(towards="server", name="client-fins", has="F")
    pair.client.close()
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    track.until_state("client", "FIN_WAIT1", within=PROMPT_S)
    pair.server.close()
    server_fin = pair.wire.expect("server", "FA", ack=fin.seq, within=PROMPT_S,
                                  why="the server's FIN does not acknowledge the (dropped) client FIN")
    pair.wire.expect("client", "A", ack=server_fin.seq + 1, within=PROMPT_S)
    closing = track.until_state("client", "CLOSING", within=PROMPT_S)
    pair.expect_state("client", "CLOSING", timer="retrans", why="the client's FIN is still unacknowledged")
    pair.undrop(towards="server", name="client-fins")
    again = pair.wire.expect("client", "FA", seq=fin.seq, within=2.0, since=fin.ts, why="the FIN is retransmitted")
    pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S, since=again.ts)
    track.until_state("client", "TIME_WAIT", within=PROMPT_S)
    assert "CLOSE_WAIT" not in track.seen["client"], track.seen
    seen = track.seen["client"]
    pair.claim_verdict(seen[-3:] == ["FIN_WAIT1", "CLOSING", "TIME_WAIT"], (
        f"with the client's FIN dropped, the server's FIN (ack {server_fin.ack}, not covering it) arrived "
        f"{server_fin.ts - fin.ts:.3f} s after it; client states {' -> '.join(seen)}, CLOSING read "
        f"{closing - server_fin.ts:.3f} s after that FIN."))


# --- TIME_WAIT --------------------------------------------------------------------------------------------

@claim(TIME_WAIT_2MSL)
@pytest.mark.sysctls({"net.ipv4.tcp_fin_timeout": 1})
@reference("RFC 9293 §3.4.2 (MSL = 2 min)", "RFC 9293 §3.10.7.4 (TIME-WAIT 2 MSL)",
           kernel=("include/net/tcp.h TCP_TIMEWAIT_LEN", "net/ipv4/tcp_minisocks.c tcp_time_wait()"))
def test_time_wait_is_a_fixed_60_s_not_two_rfc_msl(pair):
    """TIME_WAIT lasts a fixed 60 s (TCP_TIMEWAIT_LEN), not 2*MSL of RFC 9293 (4 min), and no sysctl
    changes it: with tcp_fin_timeout=1 the timer still reads ~60 s.

    tcp_time_wait(sk, TCP_TIME_WAIT, 0) arms TCP_TIMEWAIT_LEN (a compile-time constant, "about 60 s"); Linux
    has no MSL setting. The RFC's MSL is 2 minutes, so RFC 2MSL is 240 s."""
    track = Track(pair, "client", "server")
    server_fin, _ack = _fin_then_peer_fin(pair, track)
    tw = pair.expect_state("client", "TIME_WAIT", timer="timewait")
    readout = tw.expires_ms / 1000 + time.time() - server_fin.ts
    pair.expect_duration("TIME_WAIT timer (read-out + time since the FIN)", 0, readout,
                         timer_window(TIME_WAIT_LEN_S, "sock_diag"), "sock_diag")
    pair.wire.expect_no("client", during=0.05, since=time.time())
    confirmed = timer_window(2 * RFC_MSL_S, "sock_diag").contains(readout)
    pair.claim_verdict(confirmed, (
        f"TIME_WAIT timer read {tw.expires_ms} ms ({readout:.2f} s from the FIN) with tcp_fin_timeout=1: a "
        f"fixed TCP_TIMEWAIT_LEN of 60 s, not 2 x RFC MSL = {2 * RFC_MSL_S:.0f} s; no MSL sysctl exists."))


@claim(TIME_WAIT_DISCARDS)
@reference("RFC 9293 §3.10.7.4 (TIME-WAIT: FIN retransmission is acknowledged, timer restarted)",
           "RFC 1337 §3 (TIME-WAIT assassination)",
           kernel=("net/ipv4/tcp_minisocks.c tcp_timewait_state_process()",
                   "net/ipv4/tcp_ipv4.c tcp_v4_timewait_ack()"))
def test_time_wait_answers_a_late_fin_and_dies_on_rst(pair):
    """TIME_WAIT does not silently discard late segments: a late (retransmitted) FIN is answered with an ACK
    and restarts the 60 s timer, and an in-window RST destroys the TIME_WAIT socket (tcp_rfc1337=0).

    tcp_timewait_state_process() returns TCP_TW_ACK for a retransmitted FIN after
    inet_twsk_reschedule(tw, TCP_TIMEWAIT_LEN), and kills the timewait socket on an RST unless tcp_rfc1337
    is set. The server is blackholed so its own answers cannot interfere; the late segments are injected."""
    track = Track(pair, "client", "server")
    rfc1337 = pair.namespaces["client"].sysctl_get("net.ipv4.tcp_rfc1337")
    server_fin, _ack = _fin_then_peer_fin(pair, track)
    track.poll(until=lambda st: st["server"].state == "CLOSED")
    pair.drop(towards="server", name="blackhole")
    time.sleep(0.3)  # let the 60 s timer count down, so that a restart by the late FIN is visible in its read-out
    before = pair.expect_state("client", "TIME_WAIT", timer="timewait")
    first_late = len(pair.wire.segments())
    fin_at = time.time()
    pair.inject("server", "FA", seq=server_fin.raw_seq, ack=server_fin.raw_ack)
    reply = pair.wire.expect("client", "A", ack=server_fin.seq + 1, within=PROMPT_S,
                             why="a retransmitted FIN in TIME_WAIT is ACKed again")
    after = pair.expect_state("client", "TIME_WAIT", timer="timewait")
    assert after.expires_ms > before.expires_ms + 200, f"timer not restarted: {before} -> {after}"
    pair.expect_duration("TIME_WAIT timer after the late FIN (read-out)", 0, after.expires_ms / 1000,
                         timer_window(TIME_WAIT_LEN_S, "sock_diag"), "sock_diag")
    rst_at = time.time()
    pair.inject("server", "R", seq=server_fin.raw_seq + 1)
    gone = track.until_state("client", "CLOSED", within=PROMPT_S)
    pair.wire.expect_no("client", during=0.05, since=rst_at)
    answered = [s for s in pair.wire.all("client", start=first_late)]
    discarded = not answered and "TIME_WAIT" in track.seen["client"][-1:]
    pair.claim_verdict(discarded, (
        f"a late FIN injected into TIME_WAIT was answered with an ACK {(reply.ts - fin_at) * 1000:.1f} ms later "
        f"and the timer went from {before.expires_ms} to {after.expires_ms} ms; an RST (tcp_rfc1337={rfc1337}) "
        f"removed the TIME_WAIT socket within {(gone - rst_at) * 1000:.0f} ms."))


@claim(TIME_WAIT_THEN_ACK)
@reference("RFC 9293 §3.10.7.4 (FIN-WAIT-2: enter TIME-WAIT, acknowledge the FIN)",
           kernel=("net/ipv4/tcp_input.c tcp_fin() (tcp_send_ack() then tcp_time_wait())",))
def test_last_ack_and_time_wait_happen_together_on_the_peer_fin(pair):
    """On the peer's FIN in FIN_WAIT2 the last ACK leaves at once and the socket is in TIME_WAIT, its 60 s
    counted from that FIN; inside the kernel the ACK is sent first, then TIME_WAIT is entered.

    tcp_fin() calls tcp_send_ack(sk) and then tcp_time_wait(sk, TCP_TIME_WAIT, 0) in the same softirq, so
    from outside the two are simultaneous (within the 4 ms jiffy); the order the article gives is the
    reverse of the source but indistinguishable on the wire."""
    track = Track(pair, "client", "server")
    server_fin, last_ack = _fin_then_peer_fin(pair, track)
    tw = pair.expect_state("client", "TIME_WAIT", timer="timewait")
    remaining = tw.expires_ms / 1000 + time.time() - server_fin.ts
    delay = last_ack.ts - server_fin.ts
    pair.expect_duration("peer FIN to the last ACK", server_fin.ts, last_ack.ts,
                         timer_window(0.0, "wire"), "wire", why="the last ACK is not delayed")
    pair.expect_duration("TIME_WAIT timer counted from the peer FIN (read-out + time since the FIN)", 0,
                         remaining, timer_window(TIME_WAIT_LEN_S, "sock_diag"), "sock_diag")
    confirmed = delay <= PROMPT_S and track.seen["client"][-1] == "TIME_WAIT"
    pair.claim_verdict(confirmed, (
        f"the last ACK left {delay * 1e6:.0f} us after the peer's FIN and the TIME_WAIT timer counts 60 s from "
        f"that FIN ({remaining:.2f} s); the kernel sends the ACK just before tcp_time_wait(), an order no "
        "observer can tell apart."))


# --- CLOSE_WAIT and LAST_ACK -----------------------------------------------------------------------------

@claim(CLOSE_WAIT_PASSIVE)
@reference("RFC 9293 §3.6", "RFC 9293 §3.10.7.4 (ESTABLISHED + FIN -> CLOSE-WAIT)",
           kernel="net/ipv4/tcp_input.c tcp_fin() TCP_ESTABLISHED")
def test_close_wait_only_on_the_side_that_receives_the_first_fin(pair):
    """CLOSE_WAIT appears only on the side that receives a FIN while ESTABLISHED, i.e. the passive closer,
    whichever of client or server that is.

    tcp_fin() moves ESTABLISHED (or SYN_RECV) to CLOSE_WAIT; a side that has sent its FIN is in FIN_WAIT1/2 and
    goes to CLOSING or TIME_WAIT instead. Here the accepting side closes first, so the connecting side is the
    passive one and is the only one in CLOSE_WAIT."""
    track = Track(pair, "client", "server")
    pair.server.close()
    fin = pair.wire.expect("server", "FA", within=PROMPT_S)
    pair.wire.expect("client", "A", ack=fin.seq + 1, within=PROMPT_S)
    track.until_state("client", "CLOSE_WAIT", within=PROMPT_S)
    assert pair.client.recv() == b""
    pair.client.close()
    cfin = pair.wire.expect("client", "FA", within=PROMPT_S)
    pair.wire.expect("server", "A", ack=cfin.seq + 1, within=PROMPT_S)
    track.until_state("server", "TIME_WAIT", within=PROMPT_S)
    track.poll(until=lambda st: st["client"].state == "CLOSED")
    assert "CLOSE_WAIT" not in track.seen["server"], track.seen
    confirmed = "CLOSE_WAIT" in track.seen["client"] and "CLOSE_WAIT" not in track.seen["server"]
    pair.claim_verdict(confirmed, (
        f"the first FIN came from the server; server states {' -> '.join(track.seen['server'])}, client "
        f"states {' -> '.join(track.seen['client'])}: CLOSE_WAIT only on the side receiving the first FIN."))


@claim(CLOSE_WAIT_TIMEOUT)
@pytest.mark.sysctls({"net.ipv4.tcp_fin_timeout": 1})
@reference("RFC 9293 §3.10.7.4 (CLOSE-WAIT has no timeout)",
           kernel=("net/ipv4/tcp_input.c tcp_fin() TCP_ESTABLISHED", "net/ipv4/tcp.c tcp_close_state()"))
def test_close_wait_has_no_timeout(pair):
    """CLOSE_WAIT has no timer: it lasts until the application calls close() (or shutdown()), however long
    that takes, and never moves to CLOSED by itself.

    tcp_fin() sets CLOSE_WAIT and arms nothing (keepalive is off by default). Here the peer's orphan FIN_WAIT2
    times out after tcp_fin_timeout=1 and vanishes, while the CLOSE_WAIT socket stays, timer none, silent;
    close() then takes it to LAST_ACK (and the socket-less peer answers the FIN with an RST)."""
    track = Track(pair, "client", "server")
    pair.client.close()
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    ack = pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
    entered = track.until_state("server", "CLOSE_WAIT", within=PROMPT_S)
    pair.expect_state("server", "CLOSE_WAIT", timer="none", why="nothing is armed in CLOSE_WAIT")
    track.until_state("client", "CLOSED", within=2.5)
    track.poll(0.2)
    held = time.time() - entered
    still = pair.expect_state("server", "CLOSE_WAIT", timer="none")
    pair.wire.expect_no("server", during=time.time() - ack.ts, since=ack.ts + 1e-6,
                        why="nothing is sent from CLOSE_WAIT before close()")
    pair.server.close()
    pair.wire.expect("server", "FA", within=PROMPT_S)
    pair.wire.expect("client", "R", within=PROMPT_S, why="the peer's orphan is gone: its host resets")
    confirmed = still.state != "CLOSE_WAIT"
    pair.claim_verdict(confirmed, (
        f"CLOSE_WAIT held {held:.2f} s with timer={still.timer}, outliving the peer's orphan FIN_WAIT2 "
        f"(tcp_fin_timeout=1, gone {track.first_seen('client', 'CLOSED') - fin.ts:.2f} s after its FIN); "
        "only close() ended it (FIN sent, answered by RST)."))


@claim(LAST_ACK_PASSIVE)
@reference("RFC 9293 §3.6 (simultaneous close: CLOSING, no LAST-ACK)",
           kernel=("net/ipv4/tcp.c tcp_close_state() (CLOSE_WAIT -> LAST_ACK only)",
                   "net/ipv4/tcp_input.c tcp_fin() TCP_FIN_WAIT1"))
def test_last_ack_not_reached_in_simultaneous_close(pair):
    """LAST_ACK is only reached from CLOSE_WAIT, i.e. on the passive side: in a simultaneous close both
    sides go FIN_WAIT1 -> CLOSING -> TIME_WAIT and neither passes LAST_ACK.

    tcp_close_state() maps CLOSE_WAIT to LAST_ACK and ESTABLISHED to FIN_WAIT1; a FIN arriving in FIN_WAIT1
    gives CLOSING (tcp_fin). FINs are held back until both sides closed; then the original FINs are replayed
    and, until both are CLOSING, only FINs that do not acknowledge the receiver's FIN pass (no pure ACKs), so
    the FINs cross on every run."""
    track = Track(pair, "client", "server")
    for side in ("server", "client"):
        pair.drop(towards=side, name="fins", has="F")
    pair.client.close()
    pair.server.close()
    cfin = pair.wire.expect("client", "FA", within=PROMPT_S)
    sfin = pair.wire.expect("server", "FA", within=PROMPT_S, since=cfin.ts)
    track.poll(until=lambda st: st["client"].state == st["server"].state == "FIN_WAIT1")
    own_fin_acked = {"client": cfin.raw_seq + 1, "server": sfin.raw_seq + 1}
    for side in ("server", "client"):
        pair.drop(towards=side, name="acks", exactly="A")
        pair.drop(towards=side, name="fins-acking-ours", has="F", match=f"tcp ackseq {own_fin_acked[side] % 2**32}")
        pair.undrop(towards=side, name="fins")
    # deliver the held-back original FINs (a retransmission may already acknowledge the other side's FIN)
    pair.inject("server", "FA", seq=sfin.raw_seq, ack=sfin.raw_ack)
    pair.inject("client", "FA", seq=cfin.raw_seq, ack=cfin.raw_ack)
    track.poll(2.0, until=lambda st: st["client"].state == st["server"].state == "CLOSING")
    for side in ("server", "client"):
        pair.undrop(towards=side, name="acks")
        pair.undrop(towards=side, name="fins-acking-ours")
    track.poll(3.0, until=lambda st: st["client"].state == st["server"].state == "TIME_WAIT")
    for side in ("client", "server"):
        assert track.seen[side][-3:] == ["FIN_WAIT1", "CLOSING", "TIME_WAIT"], track.seen
    assert cfin.ack == 1 and sfin.ack == 1, "the first FINs crossed (neither acknowledges the other)"
    no_last_ack = all("LAST_ACK" not in s and "CLOSE_WAIT" not in s for s in track.seen.values())
    pair.claim_verdict(no_last_ack, (
        f"simultaneous close: client {' -> '.join(track.seen['client'])}, server "
        f"{' -> '.join(track.seen['server'])}; LAST_ACK only follows CLOSE_WAIT, so only a passive closer has it."))


# --- closing a listener -----------------------------------------------------------------------------------

@claim(LISTENER_RST)
@reference("RFC 9293 §3.10.4 (CLOSE in LISTEN / SYN-RECEIVED)",
           kernel=("net/ipv4/inet_connection_sock.c inet_csk_listen_stop()",
                   "net/ipv4/inet_connection_sock.c reqsk_timer_handler()", "net/ipv4/tcp.c tcp_disconnect()"))
def test_listener_close_does_not_reset_half_open_connections(lab):
    """Closing a listener sends nothing to half-open connections (SYN received, final ACK missing): their
    request socks are freed silently when the SYN-ACK timer next fires. Only fully established children that
    were not yet accept()ed are reset.

    inet_csk_listen_stop() disconnects the accept queue's children (tcp_disconnect() -> RST); request socks
    live in the established hash with their own timer, and reqsk_timer_handler() drops them without a
    segment once the listener is no longer LISTEN. The client, which thinks it is ESTABLISHED, hears nothing."""
    lab.listen()
    lab.drop(towards="server", name="final-acks", exactly="A")
    half = lab.connect_client(name="halfopen")
    half_synack = lab.wire.expect("server", "SA", within=PROMPT_S)
    lab.undrop(towards="server", name="final-acks")
    lab.connect_client(name="queued")
    queued_synack = lab.wire.expect("server", "SA", within=PROMPT_S)
    lab.sampler.watch("request", lab.probes["server"], lab.listener.port, half.port)
    track = Track(lab, "request", "halfopen", "queued")
    track.until_state("request", "SYN_RECV", within=PROMPT_S)
    closed_at = time.time()
    lab.listener.close()
    rst = lab.wire.expect("server", "RA", within=PROMPT_S, why="the queued, not accepted child is reset")
    assert rst.raw_seq == queued_synack.raw_seq + 1, "the RST belongs to the queued child's connection"
    gone = track.until_state("request", "CLOSED", within=SYNACK_TIMEOUT_S * 1.5)
    lab.expect_duration("request sock after its SYN-ACK (freed by the SYN-ACK timer)", half_synack.ts, gone,
                        timer_window(SYNACK_TIMEOUT_S, "sock_diag"), "sock_diag")
    lab.wire.expect_no("server", during=0.05, since=gone)
    to_half = [s for s in lab.wire.all("server") if s.ts >= closed_at and
               s.raw_seq in (half_synack.raw_seq, half_synack.raw_seq + 1)]
    assert not to_half, lab.explain("a segment reached the half-open connection after the listener closed")
    assert track.last["halfopen"].state == "ESTABLISHED", "the half-open client was never told"
    lab.claim_verdict(any("R" in s.flags for s in to_half), (
        f"after close() of the listener the half-open request sock vanished {gone - half_synack.ts:.2f} s after "
        "its SYN-ACK with no segment sent (its client still ESTABLISHED); only the queued, established child got "
        f"an RST ({(rst.ts - closed_at) * 1000:.2f} ms after close() began)."))


@claim(LISTENER_KEEPALIVE)
@reference("RFC 1122 §4.2.3.6", kernel=("net/ipv4/tcp_timer.c tcp_set_keepalive() (not for LISTEN)",
                                       "net/ipv4/inet_connection_sock.c inet_csk_listen_stop()",
                                       "net/ipv4/tcp_timer.c tcp_keepalive_timer()"))
def test_listener_has_no_keepalive_timer_and_close_leaves_connections_keepalive(lab):
    """A listening socket has no keepalive timer to remove, even with SO_KEEPALIVE set, and closing it leaves
    the keepalive of its accepted connections running.

    tcp_set_keepalive() arms nothing in LISTEN or CLOSE; accepted sockets inherit SO_KEEPALIVE and own
    their timers, which inet_csk_listen_stop() does not touch. (In kernels before 4.4 the listener's sk_timer
    drove the SYN-ACK retransmissions, which is likely what the article saw.)"""
    lab.listen()
    lab.listener.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, "SO_KEEPALIVE 1")
    lab.connect_client()
    server = lab.accept()
    track = Track(lab, "listener", "server")
    listening = lab.expect_state("listener", "LISTEN", timer="none", why="a listener with SO_KEEPALIVE")
    assert server.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1, "SO_KEEPALIVE is inherited"
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1, "TCP_KEEPIDLE 1")
    lab.listener.close()
    track.until_state("listener", "CLOSED", within=PROMPT_S)
    child = lab.expect_state("server", "ESTABLISHED", timer="keepalive")
    idle = time.time() - lab.wire.segments()[-1].ts
    lab.expect_duration("keepalive timer of the accepted connection (idle + read-out)", 0,
                        idle + child.expires_ms / 1000, timer_window(1.0, "sock_diag"), "sock_diag")
    lab.wire.expect_no("server", during=0.05, why="closing the listener sends nothing to accepted connections")
    confirmed = listening.timer == "keepalive"
    lab.claim_verdict(confirmed, (
        f"the listener with SO_KEEPALIVE read timer={listening.timer}; after its close() the accepted "
        f"connection still had timer={child.timer} due {child.expires_ms} ms later (TCP_KEEPIDLE 1) and nothing "
        "was sent to it."))


# --- what close() sends -----------------------------------------------------------------------------------

@claim(UNREAD_RST)
@reference("RFC 9293 §3.10.4", "RFC 2525 §2.17", "RFC 1122 §4.2.2.13", kernel="net/ipv4/tcp.c __tcp_close()")
def test_close_with_unread_data_resets_the_peer(pair):
    """close() with received but unread data sends an RST (no FIN), and the peer's next recv() fails with
    ECONNRESET.

    __tcp_close() counts the unread bytes (data_was_unread) and sends an active reset (TCPAbortOnClose)."""
    track = Track(pair, "client", "server")
    pair.server.sendall(b"x" * 1000)
    pair.client.wait_readable()
    unread = pair.client.unread_bytes()
    pair.client.close()
    rst = pair.wire.expect("client", "RA", within=PROMPT_S)
    pair.wire.expect_no("client", has="F", during=0.05)
    track.until_state("client", "CLOSED", within=PROMPT_S)
    with pytest.raises(ConnectionResetError):
        pair.server.recv()
    pair.expect_nstat("client", "TcpExtTCPAbortOnClose", 1)
    pair.claim_verdict("R" in rst.flags and pair.wire.count("client", has="F") == 0, (
        f"close() with {unread} unread bytes sent [{rst.flags}] "
        f"{(rst.ts - pair.log.last('client', 'close').t) * 1e6:.0f} us later and no FIN; the peer's recv() "
        "raised ECONNRESET."))


@claim(FIN_PIGGYBACK)
@reference("RFC 9293 §3.10.4 (CLOSE: queue the FIN after pending SENDs)",
           kernel=("net/ipv4/tcp_output.c tcp_send_fin()", "net/ipv4/tcp.c __tcp_close()"))
def test_close_puts_the_fin_on_the_last_queued_data_segment(pair):
    """When data is still queued, close() sets FIN on the last queued segment instead of sending a separate
    one, and pushes it with Nagle off.

    tcp_send_fin() marks the write queue's tail skb with FIN if it has not been sent yet, then calls
    __tcp_push_pending_frames(..., TCP_NAGLE_OFF). Here TCP_CORK holds 100 bytes back until close()."""
    track = Track(pair, "client")
    pair.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1, "TCP_CORK 1")
    pair.client.send(b"y" * 100)
    pair.wire.expect_no("client", during=0.02, why="corked: the 100 bytes stay queued")
    pair.client.close()
    seg = pair.wire.expect("client", has="F", within=PROMPT_S)
    pair.wire.expect("server", "A", ack=seg.seq + seg.length + 1, within=PROMPT_S)
    track.until_state("client", "FIN_WAIT2", within=PROMPT_S)
    data_segments = [s for s in pair.wire.all("client") if s.length > 0]
    assert seg.length == 100 and data_segments == [seg], pair.explain("expected FIN on the 100-byte segment")
    assert pair.server.recv_exactly(100) == b"y" * 100
    pair.claim_verdict(seg.length == 100 and "F" in seg.flags, (
        f"with 100 corked bytes queued, close() sent one [{seg.flags}] segment of {seg.length} bytes carrying the "
        "FIN; no separate FIN segment."))


@claim(BARE_FIN)
@reference("RFC 9293 §3.10.4", "RFC 9293 §3.10.7.4 (every segment after SYN carries ACK)",
           kernel="net/ipv4/tcp_output.c tcp_send_fin() (TCPHDR_ACK | TCPHDR_FIN)")
def test_close_with_nothing_queued_sends_a_dataless_fin_ack(pair):
    """With nothing queued, close() sends a segment without data carrying FIN and ACK, not FIN alone.

    tcp_send_fin() allocates a new skb with TCPHDR_ACK | TCPHDR_FIN when the write queue is empty; RFC 9293
    has ACK set on every segment of a synchronized connection."""
    pair.server.sendall(b"z" * 10)
    assert pair.client.recv_exactly(10) == b"z" * 10
    pair.client.close()
    fin = pair.wire.expect("client", has="F", within=PROMPT_S)
    pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
    assert fin.length == 0 and fin.flags.replace("P", "") == "FA", pair.explain(f"FIN segment {fin.flags}")
    pair.claim_verdict(fin.flags == "F" and fin.length == 0, (
        f"close() with nothing queued sent one segment [{fin.flags}] of {fin.length} bytes: no data, but the ACK "
        "flag is set along with FIN (as on every segment after the handshake)."))


@claim(SO_LINGER_HEADING)
@reference("RFC 9293 §3.10.4", "RFC 1122 §4.2.2.13",
           kernel=("net/ipv4/tcp.c __tcp_close() (SOCK_LINGER, sk_lingertime)", "include/net/sock.h sk_wait_event()"))
def test_so_linger_makes_close_block_until_the_fin_is_acked_or_the_linger_time(pair):
    """With SO_LINGER {1,N} close() blocks until the FIN is acknowledged or N s pass; at expiry it returns 0
    and leaves an orphan in FIN_WAIT1 that keeps retransmitting (no RST). Without SO_LINGER close() returns
    at once. (The article's SO_LINGER section stops at its heading.)

    __tcp_close() sends the FIN and, when SOCK_LINGER is set with a non-zero time, waits in
    sk_stream_wait_close() for the state to leave FIN_WAIT1/CLOSING/LAST_ACK; on timeout it just orphans."""
    Track(pair, "client")
    pair.drop(towards="server", name="blackhole")
    pair.client.set_linger(True, 1)
    pair.client.close()
    call = pair.log.last("client", "close")
    assert call.result == "0" and call.errno is None, call
    pair.expect_duration("close() with SO_LINGER {1,1} and a silent peer", call.t, call.t_end,
                         timer_window(1.0, "syscall"), "syscall")
    fin = pair.wire.expect("client", "FA", within=PROMPT_S, since=call.t)
    pair.wire.expect("client", "FA", seq=fin.seq, within=1.0, since=fin.ts, why="the FIN is retransmitted")
    pair.wire.expect_no("client", has="R", during=call.t_end - call.t + 0.05, since=call.t)
    left = pair.expect_state("client", "FIN_WAIT1", timer="retrans", why="the orphan outlives the linger time")
    blocked = call.t_end - call.t
    pair.claim_verdict(blocked >= 0.9, (
        f"with SO_LINGER {{1,1}} and the peer blackholed, close() blocked {blocked:.2f} s, returned 0, sent a "
        f"FIN (no RST) and left FIN_WAIT1 retrans={left.retrans}."))

