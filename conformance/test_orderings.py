"""Both sides closing: active/passive close with every state held long enough to be seen, FINs that cross
(CLOSING on one side or on both), and data that arrives after the receiving side has closed."""

import socket
import time

import pytest

from conformance.claims import Key
from fixtures.constants import TCP_TIMEWAIT_LEN_S
from fixtures.kernel_changes import TCP_LINGER2_LIMIT
from fixtures.references import reference
from fixtures.tolerance import CAPTURE_LAG_S, PROMPT_S, Window, chain_window, rto_basis, timer_window, wait_s

OTHER = {"client": "server", "server": "client"}


def probe_window(lab, side: str) -> Window:
    """When a lone unacknowledged FIN is sent again: tcp_schedule_loss_probe() arms a tail-loss probe at
    2*srtt + rto_min when one segment is in flight, capped by the RTO (rto_min: tcp_rto_min(), the namespace's
    tcp_rto_min_us since 6.11, 200 ms by default, measured); without a tail-loss probe (tcp_early_retrans) the RTO
    resends it. Read before close(): tcp_info needs the fd."""
    info = lab.endpoints[side].tcp_info()
    rto_min = lab.rto_min_s(side, why="the FIN's first resend")
    rto = info["rto"] / 1e6
    if not lab.retransmission(side).tlp:
        return timer_window(rto, basis=rto_basis(rto, rto, rto_min))
    return timer_window(min(2 * info["rtt"] / 1e6 + rto_min, rto),
                        basis=f"loss probe: 2·srtt + rto_min {rto_min:g} s, at most the RTO")


@pytest.mark.parametrize("closer", ["client", "server"])
@reference("RFC 9293 §3.6 (Figure 12, normal close)", "RFC 9293 §3.10.7.4",
           kernel=("net/ipv4/tcp_input.c tcp_rcv_state_process() FIN_WAIT1/LAST_ACK",
                   "net/ipv4/tcp_output.c tcp_schedule_loss_probe()", "net/ipv4/tcp_minisocks.c tcp_time_wait()"))
