"""Support for the timer areas (test_timers.py, test_time_wait.py): a repaired state probe, and the model of a
series of exponentially backed-off retransmissions. Candidates for fixtures/ once reviewed.

1. `repair_state_probes(lab)` (and the `lab`/`pair` fixtures below, which apply it) works around a harness
   bug: pyroute2 0.9 keeps one netlink socket *per thread* (NetlinkSocket.socket is a threading.local,
   created lazily in the calling thread's current network namespace; pyroute2/netlink/core.py). The
   StateProbe's DiagSocket was created inside the test namespace on the main thread, but the Sampler's
   background thread lives in the host namespace, so its first query silently opened a second sock_diag
   socket *in the host namespace* and from then on sampled the host's sockets: the timeline shows the
   test's sockets as CLOSED every 10 ms, alternating with the (correct) main-thread reads. The repair gives
   every thread its own DiagSocket, opened inside the probe's namespace.

2. The retransmission model (`rto_series`, `orphan_deadline_s`): Linux's RTO timer doubles from icsk_rto
   (tcp_retransmit_timer(): icsk_rto = min(icsk_rto << 1, tcp_rto_max)), but a lone FIN in flight is first
   re-sent by a tail-loss probe (tcp_schedule_loss_probe(): PTO = 2*srtt + tcp_rto_min when one segment is
   out, clamped to the RTO) which does not back off, so the gaps are R, R, 2R, 4R, ... And the retry limits
   (tcp_retries2, tcp_orphan_retries) are not counts: retransmits_timed_out() compares the time since the
   first retransmission with tcp_model_timeout(boundary, TCP_RTO_MIN), i.e. (2^(boundary+1) - 1) * 200 ms
   (linear past TCP_RTO_MAX), whatever the connection's real RTO.
"""

from __future__ import annotations

import threading

import pytest
from pyroute2 import DiagSocket

from fixtures.lab import Lab
from fixtures.tolerance import JIFFY_S, Window, chain_window

TCP_RTO_MIN_S = 0.200  # include/net/tcp.h TCP_RTO_MIN (HZ/5): the base of tcp_model_timeout()
TCP_RTO_MAX_S = 120.0  # include/net/tcp.h TCP_RTO_MAX
TCP_TIMEWAIT_LEN_S = 60.0  # include/net/tcp.h TCP_TIMEWAIT_LEN
TCP_FIN_TIMEOUT_MAX_S = 120  # include/net/tcp.h TCP_FIN_TIMEOUT_MAX (the TCP_LINGER2 cap)


# 1. state probe repair -------------------------------------------------------------------------------

def repair_state_probes(lab: Lab) -> None:
    """Make every StateProbe of `lab` answer from its own namespace whatever thread asks (see above)."""
    for side, probe in lab.probes.items():
        ns = lab.namespaces[side]
        local = threading.local()
        opened: list[DiagSocket] = []
        lock = threading.Lock()

        def sockets(probe=probe, ns=ns, local=local, opened=opened, lock=lock) -> list[dict]:
            diag = getattr(local, "diag", None)
            if diag is None:
                with ns.inside():
                    diag = DiagSocket()
                    diag.bind()
                local.diag = diag
                with lock:
                    opened.append(diag)
            return list(diag.get_sock_stats(family=probe.af))

        original_close = probe.close

        def close(original_close=original_close, opened=opened, lock=lock) -> None:
            original_close()
            with lock:
                for diag in opened:
                    diag.close()
                opened.clear()

        probe.sockets = sockets  # type: ignore[method-assign]
        probe.close = close  # type: ignore[method-assign]
    # Anything the sampler thread recorded before the repair came from the host namespace: drop it.
    with lab.sampler._lock:
        lab.sampler.timeline.clear()
        lab.sampler._last.clear()


@pytest.fixture
def lab(lab: Lab) -> Lab:
    """The plugin's `lab`, with state probes that answer from the test namespaces in every thread."""
    repair_state_probes(lab)
    return lab


