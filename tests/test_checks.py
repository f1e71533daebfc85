"""The evaluators behind every check (fixtures/checks.py), each shown deciding both ways on hand-made evidence."""

from __future__ import annotations

import time

import pytest

from fixtures.checks import (
    Allow,
    Check,
    Evidence,
    Measured,
    RecordedSegment,
    StateRow,
    eval_absence,
    eval_duration,
    eval_reach,
    eval_segment,
    eval_state,
    eval_states_seen,
    eval_value,
    from_json,
    recorded,
    to_json,
    unexpected_segments,
)
from fixtures.states import Sampler, SockState, Watched


def seg(ts: float, sender: str, flags: str, seq: int = 1, length: int = 0, port: int = 40000,
        origin: str = "kernel") -> RecordedSegment:
    return RecordedSegment(ts, sender, flags, seq, 1, length, port, origin)


WIRE = [seg(0.0, "client", "S", 0), seg(0.001, "server", "SA", 0), seg(0.002, "client", "A"),
        seg(1.0, "client", "FA"), seg(1.001, "server", "A"), seg(2.0, "client", "RA", 2)]
SIDES = ("client", "server")


def test_segment_check_finds_the_first_match_after_the_cursor_and_judges_its_time():
    ev = Evidence(WIRE)
    assert eval_segment(ev, {"sender": "client", "flags": "FA", "deadline": 1.1})[0]
    assert not eval_segment(ev, {"sender": "client", "flags": "FA", "deadline": 0.9})[0]  # late
    assert not eval_segment(ev, {"sender": "client", "flags": "FA", "after": 1.0, "deadline": 9})[0]  # past it
    assert not eval_segment(ev, {"sender": "client", "flags": "R", "deadline": 9})[0]  # RA is not exactly R
    assert eval_segment(ev, {"sender": "client", "has": "R", "deadline": 9})[0]


def test_injected_segments_match_only_when_asked_for():
    ev = Evidence([seg(0.5, "server", "R", origin="injected")])
    assert not eval_segment(ev, {"sender": "server", "flags": "R", "deadline": 1})[0]
    assert eval_segment(ev, {"sender": "server", "flags": "R", "origin": "injected", "deadline": 1})[0]


def test_absence_check_covers_its_whole_window():
    ev = Evidence(WIRE)
    assert eval_absence(ev, {"sender": "client", "has": "F", "from": 1.5, "to": 3.0})[0]
    ok, found = eval_absence(ev, {"sender": "client", "has": "F", "from": 0.5, "to": 3.0})
    assert not ok and found[0].ts == 1.0


ROWS = [StateRow(0.0, "client", "ESTABLISHED"), StateRow(1.0, "client", "FIN_WAIT1", "retrans"),
        StateRow(1.1, "client", "FIN_WAIT2", "timewait", 59_000), StateRow(2.0, "client", "CLOSED")]


def test_state_checks():
    ev = Evidence([], ROWS)
    assert eval_state(ev, {"side": "client", "state": "FIN_WAIT2", "timer": "timewait", "at": 1.5})[0]
    assert not eval_state(ev, {"side": "client", "state": "FIN_WAIT2", "timer": "none", "at": 1.5})[0]
    assert not eval_state(ev, {"side": "client", "state": "FIN_WAIT2", "at": 2.5})[0]
    assert eval_reach(ev, {"side": "client", "state": "CLOSED", "from": 1.0, "to": 2.5})[0]
    assert not eval_reach(ev, {"side": "client", "state": "CLOSED", "from": 1.0, "to": 1.9})[0]
    assert eval_states_seen(ev, {"side": "client", "states": ["ESTABLISHED", "FIN_WAIT2", "CLOSED"]})[0]
    assert not eval_states_seen(ev, {"side": "client", "states": ["FIN_WAIT2", "FIN_WAIT1"]})[0]


def test_duration_points_come_from_evidence():
    ev = Evidence([], ROWS)
    expiry = {"expiry": {"side": "client", "at": 1.5, "state": "FIN_WAIT2"}}
    ok, measured = eval_duration(ev, {"start": {"t": 1.1}, "end": expiry, "low": 59.0, "high": 61.0})
    assert ok and measured == pytest.approx((59.4, 59.4))  # rows without t_end: a read taken as instantaneous
    gone = {"first": {"side": "client", "state": "CLOSED", "after": 1.0}}
    assert eval_duration(ev, {"start": {"t": 1.1}, "end": gone, "low": 0.8, "high": 1.0})[0]
    assert not eval_duration(ev, {"start": {"t": 1.1}, "end": gone, "low": 0.0, "high": 0.5})[0]


# A sampled end: the ACK of the FIN at 1.0; the sampler's read sent at 1.005 still saw FIN_WAIT2, the next one was
# sent 100 ms later (a descheduled worker) and saw the socket gone. "Gone at once" is a window of [0, 0.078].
ACK_TS = 1.0
GONE_AT_ONCE = {"low": 0.0, "high": 0.078}


