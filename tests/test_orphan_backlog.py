"""The orphaned FIN_WAIT2 that the backlog leaves on the keepalive timer (lab.expect_orphan_fin_wait2()): accepted only
with its evidence -- the peer's ACK of the FIN on the wire while close() ran -- and then it must end with an RST.
Pure logic: recorded frames and syscalls, no namespaces."""

from __future__ import annotations

import time

import pytest

from fixtures.endpoint import Syscall, SyscallLog
from fixtures.lab import Evidence, Lab
from fixtures.states import SockState
from fixtures.wire import Wire, WireExpectationError
from tests.test_logic import FakeCapture, frame, handshake_then

FIN_AT = 1.0
ACK_AFTER_FIN = 0.0017


class RecordedLab(Lab):
    """A Lab over recorded evidence: the client's state is what the test says, the wire is a recorded capture."""

    def __init__(self, timer: str, close_ends: float, rst_at: float | None = None) -> None:
        t0 = time.time() - 100  # everything happened in the past: no check waits
        frames = handshake_then(t0, frame(t0 + FIN_AT, True, "FA", 1001, 5001),
                                frame(t0 + FIN_AT + ACK_AFTER_FIN, False, "A", 5001, 1002))
        if rst_at is not None:
            frames.append(frame(t0 + rst_at, True, "RA", 1002, 5001))
        self.wire = Wire(FakeCapture(frames))
        self.log = SyscallLog()
        self.log.add(Syscall(t0 + FIN_AT - 0.001, t0 + close_ends, "client", "close", "", "None", None))
        self.evidence = Evidence()
        self.backlog_orphans = set()
        self._timer = timer
        self.t0 = t0

    def state(self, side: str) -> SockState:
        return SockState("FIN_WAIT2", self._timer, expires_ms=1000)


def test_the_keepalive_orphan_is_accepted_when_the_ack_came_while_close_ran():
    lab = RecordedLab("keepalive", close_ends=FIN_AT + 0.003)
    assert lab._orphaned_from_the_backlog("client")
    assert "client" in lab.backlog_orphans
    assert [a.flags for a in lab.wire.allows] == ["RA"] and lab.wire.allows[0].start == pytest.approx(
        lab.t0 + FIN_AT + ACK_AFTER_FIN)
    assert any("backlog" in note for note in lab.evidence.config_notes)


@pytest.mark.parametrize(("timer", "close_ends"), [
    pytest.param("keepalive", FIN_AT + 0.001, id="ack-after-close-returned"),
    pytest.param("timewait", FIN_AT + 0.003, id="timewait-timer"),
])
def test_without_its_evidence_the_keepalive_orphan_is_not_accepted(timer, close_ends):
    lab = RecordedLab(timer, close_ends=close_ends)
    assert not lab._orphaned_from_the_backlog("client")
    assert not lab.backlog_orphans and not lab.wire.allows


def test_a_backlog_orphan_must_end_with_an_rst():
    gone = FIN_AT + 2.0
    lab = RecordedLab("keepalive", close_ends=FIN_AT + 0.003, rst_at=gone - 0.0001)
    assert lab._orphaned_from_the_backlog("client")
    lab.expect_orphan_fin_wait2_ends("client", lab.t0 + FIN_AT + ACK_AFTER_FIN, lab.t0 + gone)

    silent = RecordedLab("keepalive", close_ends=FIN_AT + 0.003)
    assert silent._orphaned_from_the_backlog("client")
    with pytest.raises(WireExpectationError, match="RA"):
        silent.expect_orphan_fin_wait2_ends("client", silent.t0 + FIN_AT + ACK_AFTER_FIN, silent.t0 + gone)


def test_a_timewait_orphan_must_end_without_a_segment():
    gone = FIN_AT + 2.0
    lab = RecordedLab("timewait", close_ends=FIN_AT + 0.003, rst_at=gone - 0.0001)
    assert not lab._orphaned_from_the_backlog("client")
    with pytest.raises(WireExpectationError, match="no "):
        lab.expect_orphan_fin_wait2_ends("client", lab.t0 + FIN_AT + ACK_AFTER_FIN, lab.t0 + gone)
