"""Timers that decide how long a closing connection lives, measured: orphaned FIN_WAIT2 (tcp_fin_timeout,
TCP_LINGER2, the 3.5 RTO floor), orphaned FIN_WAIT1 and LAST_ACK against a silent peer (tcp_orphan_retries,
tcp_retries2, TCP_USER_TIMEOUT), keepalive, and the states no timer ever ends (non-orphaned FIN_WAIT2,
CLOSE_WAIT)."""

import errno
import itertools
import socket
import time

import pytest

from conformance.claims import Key
from fixtures.constants import TCP_TIMEWAIT_LEN_S
from fixtures.kernel_changes import TCP_LINGER2_LIMIT
from fixtures.lab import RTO_MIN_SYSCTL  # per-namespace since 6.11; before, the lab sets a locked route rto_min
from fixtures.references import reference
from fixtures.tcp_model import (
    death_after_series,
    fin_time_s,
    orphan_retries_effective,
)
from fixtures.tolerance import PROMPT_S, chain_window, prompt_window, rto_basis, timer_window, wait_s

OTHER = {"client": "server", "server": "client"}


def _keepalive(ep, idle, intvl, cnt):
    ep.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, "SO_KEEPALIVE 1")
    ep.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle, f"TCP_KEEPIDLE {idle}")
    ep.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl, f"TCP_KEEPINTVL {intvl}")
    ep.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt, f"TCP_KEEPCNT {cnt}")


def _fin_timeout_s(lab, side="client"):
    """The namespace's tcp_fin_timeout (s), as the kernel has it (set by the case, --sysctl or the default)."""
    return int(lab.namespaces[side].sysctl_get("net.ipv4.tcp_fin_timeout"))


def _expect_fin_series_then_silent_death(lab, side, fin, rto, boundary, why, states_key, lifetime_key=None):
    """The FIN is re-sent (by a TLP first, where the configuration has one, then by backed-off RTOs up to the
    configured RTO maximum) until retransmits_timed_out() sees tcp_model_timeout(boundary) passed since the
    first RTO retransmission; the socket then vanishes without an RST. The sampled state path is observed as
    `states_key` (and the lifetime from the FIN as `lifetime_key`), whatever the outcome."""
    model = lab.retransmission(side)
    offsets = model.series(rto, 20)
    first_rto = 1 if model.tlp else 0  # the TLP does not start tp->retrans_stamp
    count, death = death_after_series(offsets[first_rto:], model.budget_s(boundary))
    count += first_rto
    rto_min = lab.rto_min_s(side, why="the FIN's resend series")
    lifetime = chain_window(death, timers=count + 1, basis=rto_basis(death, rto, rto_min))
    gone = None
    try:
        gone = lab.wait_gone(side, within=wait_s(lifetime) - (time.time() - fin.ts), why=why)
    finally:
        path = lab.states_seen(side)
        lab.observe(states_key, path, f"{side} {' -> '.join(path)}, its FIN never ACKed ({why})")
        if lifetime_key is not None:
            at_defaults = not {"net.ipv4.tcp_orphan_retries", RTO_MIN_SYSCTL} & set(lab.evidence.sysctls) and \
                not lab.rto_min_routes
            ended = "outlived the wait" if gone is None else f"ended {gone - fin.ts:.3f} s"
            lab.observe(lifetime_key, {"lifetime_s": None if gone is None else round(gone - fin.ts, 3),
                                       "at_defaults": at_defaults},
                        f"orphan FIN_WAIT1 {ended} after its FIN (sock_diag)")
    lab.expect_duration(f"{side} lifetime from its FIN to its end", fin.ts, gone, lifetime, "sock_diag", why)
    last = fin
    for k, offset in enumerate(offsets[:count]):
        window = chain_window(offset, timers=k + 1, basis=rto_basis(offset, rto, rto_min))
        kind = "TLP" if k == 0 else "RTO"
        last = lab.wire.expect(side, "FA", seq=fin.seq, within=window.high_s, since=fin.ts,
                               why=f"FIN resend {k + 1} of {count} ({kind}, RTO {rto * 1000:.0f} ms)")
        lab.expect_duration(f"FIN resend {k + 1} ({kind}) after the FIN", fin, last, window, "wire")
    lab.wire.expect_no(side, "FA", seq=fin.seq, during=gone - last.ts, since=last.ts + 1e-6,
                       why=f"exactly {count} retransmissions before the socket ends")
    lab.wire.expect_no(side, has="R", during=gone - fin.ts + 0.05, since=fin.ts,
                       why="a retransmission timeout ends the socket silently (tcp_write_err)")
    return gone


# orphaned FIN_WAIT2 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fin_timeout", [1, 2])
@reference("RFC 9293 §3.10.4 (FIN-WAIT-2 has no timeout in the RFC)", "RFC 1122 §4.2.2.13",
           kernel=("net/ipv4/tcp_input.c tcp_rcv_state_process() FIN_WAIT1", "include/net/tcp.h tcp_fin_time()",
                   "net/ipv4/tcp_minisocks.c tcp_time_wait()"))
