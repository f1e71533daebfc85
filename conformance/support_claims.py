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