def test_active_close_every_state_on_both_sides(pair, closer):
    """Active and passive close with every state held and seen: FIN_WAIT1, FIN_WAIT2, TIME_WAIT / CLOSE_WAIT,
    LAST_ACK, gone.

    Pure ACKs towards the closing side are dropped, so its FIN stays unacknowledged (FIN_WAIT1, then LAST_ACK
    on the other side, both with a retransmission timer) and the kernel sends it again: a tail-loss probe
    (tcp_schedule_loss_probe: 2*srtt + rto_min for one segment in flight, TCPLossProbes) rather than an RTO.
    Then a copy of the last dropped ACK, one hop later, moves the closer to FIN_WAIT2 (an orphan: timewait
    mini-socket); the passive side's resent FIN is answered from TIME_WAIT, and a copy of that answer ends the
    LAST_ACK. Either end of the connection can be the active closer. (The drop rules match what the other kernel
    sends, its own TTL, so the copies pass while the rules stay: nothing depends on how long a rule change takes
    on a loaded or emulated machine, or on whether a later resend got through first.)"""
    pair.requires_time_wait(closer, why="its TIME_WAIT answers the peer's resent FIN")
    peer = OTHER[closer]
    active, passive = pair.endpoints[closer], pair.endpoints[peer]
    window = probe_window(pair, closer)
    pair.drop(towards=closer, name="acks-to-closer", exactly="A", match=pair.sent_by_kernel(peer))
    active.close()
    fin = pair.wire.expect(closer, "FA", within=PROMPT_S)
    pair.wire.expect(peer, "A", ack=fin.seq + 1, within=PROMPT_S, why="the ACK that is dropped")
    pair.wait_state(closer, "FIN_WAIT1", within=PROMPT_S)
    pair.expect_state(closer, "FIN_WAIT1", timer="retrans", why="the FIN waits for its ACK")
    pair.wait_state(peer, "CLOSE_WAIT", within=PROMPT_S)
    again = pair.wire.expect(closer, "FA", seq=fin.seq, within=window.high_s, since=fin.ts)
    pair.expect_duration("FIN resent in FIN_WAIT1 (loss probe)", fin.ts, again.ts, window, "wire")
    ack = pair.wire.expect(peer, "A", ack=fin.seq + 1, within=PROMPT_S, since=again.ts, why="dropped as well")
    pair.wire.allow(closer, "FA", seq=fin.seq, why="resent again if its timer fires before the copy arrives")
    pair.replay(ack, hops=1)
    pair.wait_state(closer, "FIN_WAIT2", within=PROMPT_S)
    pair.expect_orphan_fin_wait2(closer)

    window = probe_window(pair, peer)
    pair.drop(towards=peer, name="acks-to-peer", exactly="A", match=pair.sent_by_kernel(closer))
    passive.close()
    last = pair.wire.expect(peer, "FA", within=PROMPT_S)
    try:
        pair.wait_state(closer, "TIME_WAIT", within=PROMPT_S)
    finally:
        time.sleep(CAPTURE_LAG_S)
        acks = [s for s in pair.wire.all(closer, "A", since=last.ts) if s.ack == last.seq + 1]
        pair.observe(Key.FIN_WAIT2_PEER_FIN, {"states": pair.states_seen(closer),
                                              "ack_delay_s": round(acks[0].ts - last.ts, 6) if acks else None},
                     f"the {peer}'s FIN reaching the {closer}'s FIN_WAIT2 (its ACK dropped at the {peer})")
    pair.wait_state(peer, "LAST_ACK", within=PROMPT_S)
    pair.expect_state(peer, "LAST_ACK", timer="retrans")
    again = pair.wire.expect(peer, "FA", seq=last.seq, within=window.high_s, since=last.ts)
    pair.expect_duration("FIN resent in LAST_ACK (loss probe)", last.ts, again.ts, window, "wire")
    ack = pair.wire.expect(closer, "A", ack=last.seq + 1, within=PROMPT_S, since=again.ts,
                           why="TIME_WAIT answers the resent FIN")
    pair.wire.allow(peer, "FA", seq=last.seq, why="resent again if its timer fires before the copy arrives")
    pair.replay(ack, hops=1)
    pair.wait_gone(peer, within=PROMPT_S)
    pair.observe(Key.CLOSE_ROLES,
                 {"active": [closer], "states": {s: pair.states_seen(s) for s in ("client", "server")}},
                 f"the {closer} closes first, then the {peer}")
    pair.expect_states_seen(closer, ["ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"])
    pair.expect_states_seen(peer, ["ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"])
    pair.expect_nstat(closer, "TcpExtTCPLossProbes", pair.retransmission(closer).loss_probes())
    pair.expect_nstat(peer, "TcpExtTCPLossProbes", pair.retransmission(peer).loss_probes())


@pytest.mark.parametrize("held", ["client", "server"])
@reference("RFC 9293 §3.6 (Figure 13, simultaneous close)", "RFC 9293 §3.10.7.4 (FIN in FIN-WAIT-1)",
           kernel=("net/ipv4/tcp_input.c tcp_fin() (FIN_WAIT1 -> CLOSING)",
                   "net/ipv4/tcp_input.c tcp_rcv_state_process() TCP_CLOSING",
                   "net/ipv4/tcp_minisocks.c tcp_timewait_state_process() (FIN_WAIT2 substate)"))