def test_orphaned_fin_wait2_lives_tcp_fin_timeout(pair, fin_timeout):
    """An orphaned FIN_WAIT2 lives tcp_fin_timeout seconds, then vanishes without sending anything.

    RFC 9293 lets FIN-WAIT-2 wait forever; Linux bounds an orphan: when the ACK of its FIN arrives,
    tcp_rcv_state_process() hands it to tcp_time_wait(sk, TCP_FIN_WAIT2, tcp_fin_time()), a TIME_WAIT
    mini-socket in the FIN_WAIT2 substate (timer timewait) that is dropped silently when it expires.

    The first ACK of the FIN is dropped and the FIN's resend re-ACKed, long after close() returned
    (lab.close_holding_fin_ack()): an ACK that arrived while close() still owned the socket would leave the full
    socket on the keepalive timer (seen in an emulated 6.12 guest)."""
    pair.requires_time_wait("client", why="the orphaned FIN_WAIT2 ends as a timewait sock")
    pair.sysctl("net.ipv4.tcp_fin_timeout", fin_timeout)
    lifetime = fin_time_s(fin_timeout, 0, pair.client.rto_s())  # the 3.5 RTO floor, if the RTO is long
    _fin, ack = pair.close_holding_fin_ack("client")
    pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    pair.expect_orphan_fin_wait2("client", why="an orphan FIN_WAIT2 is a timewait sock")
    try:
        gone = pair.wait_gone("client", within=wait_s(timer_window(lifetime)))
    finally:
        path = pair.states_seen("client")
        pair.observe(Key.FIN_WAIT2_UNANSWERED_STATES, path,
                     f"orphan FIN_WAIT2, peer never sends FIN (tcp_fin_timeout {fin_timeout}): {' -> '.join(path)}")
    pair.expect_duration("orphan FIN_WAIT2 lifetime", ack.ts, gone, timer_window(lifetime),
                         "sock_diag")
    pair.expect_orphan_fin_wait2_ends("client", ack.ts, gone)


@pytest.mark.parametrize(("fin_timeout", "linger2"), [(3, 1), (1, 2)], ids=["shorter", "longer"])
@reference("RFC 9293 §3.10.4", kernel=("net/ipv4/tcp.c do_tcp_setsockopt() TCP_LINGER2",
                                      "include/net/tcp.h tcp_fin_time()"))
def test_tcp_linger2_overrides_tcp_fin_timeout(pair, fin_timeout, linger2):
    """TCP_LINGER2 sets this socket's orphaned FIN_WAIT2 lifetime, shorter or longer than tcp_fin_timeout.

    tcp_fin_time() uses tp->linger2 when it is set and the sysctl only when it is 0; getsockopt() reads
    the value back in seconds. Longer than tcp_fin_timeout is kernel-keyed (tcp_linger2_limit): since 5.8
    (and 5.4.251, 4.19.291 stable) the limit is TCP_FIN_TIMEOUT_MAX and 2 s is kept; before, a value above
    tcp_fin_timeout was replaced by 0, read back and lived as tcp_fin_timeout (1 s)."""
    pair.requires_time_wait("client", why="the orphaned FIN_WAIT2 ends as a timewait sock")
    pair.sysctl("net.ipv4.tcp_fin_timeout", fin_timeout)
    rule = pair.kernel_expectation(TCP_LINGER2_LIMIT)
    readback, lifetime = rule.readback_s(linger2, fin_timeout), rule.fin_wait2_s(linger2, fin_timeout)
    lifetime = fin_time_s(lifetime, 0, pair.client.rto_s())  # tcp_fin_time()'s 3.5 RTO floor
    pair.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, linger2, f"TCP_LINGER2 {linger2}")
    pair.expect_equal("getsockopt(TCP_LINGER2)", pair.client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2),
                      readback, why=rule.describe())
    _fin, ack = pair.close_holding_fin_ack("client")
    pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    pair.expect_orphan_fin_wait2("client", linger2_s=readback)
    try:
        gone = pair.wait_gone("client", within=wait_s(timer_window(lifetime)))
    finally:
        path = pair.states_seen("client")
        pair.observe(Key.FIN_WAIT2_UNANSWERED_STATES, path,
                     f"orphan FIN_WAIT2 with TCP_LINGER2 {linger2}, peer never sends FIN: {' -> '.join(path)}")
    pair.expect_duration(f"orphan FIN_WAIT2 lifetime (TCP_LINGER2 {linger2}, tcp_fin_timeout {fin_timeout})",
                         ack.ts, gone, timer_window(lifetime), "sock_diag", why=rule.describe())
    pair.expect_orphan_fin_wait2_ends("client", ack.ts, gone)


@pytest.mark.parametrize("path", ["close-in-established", "close-in-fin-wait2"])
@reference("RFC 9293 §3.10.4", "RFC 9293 §3.10.7.1",
           kernel=("net/ipv4/tcp_input.c tcp_rcv_state_process() FIN_WAIT1 (linger2 < 0)",
                   "net/ipv4/tcp.c __tcp_close() FIN_WAIT2 (linger2 < 0)"))
