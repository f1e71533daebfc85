"""Helpers for the article's-claims cases (conformance/test_claims.py).

`Track` polls sock_diag from the test's own thread every 2 ms and keeps, per side, the ordered list of states
it saw (short states such as CLOSING are caught between two actions); its reads also go to the lab's
timeline through `lab.state()`. (It was written when the harness's sampler thread read the host's sock_diag,
fixed in 11fe280; it no longer stops that thread.)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fixtures.lab import Lab
from fixtures.states import SockState

POLL_S = 0.002


class Track:
    def __init__(self, lab: Lab, *sides: str) -> None:
        self.lab = lab
        self.sides = list(sides)
        self.seen: dict[str, list[str]] = {s: [] for s in sides}
        self.first: dict[tuple[str, str], float] = {}
        self.last: dict[str, SockState] = {}
        self.poll()

    def add(self, side: str) -> None:
        self.sides.append(side)
        self.seen[side] = []
        self.poll()

    def poll(self, during: float = 0.0, until: Callable[[dict[str, SockState]], bool] | None = None) -> float:
        """Read every tracked side now, and again every 2 ms for `during` s or until `until(states)`;
        return the time of the last read."""
        deadline = time.time() + during
        while True:
            now = time.time()
            for side in self.sides:
                st = self.lab.state(side)
                self.last[side] = st
                if not self.seen[side] or self.seen[side][-1] != st.state:
                    self.seen[side].append(st.state)
                    self.first.setdefault((side, st.state), now)
            if (until is not None and until(self.last)) or now >= deadline:
                return now
            time.sleep(POLL_S)

    def until_state(self, side: str, state: str, within: float) -> float:
        """Poll until `side` is in `state`; fail (with the wire and ss) if it is not within `within` s."""
        self.poll(within, until=lambda st: st[side].state == state)
        if self.last[side].state != state:
            raise AssertionError(self.lab.explain(
                f"expected {side} to reach {state} within {within:.3f} s; seen {' -> '.join(self.seen[side])}"))
        return self.first_seen(side, state)

    def first_seen(self, side: str, state: str) -> float:
        return self.first[(side, state)]


TCP_RTO_MIN_S = 0.200  # include/net/tcp.h TCP_RTO_MIN (HZ/5): the base of tcp_model_timeout(), not the sysctl


def orphan_retries_effective(sysctl_value: int) -> int:
    """tcp_orphan_retries(): 0 means 8 for a socket whose RTO is still below TCP_RTO_MAX ("alive")."""
    return 8 if sysctl_value == 0 else sysctl_value


def orphan_fin_wait1_model(retries: int, rto_s: float) -> tuple[int, float]:
    """How an orphaned FIN_WAIT1 with a silent peer ends, per net/ipv4/tcp_timer.c tcp_write_timeout():
    at each RTO expiry after the first RTO retransmission, retransmits_timed_out() compares the time since
    that retransmission (retrans_stamp) with tcp_model_timeout(retries, TCP_RTO_MIN) =
    (2^(retries+1) - 1) * 200 ms; once reached, tcp_write_err() frees the socket, sending nothing.
    Returns (RTO retransmissions, seconds from the first RTO retransmission to the end)."""
    budget = ((2 << retries) - 1) * TCP_RTO_MIN_S
    retransmissions, elapsed, backoff = 1, 0.0, rto_s
    while True:
        backoff *= 2  # inet_csk_reset_xmit_timer(..., icsk_rto << backoff)
        elapsed += backoff
        if elapsed >= budget:
            return retransmissions, elapsed
        retransmissions += 1


def drop_fins_acking(lab: Lab, towards: str, name: str, raw_ack: int) -> None:
    """Drop FIN segments arriving at `towards` whose acknowledgment number is `raw_ack` (absolute), e.g. the
    peer's FINs that acknowledge `towards`' own FIN; other FINs pass. Lets a case make FINs cross
    deterministically (lab.drop() only matches flags). Remove with lab.undrop(towards, name)."""
    lab.faults[towards].drop(name, f"tcp flags & fin == fin tcp ackseq {raw_ack % 2**32}")