def test_fin_in_fin_wait1_goes_closing(pair, held):
    """A FIN that arrives in FIN_WAIT1 without acknowledging our FIN leads to CLOSING, then TIME_WAIT on both sides.

    The `held` side's FIN is lost (dropped at the other side), so when the other side closes, its FIN carries
    no ACK of it: tcp_fin() moves the held side FIN_WAIT1 -> CLOSING. Its ACK of that FIN takes the other
    side to FIN_WAIT2 (orphaned, a timewait mini-socket). The held FIN is resent by a loss probe (dropped
    too); a copy of it one hop later passes the rule (which matches the held kernel's own TTL), the other side
    enters TIME_WAIT and acknowledges, and the ACK takes CLOSING to TIME_WAIT. A FIN that does acknowledge our
    FIN skips CLOSING: tcp_rcv_state_process() handles the ACK first (FIN_WAIT1 -> FIN_WAIT2), then tcp_fin()
    goes to TIME_WAIT."""
    pair.requires_time_wait(held, why="CLOSING ends in TIME_WAIT")
    pair.requires_time_wait(OTHER[held], why="FIN_WAIT2 ends in TIME_WAIT")
    other = OTHER[held]
    window = probe_window(pair, held)
    pair.drop(towards=other, name="held-fin", has="F", match=pair.sent_by_kernel(held))
    pair.endpoints[held].close()
    pair.wait_state(held, "FIN_WAIT1", within=PROMPT_S)
    pair.endpoints[other].close()  # no wire wait before it: it must come before the held FIN's first resend
    fin = pair.wire.expect(held, "FA", within=PROMPT_S)
    their_fin = pair.wire.expect(other, "FA", ack=fin.seq, within=PROMPT_S, why="it does not ACK the lost FIN")
    pair.wire.expect(held, "A", ack=their_fin.seq + 1, within=PROMPT_S)
    try:
        pair.wait_state(held, "CLOSING", within=PROMPT_S)
    finally:
        path = pair.states_seen(held)
        pair.observe(Key.FIN_WAIT1_CROSSING_FIN_STATES, path,
                     f"the {held} in FIN_WAIT1 receives the {other}'s FIN (not ACKing its own): {' -> '.join(path)}")
    pair.expect_state(held, "CLOSING", timer="retrans", why="its own FIN is still unacknowledged")
    pair.wait_state(other, "FIN_WAIT2", within=PROMPT_S)
    again = pair.wire.expect(held, "FA", seq=fin.seq, ack=their_fin.seq + 1, within=window.high_s, since=fin.ts,
                             why="the lost FIN is resent (and dropped again)")
    pair.expect_duration("lost FIN resent (loss probe)", fin.ts, again.ts, window, "wire")
    pair.expect_state(held, "CLOSING")
    pair.wire.allow(held, "FA", seq=fin.seq, why="resent again if its timer fires before the copy arrives")
    pair.replay(again, hops=1)
    pair.wire.expect(other, "A", ack=fin.seq + 1, within=PROMPT_S)
    pair.wait_state(held, "TIME_WAIT", within=PROMPT_S)
    pair.wait_state(other, "TIME_WAIT", within=PROMPT_S)
    pair.expect_states_seen(held, ["ESTABLISHED", "FIN_WAIT1", "CLOSING", "TIME_WAIT"])
    pair.expect_states_seen(other, ["ESTABLISHED", "FIN_WAIT2", "TIME_WAIT"])


@pytest.mark.sysctls({"net.ipv4.tcp_rto_min_us": 400_000})  # room for the rule changes
@reference("RFC 9293 §3.6 (Figure 13, simultaneous close)", "RFC 9293 §3.10.7.4 (FIN in FIN-WAIT-1, CLOSING)",
           kernel=("net/ipv4/tcp_input.c tcp_fin() (FIN_WAIT1 -> CLOSING)",
                   "net/ipv4/tcp_input.c tcp_rcv_state_process() TCP_CLOSING (-> tcp_time_wait())"))