def test_tcp_linger2_negative_resets_instead_of_fin_wait2(pair, path):
    """A negative TCP_LINGER2 forbids an orphaned FIN_WAIT2: the socket resets as soon as it would enter it.

    Closed in ESTABLISHED, the FIN goes out normally; when its ACK arrives tcp_rcv_state_process() sees
    linger2 < 0, calls tcp_done() and returns 1, so the ACK is answered with an RST (TCPAbortOnData).
    Closed when already in FIN_WAIT2 (after shutdown(SHUT_WR)), __tcp_close() sends the RST itself
    (tcp_send_active_reset, TCPAbortOnLinger)."""
    pair.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, -1, "TCP_LINGER2 -1")
    if path == "close-in-fin-wait2":
        pair.client.shutdown("SHUT_WR")
        fin = pair.wire.expect("client", "FA", within=PROMPT_S)
        pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
        pair.client.close()
        pair.wire.expect("client", "RA", seq=fin.seq + 1, within=PROMPT_S)
        counter = "TcpExtTCPAbortOnLinger"
    else:
        pair.client.close()
        fin = pair.wire.expect("client", "FA", within=PROMPT_S)
        ack = pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
        rst = pair.wire.expect("client", "R", seq=fin.seq + 1, within=PROMPT_S)
        pair.expect_duration("RST after the ACK of the FIN", ack.ts, rst.ts, timer_window(0.0), "wire")
        counter = "TcpExtTCPAbortOnData"
    pair.wait_gone("client", within=PROMPT_S)
    pair.wait_gone("server", within=PROMPT_S, why="the peer is reset out of CLOSE_WAIT")
    pair.expect_nstat("client", counter, 1)


@pytest.mark.parametrize("linger2", [90, 1000], ids=["90s", "1000s-clamped"])
@reference("RFC 9293 §3.10.4", kernel=("net/ipv4/tcp.c do_tcp_setsockopt() TCP_LINGER2 (TCP_FIN_TIMEOUT_MAX)",
                                      "net/ipv4/tcp_input.c tcp_rcv_state_process() FIN_WAIT1 (tmo > TCP_TIMEWAIT_LEN)",
                                      "net/ipv4/tcp_timer.c tcp_keepalive_timer() FIN_WAIT2"))
def test_tcp_linger2_above_timewait_len_runs_on_keepalive_timer_and_is_capped(pair, linger2):
    """An orphaned FIN_WAIT2 longer than 60 s first runs on the keepalive timer; TCP_LINGER2 caps at 120 s.

    A TIME_WAIT mini-socket never waits more than TCP_TIMEWAIT_LEN, so for tmo = tcp_fin_time() > 60 s
    tcp_rcv_state_process() keeps the full socket and arms the keepalive timer for tmo - TCP_TIMEWAIT_LEN;
    when it fires, tcp_keepalive_timer() calls tcp_time_wait(sk, TCP_FIN_WAIT2, tcp_fin_time(sk) -
    TCP_TIMEWAIT_LEN): the timewait sock it hands over to lasts the same excess again, not "the remaining
    60 s" (so the orphan lives 2 * tmo - 120 s in all, 60 s for TCP_LINGER2 90). What TCP_LINGER2 keeps is
    kernel-keyed (tcp_linger2_limit): since 5.8 (and 5.4.251, 4.19.291 stable) do_tcp_setsockopt() clamps it
    to TCP_FIN_TIMEOUT_MAX (120 s); before, a value above tcp_fin_timeout (60 s by default) was replaced by 0,
    getsockopt() read tcp_fin_timeout back and the orphan was a timewait sock living tcp_fin_timeout."""
    pair.requires_time_wait("client", why="the orphaned FIN_WAIT2 ends as a timewait sock")
    fin_timeout = _fin_timeout_s(pair)
    rule = pair.kernel_expectation(TCP_LINGER2_LIMIT)
    readback, lifetime = rule.readback_s(linger2, fin_timeout), rule.fin_wait2_s(linger2, fin_timeout)
    pair.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, linger2, f"TCP_LINGER2 {linger2}")
    pair.expect_equal("getsockopt(TCP_LINGER2)", pair.client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2),
                      readback, why=rule.describe())
    _fin, ack = pair.close_holding_fin_ack("client")
    pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    if lifetime > TCP_TIMEWAIT_LEN_S:
        st = pair.expect_state("client", "FIN_WAIT2", timer="keepalive",
                               why="tmo > TCP_TIMEWAIT_LEN keeps the full socket on the keepalive timer")
        name, expected = "keepalive-timer part of the orphan FIN_WAIT2", lifetime - TCP_TIMEWAIT_LEN_S
    else:
        st = pair.expect_state("client", "FIN_WAIT2", timer="timewait",
                               why=f"tmo {lifetime} s <= TCP_TIMEWAIT_LEN: a timewait sock from the start")
        name, expected = "orphan FIN_WAIT2 timewait sock", lifetime
    pair.expect_timer(f"{name} from the ACK of the FIN", ack, st, timer_window(expected),
                      why=rule.describe())


@pytest.mark.sysctls({"net.ipv4.tcp_fin_timeout": 1, RTO_MIN_SYSCTL: 400_000}, subject=True)  # the floor above 1 s
@reference("RFC 9293 §3.10.4", kernel=("include/net/tcp.h tcp_fin_time() (3.5 * RTO floor)",
                                      "net/ipv4/tcp_input.c tcp_rcv_state_process() FIN_WAIT1"))