def _gone_rows(last_alive: float, first_gone: float, answered_after: float = 0.001) -> list[StateRow]:
    return [StateRow(0.5, "client", "ESTABLISHED", t_end=0.501),
            StateRow(0.9, "client", "FIN_WAIT2", "timewait", 60_000, t_end=0.901, t_prev=0.89),
            StateRow(first_gone, "client", "CLOSED", t_end=first_gone + answered_after, t_prev=last_alive)]


def _gone_at_once(rows: list[StateRow]) -> tuple[bool, tuple[float, float] | None]:
    end = {"first": {"side": "client", "state": "CLOSED", "after": ACK_TS}}
    return eval_duration(Evidence([], rows), {"start": {"t": ACK_TS}, "end": end, **GONE_AT_ONCE})


def test_a_sampled_end_lies_between_the_last_read_that_saw_the_old_state_and_the_first_that_saw_the_new():
    ok, span = _gone_at_once(_gone_rows(last_alive=1.005, first_gone=1.109))
    assert ok and span == pytest.approx((0.005, 0.110))  # was judged 0.109 > 0.078: a failure made by the scheduler


def test_a_sampled_end_fails_when_a_read_saw_the_old_state_after_the_window():
    ok, span = _gone_at_once(_gone_rows(last_alive=1.2, first_gone=1.21))
    assert not ok and span[0] == pytest.approx(0.2)  # alive 0.2 s after the ACK: the kernel was late, proven


def test_a_sampled_end_fails_when_the_new_state_was_answered_before_the_window():
    end = {"first": {"side": "client", "state": "CLOSED", "after": ACK_TS}}
    rows = _gone_rows(last_alive=1.005, first_gone=1.109)
    ok, span = eval_duration(Evidence([], rows), {"start": {"t": ACK_TS}, "end": end, "low": 0.5, "high": 0.7})
    assert not ok and span[1] == pytest.approx(0.110)  # gone by 0.110 s: a 0.5 s timer fired early, proven


def test_a_first_sighting_goes_back_to_the_start_of_its_run_of_rows():
    rows = [*_gone_rows(last_alive=1.005, first_gone=1.02), StateRow(1.5, "client", "CLOSED", t_end=1.501, t_prev=1.49)]
    end = {"first": {"side": "client", "state": "CLOSED", "after": 1.4}}  # a wait that began after it was gone
    ok, span = eval_duration(Evidence([], rows), {"start": {"t": ACK_TS}, "end": end, **GONE_AT_ONCE})
    assert ok and span == pytest.approx((0.005, 0.021))  # the change, not the later record=True read


def test_a_timer_expiry_is_counted_from_an_answer_between_the_query_stamps():
    rows = [StateRow(1.5, "client", "TIME_WAIT", "timewait", 58_500, t_end=1.52)]
    window = {"low": 60.01, "high": 61.0}
    late = {"expiry": {"side": "client", "at": 1.5, "at_end": 1.52, "state": "TIME_WAIT"}}
    ok, span = eval_duration(Evidence([], rows), {"start": {"t": 0.0}, "end": late, **window})
    assert ok and span == pytest.approx((60.0, 60.02))  # the worker was descheduled 20 ms during the query
    instant = {"expiry": {"side": "client", "at": 1.5, "at_end": 1.5, "state": "TIME_WAIT"}}
    assert not eval_duration(Evidence([], rows), {"start": {"t": 0.0}, "end": instant, **window})[0]


def test_value_check_reads_the_measured_value_in_force():
    ev = Evidence([], [], [Measured(1.0, "errno", "ECONNRESET"), Measured(2.0, "errno", "EPIPE")])
    assert eval_value(ev, {"name": "errno", "at": 1.5, "expected": "ECONNRESET"})[0]
    assert not eval_value(ev, {"name": "errno", "at": 2.5, "expected": "ECONNRESET"})[0]


def test_times_shift_to_and_from_json():
    params = {"from": 101.5, "to": 102.0, "end": {"first": {"after": 101.0}}, "sender": "client", "fields": {}}
    assert to_json(params, 100.0)["end"]["first"]["after"] == 1.0
    assert from_json(to_json(params, 100.0), 100.0) == params


# --- the strict wire mode --------------------------------------------------------------------------------------

def fin_check() -> Check:
    return Check("segment", "client sends [FA]", "[FA]", "[FA]", True, 1.0,
                 {"sender": "client", "flags": "FA", "deadline": 1.2})


def test_unmatched_rst_is_unexpected_and_a_matched_fin_is_not():
    ev = Evidence(WIRE)
    found = unexpected_segments(ev, [fin_check()], [], 0.5, 3.0)
    assert [(s.sender, s.flags) for s in found] == [("client", "RA")]