def test_simultaneous_close_crossing_fins_both_closing(pair):
    """Simultaneous close with crossing FINs: both sides FIN_WAIT1 -> CLOSING -> TIME_WAIT.

    Every FIN and pure ACK a kernel sends is dropped on arrival, so both sides sit in FIN_WAIT1. Then each side
    receives a copy of the other's original FIN (which acknowledges nothing new), replayed one hop later: its
    lower TTL / hop limit gets it past the drop rules, which match the kernel's own. The FINs have crossed, and
    tcp_fin() moves each side to CLOSING. Its ACKs, and its resent FINs (which now acknowledge the other's FIN),
    stay dropped, so CLOSING holds however loaded the machine is. Once both sides were seen in CLOSING, the drops
    towards the server go first: the client's next resend ends the server's CLOSING (TIME_WAIT) while the server's
    answers stay dropped; then the drops towards the client go, and the client's next resend, answered from
    TIME_WAIT, ends its CLOSING (RFC 9293 Figure 13). One side first, so that which resend timer fires first
    cannot change what is sent (with all drops gone at once, either side's resend could complete the close, or
    both crossing: two runs of one kernel differed in which side re-ACKed a resent FIN).
    No rule changes between close() and the replays (in an emulated guest they took seconds, longer than the
    resend timer); rto_min is raised to 400 ms so that the replays still come before the first resend, which
    would otherwise be the one seen from CLOSING. Merely removing the FIN drops makes the FINs cross only if both
    resends leave in the same timer tick, and then CLOSING lasts microseconds: too short for sock_diag polling."""
    pair.requires_time_wait("client", why="CLOSING ends in TIME_WAIT")
    pair.requires_time_wait("server", why="CLOSING ends in TIME_WAIT")
    window = max(probe_window(pair, "client"), probe_window(pair, "server"), key=lambda w: w.expected_s)
    rto = max(pair.client.rto_s(), pair.server.rto_s())
    for side in ("server", "client"):  # all rules first, each on what the other kernel sends (not the replays)
        kernel = pair.sent_by_kernel(OTHER[side])
        pair.drop(towards=side, name=f"fins-to-{side}", has="F", match=kernel)
        pair.drop(towards=side, name=f"acks-to-{side}", exactly="A", match=kernel)
    pair.client.close()
    pair.server.close()
    client_fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    server_fin = pair.wire.expect("server", "FA", within=PROMPT_S)
    for side in ("client", "server"):
        pair.wait_state(side, "FIN_WAIT1", within=PROMPT_S)
    pair.replay(client_fin, hops=1)
    pair.replay(server_fin, hops=1)
    try:
        for side in ("client", "server"):
            pair.wait_state(side, "CLOSING", within=PROMPT_S)
    finally:
        path = pair.states_seen("client")
        pair.observe(Key.FIN_WAIT1_CROSSING_FIN_STATES, path,
                     f"the client in FIN_WAIT1 receives the server's crossing FIN: {' -> '.join(path)}")
    for side in ("client", "server"):
        pair.expect_state(side, "CLOSING", timer="retrans")
    for side, fin, theirs in (("client", client_fin, server_fin), ("server", server_fin, client_fin)):
        again = pair.wire.expect(side, "FA", seq=fin.seq, ack=theirs.seq + 1, within=window.high_s, since=fin.ts,
                                 in_order=False,  # both resend timers can fire in the same tick, either first
                                 why="resent from CLOSING, it acknowledges the other FIN (unlike the replayed copy)")
        pair.expect_duration(f"{side} FIN resent from CLOSING (loss probe)", fin.ts, again.ts, window, "wire")
        pair.wire.allow(side, "FA", seq=fin.seq, why="later resends from CLOSING, until one gets through")
    next_resend = chain_window(pair.retransmission("client").series(rto, 5)[-1], timers=5)
    for side, then_closing in (("server", "client"), ("client", None)):
        pair.undrop(towards=side, name=f"fins-to-{side}")
        pair.undrop(towards=side, name=f"acks-to-{side}")
        pair.wait_state(side, "TIME_WAIT", within=wait_s(next_resend), why="the client's next resend completes it")
        if then_closing:
            pair.expect_state(then_closing, "CLOSING", why="the server's answers to it are still dropped")
    pair.observe(Key.CLOSE_ROLES, {"active": ["client", "server"],
                                   "states": {s: pair.states_seen(s) for s in ("client", "server")}},
                 "both sides close before either FIN arrives (crossing FINs)")
    for side in ("client", "server"):
        pair.expect_states_seen(side, ["ESTABLISHED", "FIN_WAIT1", "CLOSING", "TIME_WAIT"])
    pair.expect_equal("RSTs sent (client, server)", [pair.wire.count(s, has="R") for s in ("client", "server")],
                      [0, 0], why="a simultaneous close resets nothing")