def test_orphaned_fin_wait2_lives_at_least_three_and_a_half_rto(lab):
    """An orphaned FIN_WAIT2 lives at least 3.5 RTO, even when tcp_fin_timeout is shorter.

    tcp_fin_time() raises the timeout to (rto << 2) - (rto >> 1) so that a peer's FIN retransmitted after
    a lost one still finds the socket. With tcp_rto_min_us 400 ms the RTO is ~404 ms: ~1.41 s > 1 s."""
    lab.requires_time_wait("client", why="the orphaned FIN_WAIT2 is a timewait sock")
    lab.connect()
    rto = lab.client.rto_s()
    floor = 3.5 * rto
    lab.expect_equal("3.5 x RTO above tcp_fin_timeout (1 s)", floor > 1.0, True,
                     why=f"RTO {rto:.3f} s: the set-up needs the floor above tcp_fin_timeout")
    _fin, ack = lab.close_holding_fin_ack("client")
    lab.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    lab.expect_orphan_fin_wait2("client", why="now an orphan")
    window = timer_window(floor, basis=rto_basis(floor, rto, lab.rto_min_s("client", why="the floor")))
    gone = lab.wait_gone("client", within=wait_s(window))
    lab.expect_duration("orphan FIN_WAIT2 lifetime (3.5 x RTO)", ack.ts, gone, window, "sock_diag")
    lab.expect_orphan_fin_wait2_ends("client", ack.ts + 1e-6, gone)


def _observe_close_wait(pair, entered):
    st = pair.state("server")
    pair.observe(Key.CLOSE_WAIT_UNCLOSED, {"held_s": round(time.time() - entered, 3), "state": str(st.state),
                                           "timer": str(st.timer)},
                 f"a CLOSE_WAIT whose application never closes, {time.time() - entered:.2f} s on: {st.describe()}")


@pytest.mark.sysctls({"net.ipv4.tcp_fin_timeout": 1}, subject=True)  # a short timer to watch past
@reference("RFC 9293 §3.10.4 (FIN-WAIT-2 and CLOSE-WAIT wait for the user)", "RFC 1122 §4.2.2.13",
           kernel=("net/ipv4/tcp.c tcp_shutdown()", "net/ipv4/tcp_input.c tcp_fin() (no timer armed)",
                   "net/ipv4/tcp.c __tcp_close() FIN_WAIT2"))
def test_half_closed_connection_has_no_timer_until_close(pair):
    """After shutdown(SHUT_WR) neither FIN_WAIT2 (fd open) nor CLOSE_WAIT has a timer; close() starts one.

    Only orphans are bounded: while the application holds the socket it may still receive data, so the
    FIN_WAIT2 side keeps it (timer none) past tcp_fin_timeout, and tcp_fin() arms nothing for CLOSE_WAIT
    (Linux has no CLOSE_WAIT timer; only close() or keepalive ends it). Once the FIN_WAIT2 side is
    close()d, __tcp_close() hands it to tcp_time_wait() with tcp_fin_time(): it ends tcp_fin_timeout
    later, while the CLOSE_WAIT peer stays as it is."""
    pair.requires_time_wait("client", why="the orphaned FIN_WAIT2 ends as a timewait sock")
    pair.client.shutdown("SHUT_WR")
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
    pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    entered = pair.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)
    watch = timer_window(1.0).high_s + 0.1
    pair.wire.expect_no("client", during=watch, since=fin.ts + 0.1)
    pair.wire.expect_no("server", during=watch, since=fin.ts + 0.1)
    pair.expect_state("client", "FIN_WAIT2", timer="none", why=f"fd open, {watch:.2f} s after the FIN")
    _observe_close_wait(pair, entered)
    pair.expect_state("server", "CLOSE_WAIT", timer="none", why=f"{watch:.2f} s after the FIN")
    lifetime = fin_time_s(1, 0, pair.client.rto_s())  # tcp_fin_timeout 1, or the 3.5 RTO floor
    pair.client.close()
    closed = pair.log.last("client", "close")
    pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    pair.expect_orphan_fin_wait2("client", why="now an orphan")
    gone = pair.wait_gone("client", within=wait_s(timer_window(lifetime)))
    pair.expect_duration("FIN_WAIT2 lifetime after close()", closed.t, gone, timer_window(lifetime),
                         "sock_diag")
    _observe_close_wait(pair, entered)
    pair.expect_state("server", "CLOSE_WAIT", timer="none", why="nothing ever times out a CLOSE_WAIT")


@pytest.mark.parametrize("closer", ["client", "server"])
@reference("RFC 9293 §3.10.4 (FIN-WAIT-2 has no timeout in the RFC)",
           kernel=("include/net/tcp.h tcp_fin_time()", "net/ipv4/tcp_input.c tcp_rcv_state_process() FIN_WAIT1",
                   "net/ipv4/tcp_timer.c tcp_keepalive_timer() FIN_WAIT2"))
