"""Support for the timer areas (test_timers.py, test_time_wait.py): the model of a series of exponentially
backed-off retransmissions, and small helpers. Candidates for fixtures/ once reviewed.

The retransmission model (`rto_series`, `model_timeout_s`, `death_after_series`): Linux's RTO timer
doubles from icsk_rto (tcp_retransmit_timer(): icsk_rto = min(icsk_rto << 1, tcp_rto_max)), but a lone FIN
in flight is first re-sent by a tail-loss probe (tcp_schedule_loss_probe(): PTO = 2*srtt + tcp_rto_min when
one segment is out, clamped to the RTO) which does not back off, so the gaps are R, R, 2R, 4R, ... And the
retry limits (tcp_retries2, tcp_orphan_retries) are not counts: retransmits_timed_out() compares the time
since the first RTO retransmission (tp->retrans_stamp; the TLP does not set it) with
tcp_model_timeout(boundary, TCP_RTO_MIN), i.e. (2^(boundary+1) - 1) * 200 ms (linear past TCP_RTO_MAX),
whatever the connection's real RTO.
"""

from __future__ import annotations

from fixtures.lab import Lab
from fixtures.tolerance import JIFFY_S, Window, chain_window

TCP_RTO_MIN_S = 0.200  # include/net/tcp.h TCP_RTO_MIN (HZ/5): the base of tcp_model_timeout()
TCP_RTO_MAX_S = 120.0  # include/net/tcp.h TCP_RTO_MAX
TCP_TIMEWAIT_LEN_S = 60.0  # include/net/tcp.h TCP_TIMEWAIT_LEN
TCP_FIN_TIMEOUT_MAX_S = 120  # include/net/tcp.h TCP_FIN_TIMEOUT_MAX (the TCP_LINGER2 cap)


# retransmission series ---------------------------------------------------------------------------------

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