# Data sent by the server after the client closed (the key says how): the client's state and timer when the
# data arrives, whether it counts TCPAbortOnData, and what the server's recv() returns afterwards.
DATA_AFTER_CLOSE = {
    # orphan FIN_WAIT1: its FIN was lost, the data does not ACK it; tcp_rcv_state_process() "abort on data"
    "orphan-fin-wait1": dict(state="FIN_WAIT1", timer="retrans", abort_on_data=1, peer_recv="ECONNRESET"),
    # orphan FIN_WAIT2 as a timewait mini-socket: tcp_timewait_state_process() returns TCP_TW_RST, no MIB (or a
    # full socket on the keepalive timer when the configuration's tcp_fin_time exceeds TCP_TIMEWAIT_LEN)
    "orphan-fin-wait2": dict(state="FIN_WAIT2", timer="timewait", abort_on_data=0, peer_recv=b""),
    # orphan FIN_WAIT2 with TCP_LINGER2 100 s: kernel-keyed (tcp_linger2_limit), see _data_after_close()
    "orphan-fin-wait2-linger2": None,
    # not an orphan at all: shutdown(SHUT_RDWR), fd open; RCV_SHUTDOWN is what matters
    "shut-rdwr-fin-wait2": dict(state="FIN_WAIT2", timer="none", abort_on_data=1, peer_recv=b""),
}


LINGER2_S = 100
# the orphan FIN_WAIT2 kept as a full socket (tmo > TCP_TIMEWAIT_LEN: keepalive timer for the excess)
FULL_SOCKET_FIN_WAIT2 = dict(state="FIN_WAIT2", timer="keepalive", abort_on_data=1, peer_recv=b"")


def _data_after_close(pair, how):
    """The row of DATA_AFTER_CLOSE; for TCP_LINGER2 100 s it depends on the kernel (tcp_linger2_limit): kept
    (5.8+, 5.4.251+, 4.19.291+) it is above TCP_TIMEWAIT_LEN and the orphan stays a full socket on the keepalive
    timer; before, 100 > tcp_fin_timeout (60 s) was replaced by 0 and the orphan is a timewait sock like any."""
    if how == "orphan-fin-wait2":
        pair.requires_time_wait("client", why="the orphaned FIN_WAIT2 that takes the data is a timewait sock")
        orphan = pair.orphan_fin_wait2("client")
        return DATA_AFTER_CLOSE[how] if orphan.timer == "timewait" else FULL_SOCKET_FIN_WAIT2
    if DATA_AFTER_CLOSE[how] is not None:
        return DATA_AFTER_CLOSE[how]
    pair.requires_time_wait("client", why="the TCP_LINGER2 orphan ends as a timewait sock")
    rule = pair.kernel_expectation(TCP_LINGER2_LIMIT)
    fin_timeout = int(pair.namespaces["client"].sysctl_get("net.ipv4.tcp_fin_timeout"))
    pair.expect_equal("getsockopt(TCP_LINGER2)", pair.client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2),
                      rule.readback_s(LINGER2_S, fin_timeout), why=rule.describe())
    if rule.fin_wait2_s(LINGER2_S, fin_timeout) > TCP_TIMEWAIT_LEN_S:
        return FULL_SOCKET_FIN_WAIT2
    return DATA_AFTER_CLOSE["orphan-fin-wait2"]