def test_orphaned_fin_wait2_lifetime_follows_the_configuration(pair, closer):
    """How long an orphaned FIN_WAIT2 lives with the tcp_fin_timeout in force on the closer's host.

    When the ACK of the orphan's FIN arrives, tcp_rcv_state_process() takes tcp_fin_time() (TCP_LINGER2, else
    tcp_fin_timeout): up to TCP_TIMEWAIT_LEN the socket becomes a timewait sock for that long; above it the full
    socket stays on the keepalive timer for the excess, and tcp_keepalive_timer() then hands it to a timewait sock
    for the excess again. Each side follows its own namespace's value (a tuning of the server alone changes only
    the server's orphans). The armed timer is read from sock_diag; the end is waited for when it fits the run."""
    model = pair.orphan_fin_wait2(closer)
    _fin, ack = pair.close_holding_fin_ack(closer)
    if model.timer == "timewait" and not pair.time_wait_kept(closer):
        gone = pair.wait_gone(closer, within=PROMPT_S, why="tcp_max_tw_buckets 0: no timewait sock for the orphan")
        pair.expect_duration("orphaned FIN_WAIT2 lifetime from the ACK of its FIN", ack, gone, prompt_window(),
                             "sock_diag", why="no timewait sock: the orphan ends at once")
        return
    pair.wait_state(closer, "FIN_WAIT2", within=PROMPT_S)
    read = pair.expect_orphan_fin_wait2(closer)
    pair.expect_timer(f"orphaned FIN_WAIT2 {model.timer} timer from the ACK of its FIN", ack, read,
                      timer_window(model.first_s), why=model.describe())
    if pair.may_wait(model.lifetime_s):
        timers = 2 if model.timer == "keepalive" else 1
        lifetime = chain_window(model.lifetime_s, timers=timers)
        gone = pair.wait_gone(closer, within=wait_s(lifetime) - (time.time() - ack.ts))
        pair.expect_duration("orphaned FIN_WAIT2 lifetime from the ACK of its FIN", ack, gone, lifetime,
                             "sock_diag", why=model.describe())
        pair.expect_orphan_fin_wait2_ends(closer, ack.ts + 1e-6, gone)


@reference("RFC 1122 §4.2.3.6", kernel=("net/ipv4/tcp_timer.c tcp_set_keepalive()",
                                       "include/net/tcp.h keepalive_time_when()"))
def test_keepalive_timer_follows_tcp_keepalive_time(pair):
    """SO_KEEPALIVE without per-socket times arms the keepalive timer for the host's tcp_keepalive_time.

    tcp_set_keepalive() arms inet_csk_reset_keepalive_timer(sk, keepalive_time_when(tp)), which is
    TCP_KEEPIDLE if the socket set one, else the namespace's tcp_keepalive_time (7200 s by default): the armed
    timer is read from sock_diag, never waited for."""
    keepalive_time = pair.cfg("net.ipv4.tcp_keepalive_time", "client", why="the keepalive timer")
    pair.client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, "SO_KEEPALIVE 1")
    armed = pair.log.last("client", "setsockopt")
    read = pair.expect_state("client", "ESTABLISHED", timer="keepalive")
    pair.expect_timer("keepalive timer from SO_KEEPALIVE", armed.t, read, timer_window(keepalive_time))


# orphaned FIN_WAIT1 and LAST_ACK against a silent peer ----------------------------------------------------

@pytest.mark.parametrize(("orphan_retries", "rto_min_us"), [(1, 200_000), (1, 50_000), (2, 50_000)],
                         ids=["retries1-rtomin200ms", "retries1-rtomin50ms", "retries2-rtomin50ms"])
@reference("RFC 1122 §4.2.3.5", "RFC 6298 §5 (rule 5.5: RTO <- RTO * 2)", "RFC 8985 §7 (TLP)",
           kernel=("net/ipv4/tcp_timer.c tcp_write_timeout() tcp_orphan_retries() retransmits_timed_out()",
                   "net/ipv4/tcp_timer.c tcp_model_timeout()", "net/ipv4/tcp_output.c tcp_schedule_loss_probe()"))
def test_orphaned_fin_wait1_blackholed_retransmits_until_orphan_retries_time(lab, orphan_retries, rto_min_us):
    """An orphaned FIN_WAIT1 re-sends its FIN (TLP, then doubling RTOs) for a time set by tcp_orphan_retries.

    tcp_orphan_retries is not a count: retransmits_timed_out() ends the socket when the time since the first
    RTO retransmission reaches tcp_model_timeout(N, TCP_RTO_MIN) = (2^(N+1) - 1) * 200 ms, whatever the real
    RTO. The first resend is a tail-loss probe (no backoff), so the gaps are R, R, 2R, 4R ... With the
    default 200 ms RTO and N = 1 that is 3 resends; with tcp_rto_min_us 50 ms, 4 (N = 1) or 5 (N = 2). The
    socket then vanishes silently (tcp_write_err, TCPAbortOnTimeout), no RST."""
    lab.sysctl(RTO_MIN_SYSCTL, rto_min_us)
    lab.sysctl("net.ipv4.tcp_orphan_retries", orphan_retries)
    lab.connect()
    rto = lab.client.rto_s()
    lab.drop(towards="server", name="blackhole")
    lab.client.close()
    fin = lab.wire.expect("client", "FA", within=PROMPT_S)
    lab.wait_state("client", "FIN_WAIT1", within=PROMPT_S)
    lab.expect_state("client", "FIN_WAIT1", timer="retrans")
    _expect_fin_series_then_silent_death(lab, "client", fin, rto, orphan_retries,
                                         f"tcp_orphan_retries {orphan_retries}: tcp_model_timeout() past the first RTO",
                                         states_key=Key.FIN_WAIT1_UNACKED_STATES)
    lab.expect_nstat("client", "TcpExtTCPAbortOnTimeout", 1)
    lab.expect_nstat("client", "TcpExtTCPLossProbes", lab.retransmission("client").loss_probes())


