"""What a long run is waiting for (fixtures/progress.py): the status files and the lines printed from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures import progress


def test_waits_still_running_longest_remaining_first(tmp_path: Path) -> None:
    now = 1000.0
    for name, until in (("gw0", now + 40), ("gw1", now + 90), ("gw2", now - 1)):
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"case": f"case-{name}", "what": "wait_gone client", "length_s": 107, "since": now - 10, "until": until}))
    (tmp_path / "gw3.json").write_text("{not json")  # a file being replaced: skipped, not fatal
    assert [s["case"] for s in progress.waits(tmp_path, now)] == ["case-gw1", "case-gw0"]


def test_render_names_the_case_the_wait_and_the_time_left() -> None:
    status = {"case": "timers/orphaned-fin-wait1[ipv4]", "what": "wait_gone client", "length_s": 107.4,
              "until": 1043.2}
    lines = progress.render([status], done=540, total=548, elapsed=65.2, now=1000.0)
    assert lines == ["sockconf: 540/548 done, 65 s; waiting on kernel timers:",
                     "  timers/orphaned-fin-wait1[ipv4]: wait_gone client, ~107 s, 43 s left"]


def test_a_wait_is_published_only_while_a_case_runs_and_goes_when_it_ends(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "gw0.json"
    monkeypatch.setattr(progress, "_publish", {"path": path, "case": "close/x[ipv4]"})
    progress.announce(60.0, "wait_state server TIME_WAIT")
    published = json.loads(path.read_text())
    assert published["case"] == "close/x[ipv4]" and published["length_s"] == 60.0
    progress.pytest_runtest_logfinish("conformance/x.py::x", None)
    assert not path.exists()


def test_the_watchdog_announces_long_waits_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "gw0.json"
    monkeypatch.setattr(progress, "_publish", {"path": path, "case": "c"})
    dog = progress.AnnouncingWatchdog(lambda: "doing")

    def wait_state(side: str, state: str) -> None:
        dog.extend(progress.SHOWN_WAIT_S / 2)
        assert not path.exists()
        dog.extend(progress.SHOWN_WAIT_S)

    try:
        wait_state("client", "CLOSED")
    finally:
        dog.stop()
    assert json.loads(path.read_text())["what"] == "wait_gone client"
