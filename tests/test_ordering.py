"""Longest first (fixtures/ordering.py): expected durations, and the xdist scheduler driven with fake workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures import ordering


class FakeConfig:
    def __init__(self, workers: int, markexpr: str = "") -> None:
        self.values = {"tx": [f"{workers}*popen"], "maxschedchunk": None, "dist": "load"}
        self.option = type("Option", (), {"markexpr": markexpr})()

    def getvalue(self, name: str) -> object:
        return self.values[name]

    getoption = getvalue


class FakeNode:
    def __init__(self, name: str) -> None:
        self.name = name
        self.gateway = type("Gateway", (), {"id": name})()
        self.shutting_down = False
        self.sent: list[int] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


@pytest.fixture
def durations(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    known = {"long-a": 110.0, "long-b": 60.0, "mid": 3.0, **{f"short-{i}": 0.1 for i in range(8)}}
    monkeypatch.setattr(ordering, "known_durations", lambda quick=False: known)
    return known


def test_expected_duration_is_the_measured_one_else_a_guess(durations: dict[str, float]) -> None:
    assert ordering.expected_s("long-a") == 110.0
    assert ordering.expected_s("new-slow-case", slow=True) == ordering.SLOW_GUESS_S
    assert ordering.expected_s("new-case") == 0.1  # the median of what is known


@pytest.mark.parametrize(("known", "median"), [([3.0, 1.0, 2.0], 2.0), ([4.0, 1.0, 3.0, 2.0], 2.5), ([], None)])
def test_an_unknown_case_is_expected_to_take_the_median(monkeypatch: pytest.MonkeyPatch, known: list[float],
                                                         median: float | None) -> None:
    monkeypatch.setattr(ordering, "known_durations", lambda quick=False: {f"c{i}": v for i, v in enumerate(known)})
    assert ordering.expected_s("new-case") == (ordering.DEFAULT_GUESS_S if median is None else median)


def _scheduled(durations: dict[str, float], workers: int) -> tuple[object, list[FakeNode], list[str]]:
    collection = sorted(durations, key=lambda n: -durations[n])  # as every worker orders it
    sched = ordering.make_scheduler(FakeConfig(workers), None)
    nodes = [FakeNode(f"gw{i}") for i in range(workers)]
    for node in nodes:
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    return sched, nodes, collection


def test_the_longest_cases_start_first_on_different_workers(durations: dict[str, float]) -> None:
    _, nodes, collection = _scheduled(durations, 2)
    firsts = [collection[n.sent[0]] for n in nodes]
    assert firsts == ["long-a", "long-b"]


def test_behind_a_long_case_waits_a_short_one_not_another_long_one(durations: dict[str, float]) -> None:
    _, nodes, collection = _scheduled(durations, 2)
    for node in nodes:
        assert len(node.sent) == 2  # xdist needs the next case to run one
        assert durations[collection[node.sent[1]]] == 0.1


def test_every_case_is_handed_out_once_and_workers_stop_when_none_is_left(durations: dict[str, float]) -> None:
    sched, nodes, collection = _scheduled(durations, 3)
    while any(sched.node2pending[n] for n in nodes):
        for node in nodes:
            if sched.node2pending[node]:
                sched.mark_test_complete(node, sched.node2pending[node][0])
    handed = sorted(i for n in nodes for i in n.sent)
    assert handed == list(range(len(collection)))
    assert all(n.shutting_down for n in nodes)


def test_a_short_case_queued_on_a_free_worker_is_followed_by_the_longest_left(durations: dict[str, float]) -> None:
    sched, nodes, collection = _scheduled(durations, 3)
    third = nodes[2]  # its first case is "mid" (3 s: long enough to take a short one behind it)
    assert collection[third.sent[0]] == "mid"
    sched.mark_test_complete(third, third.sent[0])
    queued_after_short = collection[third.sent[-1]]
    assert durations[queued_after_short] == 0.1  # only short cases are left: the longest of them


def test_refresh_writes_measured_durations_and_keeps_the_others(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"cases": [
        {"nodeid": "a", "outcome": "passed", "duration_s": 1.234},
        {"nodeid": "b", "outcome": "skipped", "duration_s": 0.001},
        {"nodeid": "c", "outcome": "failed", "duration_s": 61.5}]}))
    out = tmp_path / "durations.json"
    out.write_text(json.dumps({"cases": {"old": 2.0, "a": 9.0}}))
    assert ordering.refresh(run, out) == ("cases", 3)
    assert json.loads(out.read_text())["cases"] == {"a": 1.23, "c": 61.5, "old": 2.0}


def test_a_run_without_the_slow_cases_refreshes_the_quick_figures(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"run": {"waits_long": False}, "cases": [
        {"nodeid": "reads-a-long-timer", "outcome": "passed", "duration_s": 0.15}]}))
    out = tmp_path / "durations.json"
    out.write_text(json.dumps({"cases": {"reads-a-long-timer": 65.5, "other": 2.0}}))
    assert ordering.refresh(run, out) == ("quick", 1)
    doc = json.loads(out.read_text())
    assert doc["cases"] == {"reads-a-long-timer": 65.5, "other": 2.0}  # the full run's figures stay
    assert doc["quick"] == {"reads-a-long-timer": 0.15}
    monkeypatch.setattr(ordering, "DURATIONS", out)
    ordering.known_durations.cache_clear()
    try:
        assert ordering.expected_s("reads-a-long-timer") == 65.5
        assert ordering.expected_s("reads-a-long-timer", quick=True) == 0.15
        assert ordering.expected_s("other", quick=True) == 2.0  # no quick figure: the full one
    finally:
        ordering.known_durations.cache_clear()


def test_a_run_waits_long_unless_it_deselects_the_slow_cases() -> None:
    assert ordering.waits_long(FakeConfig(1))
    assert ordering.waits_long(FakeConfig(1, "grid"))
    assert not ordering.waits_long(FakeConfig(1, "not slow"))


def _drain(sched: object, nodes: list[FakeNode]) -> None:
    """Complete cases one at a time (the running case of each worker in turn) until none is left."""
    while any(sched.node2pending[n] for n in nodes):
        for node in nodes:
            if sched.node2pending[node]:
                sched.mark_test_complete(node, sched.node2pending[node][0])


def _waiting_and_short(monkeypatch: pytest.MonkeyPatch, shorts: int, short_s: float) -> dict[str, float]:
    known = {**{f"wait-{i}": 2.0 for i in range(8)}, **{f"short-{i}": short_s for i in range(shorts)}}
    monkeypatch.setattr(ordering, "known_durations", lambda quick=False: known)
    return known


@pytest.mark.parametrize(("workers", "shorts", "short_s", "waiting_first"), [
    (4, 40, 0.4, 2),   # 16 s of waiting cases, 16 s of short ones: half the workers wait
    (8, 120, 0.4, 2),  # 16 s and 48 s: a quarter
    (4, 40, 0.1, 3),   # 16 s and 4 s: three of four
    (4, 0, 0.1, 4),    # nothing else to do: every worker
])
def test_waiting_cases_get_the_workers_share_of_the_time_left(monkeypatch: pytest.MonkeyPatch, workers: int,
                                                              shorts: int, short_s: float,
                                                              waiting_first: int) -> None:
    known = _waiting_and_short(monkeypatch, shorts, short_s)
    sched, nodes, collection = _scheduled(known, workers)
    firsts = [collection[n.sent[0]] for n in nodes]
    assert sum(1 for f in firsts if f.startswith("wait-")) == waiting_first
    _drain(sched, nodes)
    assert sorted(i for n in nodes for i in n.sent) == list(range(len(collection)))
    assert all(n.shutting_down for n in nodes)


def test_a_long_case_is_never_held_back(monkeypatch: pytest.MonkeyPatch) -> None:
    known = {**_waiting_and_short(monkeypatch, 120, 0.4), "long-a": 5.0, "long-b": 4.0}
    _, nodes, collection = _scheduled(known, 8)
    firsts = [collection[n.sent[0]] for n in nodes]
    assert firsts[:2] == ["long-a", "long-b"]  # then the waiting cases' share (2 of 8, counting the long ones)
    assert sum(1 for f in firsts if f.startswith("wait-")) == 0