@pytest.mark.sysctls({RTO_MIN_SYSCTL: 50_000, "net.ipv4.tcp_orphan_retries": 0})
@reference("RFC 1122 §4.2.3.5", kernel="net/ipv4/tcp_timer.c tcp_orphan_retries() (0 means 8 while alive)")
def test_orphan_retries_zero_means_eight(lab):
    """tcp_orphan_retries 0 (the default) does not give up at once: it means 8 while the RTO is below 120 s.

    tcp_orphan_retries() returns 8 when the sysctl is 0 and the socket is 'alive' (icsk_rto < TCP_RTO_MAX),
    i.e. (2^9 - 1) * 200 ms = 102.2 s of retransmissions. Watched past the point where tcp_orphan_retries 1
    would have ended it (0.6 s after the first RTO), the orphan is still in FIN_WAIT1 and still re-sending."""
    lab.connect()
    rto = lab.client.rto_s()
    lab.drop(towards="server", name="blackhole")
    lab.client.close()
    fin = lab.wire.expect("client", "FA", within=PROMPT_S)
    model = lab.retransmission("client")
    offsets = model.series(rto, 12)
    first_rto = 1 if model.tlp else 0
    sent_if_one, _death_if_one = death_after_series(offsets[first_rto:], model.budget_s(1))
    resend = fin
    rto_min = lab.rto_min_s("client", why="the FIN's resend series")
    for k in range(sent_if_one + first_rto + 1):  # (the TLP,) the resends tcp_orphan_retries 1 allows, one more
        window = chain_window(offsets[k], timers=k + 1, basis=rto_basis(offsets[k], rto, rto_min))
        past = k == sent_if_one + first_rto
        resend = lab.wire.expect("client", "FA", seq=fin.seq, within=window.high_s, since=fin.ts,
                                 why="past the point where tcp_orphan_retries 1 would have ended the orphan" if past
                                 else f"FIN resend {k + 1}")
        name = "resend past the tcp_orphan_retries 1 deadline" if past else f"FIN resend {k + 1} after the FIN"
        lab.expect_duration(name, fin, resend, window, "wire")
    lab.wire.allow("client", "FA", seq=fin.seq, why="later FIN resends: the orphan lives ~100 s")
    lab.expect_state("client", "FIN_WAIT1", timer="retrans",
                     why=f"orphan_retries 0 -> {orphan_retries_effective(0)} ({model.budget_s(8):.1f} s)")
    lab.expect_nstat("client", "TcpExtTCPAbortOnTimeout", 0)


@pytest.mark.slow
@reference("RFC 1122 §4.2.3.5", "RFC 9293 §3.10.4",
           kernel=("net/ipv4/tcp_timer.c tcp_orphan_retries() tcp_write_timeout()",
                   "net/ipv4/tcp_timer.c tcp_model_timeout()"))
def test_orphaned_fin_wait1_at_kernel_defaults_lasts_about_104s(pair):
    """At the kernel defaults a blackholed orphaned FIN_WAIT1 re-sends its FIN 9 times over ~104 s (slow, ~105 s).

    tcp_orphan_retries 0 means 8: the socket ends at the first RTO timer 102.2 s after the first RTO
    retransmission; with a 204 ms RTO the resends are at 0.2 (TLP), 0.4, 0.8, 1.6, 3.3, 6.5, 13.1, 26.1 and
    52.2 s, and the end comes at ~104.4 s, silently."""
    rto = pair.client.rto_s()
    pair.drop(towards="server", name="blackhole")
    pair.client.close()
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    _expect_fin_series_then_silent_death(pair, "client", fin, rto, orphan_retries_effective(0),
                                         "default tcp_orphan_retries 0 = 8", states_key=Key.FIN_WAIT1_UNACKED_STATES,
                                         lifetime_key=Key.FIN_WAIT1_LIFETIME_AT_DEFAULTS)
    pair.expect_nstat("client", "TcpExtTCPAbortOnTimeout", 1)


@pytest.mark.parametrize("how", ["close-orphan", "shutdown-not-orphan"])
@pytest.mark.sysctls({RTO_MIN_SYSCTL: 50_000, "net.ipv4.tcp_orphan_retries": 1, "net.ipv4.tcp_retries2": 1})
@reference("RFC 9293 §3.10.4", "RFC 1122 §4.2.3.5",
           kernel=("net/ipv4/tcp_timer.c tcp_write_timeout() (SOCK_DEAD: tcp_orphan_retries, else tcp_retries2)",
                   "net/ipv4/tcp_timer.c tcp_write_err()"))