@pytest.fixture
def pair(lab: Lab) -> Lab:
    """The plugin's `pair` (listen, connect, accept) on the repaired `lab`."""
    return lab.connect()


# 2. retransmission series ---------------------------------------------------------------------------------

def rto_series(rto_s: float, count: int, tlp: bool = True, rto_max_s: float = TCP_RTO_MAX_S) -> list[float]:
    """Expected offsets (s) of `count` retransmissions of a lone segment sent at 0, with RTO `rto_s`.

    With `tlp`, the first resend is the tail-loss probe, armed for min(2*srtt + rto_min, RTO) = RTO on a
    sub-millisecond veth, and the RTO timer is then re-armed for one unbacked-off RTO
    (tcp_send_loss_probe() -> tcp_rearm_rto()); each RTO after that doubles, capped at rto_max."""
    offsets, t, rto = [], 0.0, rto_s
    for i in range(count):
        t += rto
        offsets.append(t)
        if not (tlp and i == 0):
            rto = min(rto * 2, rto_max_s)
    return offsets


def series_windows(rto_s: float, count: int, tlp: bool = True) -> list[Window]:
    """One tolerance window per retransmission offset: the k-th resend is k consecutive timers."""
    return [chain_window(t, timers=k + 1, source="wire") for k, t in enumerate(rto_series(rto_s, count, tlp))]


def model_timeout_s(boundary: int, rto_base_s: float = TCP_RTO_MIN_S) -> float:
    """net/ipv4/tcp_timer.c tcp_model_timeout(): the time `boundary` backed-off retransmissions starting at
    rto_base would take; retransmits_timed_out() expires a connection when this much time has passed since
    its first retransmission (tp->retrans_stamp)."""
    jiffies_base = round(rto_base_s / JIFFY_S)
    thresh = (int(TCP_RTO_MAX_S / rto_base_s)).bit_length() - 1  # ilog2(TCP_RTO_MAX / rto_base)
    if boundary <= thresh:
        return ((2 << boundary) - 1) * jiffies_base * JIFFY_S
    return ((2 << thresh) - 1) * jiffies_base * JIFFY_S + (boundary - thresh) * TCP_RTO_MAX_S


def death_after_series(offsets: list[float], deadline_s: float) -> tuple[int, float]:
    """Given retransmission offsets from the original send (the first one being the start of the clock,
    tp->retrans_stamp) and a retransmits_timed_out() deadline, return how many retransmissions go out and
    when (offset from the original send) the timer that finds the deadline passed fires: the first timer
    at or after first_retransmit + deadline."""
    start = offsets[0]
    sent = [t for t in offsets if t < start + deadline_s - 1e-9]
    nxt = offsets[len(sent)] if len(sent) < len(offsets) else None
    if nxt is None:
        raise ValueError("series too short for this deadline")
    return len(sent), nxt


def orphan_retries_effective(sysctl_value: int) -> int:
    """net/ipv4/tcp_timer.c tcp_orphan_retries(): 0 means 8 while the RTO is below TCP_RTO_MAX."""
    return 8 if sysctl_value == 0 else sysctl_value


# 3. small helpers ------------------------------------------------------------------------------------

def tcp_sysctl_present(lab: Lab, name: str) -> bool:
    """Whether a per-namespace sysctl exists on the running kernel (read inside the test namespace)."""
    import os

    ns = lab.namespaces["client"]
    return bool(ns.call(os.path.exists, ns.sysctl_path(name)))


def rto_s(endpoint) -> float:  # type: ignore[no-untyped-def]
    """The connection's current RTO (icsk_rto) from TCP_INFO, in seconds."""
    return endpoint.tcp_info()["rto"] / 1e6


def resends_of(lab: Lab, original) -> list:  # type: ignore[no-untyped-def]
    """Every later segment from the same sender with the same flags, seq and length (retransmissions)."""
    return [s for s in lab.wire.segments()[original.index + 1:]
            if s.sender == original.sender and s.flags == original.flags and s.seq == original.seq
            and s.length == original.length]