@pytest.mark.parametrize("how", list(DATA_AFTER_CLOSE))
@reference("RFC 1122 §4.2.2.13 (new data after CLOSE: SHOULD send RST)", "RFC 9293 §3.5.2 (reset generation)",
           "RFC 2525 §2.17",
           kernel=("net/ipv4/tcp_input.c tcp_rcv_state_process() (RCV_SHUTDOWN: TCP_MIB_ABORTONDATA, tcp_reset)",
                   "net/ipv4/tcp_minisocks.c tcp_timewait_state_process() (FIN_WAIT2 substate: TCP_TW_RST)",
                   "net/ipv4/tcp_input.c tcp_reset() (CLOSE_WAIT: EPIPE)", "net/ipv4/tcp.c tcp_recvmsg_locked()"))
def test_data_after_close_is_answered_with_rst(pair, how):
    """Data arriving after the receiver closed (orphan FIN_WAIT1/FIN_WAIT2, or after SHUT_RDWR) is answered by RST.

    Nobody can read it, so per RFC 1122 §4.2.2.13 the kernel resets: for a full socket with RCV_SHUTDOWN,
    tcp_rcv_state_process() counts TCPAbortOnData and returns 1, and the caller sends an RST built from the
    offending segment (seq = its ACK, no ACK flag, RFC 9293 §3.5.2); an orphaned FIN_WAIT2 kept as a timewait
    mini-socket answers TCP_TW_RST from tcp_timewait_state_process() and counts nothing. The client's socket
    is gone. The server that sent the data: in ESTABLISHED the RST gives ECONNRESET; in CLOSE_WAIT tcp_reset()
    sets EPIPE, and recv() still reports EOF first because the FIN was already received (SOCK_DONE)."""
    if how == "orphan-fin-wait1":
        pair.drop(towards="server", name="client-fin", has="F")
        pair.wire.allow("client", "FA", seq=1, why="the dropped FIN is retransmitted on its timer")
    if how == "orphan-fin-wait2-linger2":
        pair.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, LINGER2_S, label=f"TCP_LINGER2 {LINGER2_S}")
    expect = _data_after_close(pair, how)
    if how == "orphan-fin-wait2":  # the orphan's path is the configuration's, not the ACK's timing (lab.py)
        pair.close_holding_fin_ack("client")
    else:
        if how == "shut-rdwr-fin-wait2":
            pair.client.shutdown("SHUT_RDWR")
        else:
            pair.client.close()
        pair.wire.expect("client", "FA", within=PROMPT_S)
    pair.wait_state("client", expect["state"], within=PROMPT_S)
    if how == "orphan-fin-wait2":  # a timewait sock, as the configuration implies
        pair.expect_orphan_fin_wait2("client")
    else:
        pair.expect_state("client", expect["state"], timer=expect["timer"])
    pair.server.send(b"too late")
    data = pair.wire.expect("server", "PA", len=8, within=PROMPT_S)
    rst = pair.wire.expect("client", "R", seq=data.ack, within=PROMPT_S, why="reset built from the data segment")
    pair.expect_equal("length of the RST", rst.length, 0)
    pair.wait_gone("client", within=PROMPT_S)
    pair.wait_gone("server", within=PROMPT_S)
    pair.expect_nstat("client", "TcpExtTCPAbortOnData", expect["abort_on_data"])
    pair.expect_nstat("client", "TcpOutRsts", 1)
    if isinstance(expect["peer_recv"], bytes):
        pair.expect_equal("server recv() after the RST", pair.server.recv(), expect["peer_recv"],
                          why="the server already had the FIN: EOF first")
    else:
        pair.expect_errno(pair.server, "recv", errno_name=expect["peer_recv"], why="the RST in ESTABLISHED")
    pair.expect_errno(pair.server, "send", b"x", errno_name="EPIPE", why="the send side is shut down")
    if how == "shut-rdwr-fin-wait2":
        pair.expect_errno(pair.client, "recv", errno_name="ECONNRESET", why="the fd is still open: the reset's error")