def test_last_ack_with_final_ack_lost_retransmits_fin_then_gives_up(lab, how):
    """LAST_ACK whose final ACK never arrives re-sends the FIN like any data, then gives up silently.

    The peer in TIME_WAIT re-ACKs every FIN, but the ACKs are dropped. After close() the LAST_ACK socket is
    an orphan and tcp_orphan_retries bounds it; after shutdown(SHUT_WR) the fd is still open, so tcp_retries2
    does, and the application learns ETIMEDOUT. Both are 1 here: 0.6 s after the first RTO."""
    lab.requires_time_wait("client", why="the TIME_WAIT peer re-ACKs every FIN")
    lab.connect()
    rto = lab.server.rto_s()
    lab.client.close()
    lab.wire.expect("client", "FA", within=PROMPT_S)
    lab.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)
    lab.drop(towards="server", name="client-pure-acks", exactly="A")
    if how == "close-orphan":
        lab.server.close()
    else:
        lab.server.shutdown("SHUT_WR")
    fin = lab.wire.expect("server", "FA", within=PROMPT_S)
    lab.wait_state("server", "LAST_ACK", within=PROMPT_S)
    _expect_fin_series_then_silent_death(lab, "server", fin, rto, 1, "retries 1",
                                         states_key=Key.LAST_ACK_UNACKED_STATES)
    acks = [s for s in lab.wire.all("client", "A") if s.ts > fin.ts and s.ack == fin.seq + 1]
    lab.expect_equal("ACKs of the server's FIN from the TIME_WAIT peer", len(acks), 1 + len(lab.wire.resends_of(fin)),
                     why="the TIME_WAIT peer ACKs every FIN")
    lab.expect_nstat("server", "TcpExtTCPAbortOnTimeout", 1)
    if how == "shutdown-not-orphan":
        lab.expect_equal("server SO_ERROR", errno.errorcode[lab.server.sock.getsockopt(socket.SOL_SOCKET,
                                                                                        socket.SO_ERROR)],
                         "ETIMEDOUT", why="tcp_retries2 reports ETIMEDOUT to the open fd")


@pytest.mark.sysctls({RTO_MIN_SYSCTL: 200_000})
@reference("RFC 5482", "RFC 1122 §4.2.3.5",
           kernel=("net/ipv4/tcp_timer.c tcp_write_timeout() retransmits_timed_out(icsk_user_timeout)",
                   "net/ipv4/tcp_timer.c tcp_clamp_rto_to_user_timeout()"))
def test_user_timeout_ends_orphaned_fin_wait1(pair):
    """TCP_USER_TIMEOUT 1000 ms ends a blackholed orphaned FIN_WAIT1 1 s after its first RTO retransmission.

    With a user timeout, retransmits_timed_out() compares the time since tp->retrans_stamp (the first RTO
    retransmission; the TLP does not set it) with the user timeout instead of tcp_orphan_retries' model,
    and tcp_clamp_rto_to_user_timeout() shortens the last RTO so the end comes on time, silently."""
    user_timeout = 1.0
    rto = pair.client.rto_s()
    pair.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(user_timeout * 1000),
                           "TCP_USER_TIMEOUT 1000")
    pair.drop(towards="server", name="blackhole")
    pair.client.close()
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    model = pair.retransmission("client")
    offsets = model.series(rto, 12)
    end = offsets[1 if model.tlp else 0] + user_timeout  # from the first RTO retransmission (tp->retrans_stamp)
    expected = [o for o in offsets if o < end]
    first = rto_basis(offsets[1 if model.tlp else 0], rto, pair.rto_min_s("client", why="the first RTO"))
    lifetime = chain_window(end, timers=len(expected) + 1,
                            basis=f"{first} + TCP_USER_TIMEOUT {user_timeout:g} s")
    try:
        gone = pair.wait_gone("client", within=wait_s(lifetime) - (time.time() - fin.ts))
    finally:
        path = pair.states_seen("client")
        pair.observe(Key.FIN_WAIT1_UNACKED_STATES, path,
                     f"client {' -> '.join(path)}, its FIN never ACKed (TCP_USER_TIMEOUT 1000 ms)")
    pair.expect_duration("orphan FIN_WAIT1 lifetime (first RTO + TCP_USER_TIMEOUT)", fin.ts, gone, lifetime,
                         "sock_diag")
    last = fin
    for k, offset in enumerate(expected):
        window = chain_window(offset, timers=k + 1)
        last = pair.wire.expect("client", "FA", seq=fin.seq, within=window.high_s, since=fin.ts,
                                why=f"FIN resend {k + 1} of {len(expected)} before the user timeout")
    pair.wire.expect_no("client", "FA", seq=fin.seq, during=gone - last.ts, since=last.ts + 1e-6,
                        why=f"exactly {len(expected)} FIN retransmissions before the user timeout")
    pair.wire.expect_no("client", has="R", during=gone - fin.ts + 0.05, since=fin.ts)
    pair.expect_nstat("client", "TcpExtTCPAbortOnTimeout", 1)