def test_allowed_segments_and_the_scenario_window():
    ev = Evidence(WIRE)
    allow = Allow("client", "the abort the case provokes", flags="RA")
    assert unexpected_segments(ev, [fin_check()], [allow], 0.5, 3.0) == []
    assert unexpected_segments(ev, [fin_check()], [], 0.5, 1.5) == []  # the RST comes after the scenario


def test_handshake_allowance_covers_the_first_syn_and_resends_nothing_answered_yet():
    ev = Evidence([seg(0.0, "client", "S", 0), seg(1.0, "client", "S", 0), seg(1.5, "server", "SA", 0),
                   seg(1.6, "client", "A", 1), seg(2.0, "client", "S", 0), seg(2.5, "server", "SA", 0)])
    allows = [Allow("client", "handshake", kind="handshake", client_port=40000),
              Allow("server", "handshake", kind="handshake", client_port=40000)]
    found = unexpected_segments(ev, [], allows, -1.0, 3.0)
    # the SYN resent at 1.0 had no SYN-ACK yet: the handshake's; the SYN after the SYN-ACK and the SYN-ACK after
    # the ACK are not
    assert [(s.ts, s.flags) for s in found] == [(2.0, "S"), (2.5, "SA")]


def test_handshake_allowance_is_of_its_own_connect_when_the_client_port_is_reused():
    ev = Evidence([seg(0.0, "client", "S", 0), seg(0.001, "server", "SA", 0), seg(0.002, "client", "A", 1),
                   seg(0.5, "server", "RA"), seg(1.0, "client", "S", 0), seg(1.001, "server", "SA", 0)])
    first = [Allow(side, "handshake", kind="handshake", client_port=40000, start=-0.1) for side in SIDES] + [
        Allow("server", "the reset that frees the port", flags="RA")]
    again = [Allow(side, "handshake", kind="handshake", client_port=40000, start=0.9) for side in SIDES]
    assert [(s.ts, s.flags) for s in unexpected_segments(ev, [], first, -1.0, 3.0)] == [(1.0, "S"), (1.001, "SA")]
    assert unexpected_segments(ev, [], first + again, -1.0, 3.0) == []


def test_data_allowance_covers_first_transmissions_only():
    ev = Evidence([seg(0.5, "server", "PA", 1, 10), seg(0.8, "client", "PA", 1, 100),
                   seg(1.0, "client", "PA", 1, 100), seg(1.1, "client", "PA", 101, 100),
                   seg(1.3, "client", "PA", 101, 100)])
    allows = [Allow("client", "data its application wrote", start=0.9, kind="data")]
    found = unexpected_segments(ev, [], allows, 0.0, 3.0)
    # the server never wrote; the client's data before its first write, and its retransmission, are not covered
    assert [(s.sender, s.ts) for s in found] == [("server", 0.5), ("client", 0.8), ("client", 1.0), ("client", 1.3)]


def test_pure_acks_and_injected_frames_are_exempt():
    ev = Evidence([seg(1.0, "client", "A"), seg(1.1, "server", "R", origin="injected")])
    assert unexpected_segments(ev, [], [], 0.0, 3.0) == []


class ScriptedProbe:
    """A probe answering each query with the next state of a script, the query taking `took` seconds."""

    def __init__(self, states: list[str], took: float) -> None:
        self.states, self.took = iter(states), took

    def find(self, sport: int, dport: int | None, side: str) -> SockState:
        t = time.time()
        time.sleep(self.took)
        return SockState(next(self.states), t=t, side=side, t_end=time.time())


def test_the_sampler_stamps_both_ends_of_a_read_and_the_read_before_a_change_into_results():
    sampler = Sampler()
    sampler.watched["client"] = Watched("client", ScriptedProbe(["FIN_WAIT2", "FIN_WAIT2", "CLOSED"], 0.02), 1, 2)
    reads = [sampler.read("client") for _ in range(3)]
    assert all(r.t_end - r.t >= 0.02 for r in reads)
    t0 = reads[0].t - 1.0
    case = {"t0": t0, "segments": [], "checks": [], "states": [c.as_dict(t0) for c in sampler.timeline]}
    ev = recorded(case)[0]
    assert [r.state for r in ev.states] == ["FIN_WAIT2", "CLOSED"]  # the second FIN_WAIT2 read changed nothing
    gone = ev.states[1]
    assert gone.t_prev == pytest.approx(reads[1].t, abs=1e-6)  # the last read that saw FIN_WAIT2, not the first
    assert gone.t_end == pytest.approx(reads[2].t_end, abs=1e-6)
    end = {"first": {"side": "client", "state": "CLOSED", "after": 0.0}}
    _ok, span = eval_duration(ev, {"start": {"t": reads[0].t}, "end": end, "low": 0, "high": 1})
    assert span == pytest.approx((reads[1].t - reads[0].t, reads[2].t_end - reads[0].t), abs=1e-6)