# keepalive and CLOSE_WAIT ---------------------------------------------------------------------------------

@reference("RFC 1122 §4.2.3.6", kernel=("net/ipv4/tcp_timer.c tcp_keepalive_timer()",
                                       "net/ipv4/tcp_output.c tcp_write_wakeup() tcp_xmit_probe_skb()"))
def test_keepalive_against_dead_peer_probes_then_resets_with_etimedout(pair):
    """Keepalive (idle 3 s, interval 1 s, 2 probes) against a dead peer: 2 probes 1 s apart, RST, ETIMEDOUT.

    tcp_keepalive_timer() sends a probe (an ACK with seq snd_una - 1, which forces an answer) once the
    connection has been idle TCP_KEEPIDLE, then every TCP_KEEPINTVL; when TCP_KEEPCNT probes are unanswered
    it sends an RST (tcp_send_active_reset) and reports ETIMEDOUT (tcp_write_err). The idle time counts from the
    SYN-ACK, and the drop rule and the setsockopt() calls must come before it ends: 3 s, since an nft run took
    ~0.9 s in an emulated guest."""
    idle, intvl, cnt = 3, 1, 2
    synack = pair.wire.expect("server", "SA", within=PROMPT_S, since=pair.t0)
    pair.drop(towards="server", name="blackhole")  # first: a probe answered before it would restart the count
    _keepalive(pair.client, idle, intvl, cnt)  # the first probe is due idle s after the SYN-ACK (the last received)
    last_probe = wait_s(chain_window(idle + intvl * (cnt - 1), timers=cnt))
    probes = [pair.wire.expect("client", "A", seq=0, len=0, within=last_probe, since=synack.ts) for _ in range(cnt)]
    rst = pair.wire.expect("client", "RA", seq=1, within=wait_s(timer_window(intvl)), since=probes[-1].ts)
    pair.expect_duration("idle time before the first probe", synack.ts, probes[0].ts, timer_window(idle), "wire")
    for a, b in itertools.pairwise(probes):
        pair.expect_duration("probe interval", a.ts, b.ts, timer_window(intvl), "wire")
    pair.expect_duration("last probe to RST", probes[-1].ts, rst.ts, timer_window(intvl), "wire")
    pair.wait_gone("client", within=PROMPT_S)
    pair.expect_errno(pair.client, "recv", errno_name="ETIMEDOUT", why="tcp_write_err() reports ETIMEDOUT")
    pair.expect_nstat("client", "TcpExtTCPKeepAlive", cnt)
    pair.expect_nstat("client", "TcpExtTCPAbortOnTimeout", 1)


@reference("RFC 1122 §4.2.3.6", "RFC 9293 §3.10.4",
           kernel=("net/ipv4/tcp_timer.c tcp_keepalive_timer() (only CLOSE and SYN_SENT are skipped)",
                   "net/ipv4/tcp.c tcp_recvmsg_locked() (SOCK_DONE before sk_err)"))
def test_keepalive_probes_in_close_wait_and_resets_a_dead_peer(pair):
    """Keepalive keeps probing in CLOSE_WAIT; a dead peer is reset and the socket ends with ETIMEDOUT.

    tcp_keepalive_timer() skips only CLOSE and SYN_SENT sockets, so a CLOSE_WAIT socket forgotten by its
    application is still probed (idle 1 s, 1 probe) and reset when the peer is gone. recv() still returns
    EOF (the FIN came first: SOCK_DONE is checked before sk_err); send() reports ETIMEDOUT."""
    # The client's pure ACKs are dropped at the server from before its FIN (after the handshake, only its answers
    # to the probes are pure ACKs): no rule change between the FIN and the probe 1 s later (one took ~0.9 s in an
    # emulated guest, and the probe was answered).
    pair.drop(towards="server", name="answers", exactly="A")
    _keepalive(pair.server, 1, 1, 1)
    pair.client.shutdown("SHUT_WR")
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
    pair.wire.allow("client", "A", seq=fin.seq + 1, why="its answers to the probes, dropped before the server")
    pair.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)
    pair.expect_state("server", "CLOSE_WAIT", timer="keepalive")
    probe = pair.wire.expect("server", "A", seq=0, len=0, within=wait_s(timer_window(1.0)), since=fin.ts)
    rst = pair.wire.expect("server", "RA", seq=1, within=wait_s(timer_window(1.0)), since=probe.ts)
    pair.expect_duration("idle time before the probe", fin.ts, probe.ts, timer_window(1.0), "wire")
    pair.expect_duration("probe to RST", probe.ts, rst.ts, timer_window(1.0), "wire")
    pair.wait_gone("server", within=PROMPT_S)
    pair.wait_gone("client", within=PROMPT_S, why="the RST reaches the client (only its pure ACKs are dropped)")
    pair.expect_equal("server recv() after the abort", pair.server.recv(), b"",
                      why="recv() after the peer's FIN returns EOF even after the abort (SOCK_DONE first)")
    pair.expect_errno(pair.server, "send", b"x", errno_name="ETIMEDOUT", why="the abort's sk_err")
    pair.expect_nstat("server", "TcpExtTCPAbortOnTimeout", 1)
