"""The grid drawn from a run's grid cases (reports/grid.py): layout, outcomes, deviations, links, and compare's
side-by-side grids (pure: synthetic runs from reports_sample, no root)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from reports_sample import (
    GRID_DEVIATIONS,
    GRID_SAMPLE,
    case_by_id,
    external_resources,
    grid_case,
    grid_cases,
    make_run,
    unbalanced_tags,
    with_grid,
    write_run,
)

from reports import grid
from reports.compare import compare, print_text, render_diff, run_compare
from reports.fmt import slug
from reports.html import render_run
from reports.load import load_run

FAILED = "grid/grid[ipv4-closing-rst@left-1]"  # the kernel kept the socket instead of resetting it


def _run(tmp_path: Path, name: str, seen: dict[str, str] | None = None, **kw: object) -> Path:
    return write_run(tmp_path / name, with_grid(make_run(**kw), grid_cases(seen=seen)))  # type: ignore[arg-type]


def _tables(html_text: str) -> dict[str, str]:
    """family -> the HTML of its grid table."""
    return dict(re.findall(r'<table class="grid" data-family="([^"]+)">(.*?)</table>', html_text, re.S))


def _cell(table_html: str, state: str, probe: str) -> str:
    m = re.search(rf'<td class="[^"]*"[^>]*data-cell="{re.escape(state)}/{re.escape(probe)}"[^>]*>.*?</td>',
                  table_html, re.S)
    assert m, f"no cell {state}/{probe}"
    return m.group(0)


@pytest.fixture
def report(tmp_path: Path) -> str:
    return render_run(load_run(_run(tmp_path, "a", {FAILED: "->="})))


def test_layout_states_by_segments_one_table_per_family(report: str) -> None:
    assert '<h2 id="grid">' in report
    tables = _tables(report)
    assert list(tables) == ["ipv4", "ipv6"]
    ipv4 = tables["ipv4"]
    rows = re.findall(r'<th class="gstate">([A-Z_0-9]+)<br>', ipv4)
    assert rows == ["ESTABLISHED", "CLOSING", "TIME_WAIT"]  # conformance/grid.py's order of states
    top = re.findall(r'<th colspan="(\d+)">([a-z-]+)</th>', ipv4)
    assert top == [("1", "syn"), ("2", "ack"), ("3", "rst"), ("1", "data")]  # grouped by segment, grid.py's order
    sub = re.findall(r'<th title="([^"]+)">', ipv4)
    assert sub == ["syn@left", "ack@right-out", "ack@left-ack-ancient", "rst@left-1", "rst@left", "rst@inside",
                   "data@left"]  # positions left to right, the ACK variants after
    assert ipv4.count('class="gcell') == sum(len(r) for r in GRID_SAMPLE.values())
    # each cell: the answer, then the state afterwards ("=" unchanged)
    assert re.search(r"<b>CH</b><span class=\"gafter\">=</span>", _cell(ipv4, "established", "syn@left"))
    assert "<b>-</b><span class=\"gafter\">CLOSED</span>" in _cell(ipv4, "established", "rst@left")
    assert "<b>A+100</b>" in _cell(ipv4, "established", "data@left")
    assert "<b>A+0</b>" in _cell(ipv4, "time-wait", "syn@left")


def test_failed_cell_coloured_with_the_answer_seen_and_the_expectation(report: str) -> None:
    ipv4, ipv6 = _tables(report)["ipv4"], _tables(report)["ipv6"]
    failed = _cell(ipv4, "closing", "rst@left-1")
    assert "o-failed" in failed and "o-passed" not in failed
    # seen from the wire (the case failed, recorded no answer): nothing, socket unchanged; expected: reset
    assert '<b>-</b><span class="gafter">=</span><span class="gexp">exp - CLOSED</span>' in failed
    assert "read from the wire" in failed and "expected: nothing, then CLOSED" in failed
    assert "o-passed" in _cell(ipv6, "closing", "rst@left-1")
    assert sum('class="gcell o-failed' in t for t in re.findall(r"<td[^>]*>", report)) == 1
    assert "41 cells, 1 failed" not in report and "42 cells; 1 failed" in report


def test_deviation_marker_and_list(report: str) -> None:
    ipv4 = _tables(report)["ipv4"]
    for (state, probe), (_rfc, _text) in GRID_DEVIATIONS.items():
        cell = _cell(ipv4, state, probe)
        assert ' dev"' in cell.split(">", 1)[0] + '"' or " dev " in cell.split(">", 1)[0], cell
        assert 'class="gdev"' in cell
        assert "Linux deviates from RFC 9293/5961" in cell
    plain = _cell(ipv4, "established", "syn@left")
    assert "gdev" not in plain and " dev" not in plain.split(">", 1)[0]
    assert (f"{len(GRID_DEVIATIONS)} state × segment cells where Linux deviates from RFC 9293 / 5961") in report
    # the RFC's answer in words, from the cell's rfc_answer
    assert "the RFCs ask for a challenge ACK, unchanged" in _cell(ipv4, "time-wait", "rst@inside")


def test_cells_link_to_their_case_sections(report: str) -> None:
    ipv4 = _tables(report)["ipv4"]
    target = slug(FAILED)
    assert f'<a href="#{target}">' in _cell(ipv4, "closing", "rst@left-1")
    assert f'<details class="case" id="{target}"' in report
    hrefs = set(re.findall(r'href="#(c-grid-[^"]+)"', "".join(_tables(report).values())))
    ids = set(re.findall(r'<details class="case" id="(c-grid-[^"]+)"', report))
    assert hrefs and hrefs <= ids
    assert len(hrefs) == 2 * sum(len(r) for r in GRID_SAMPLE.values())


def test_self_contained_and_balanced(report: str) -> None:
    assert external_resources(report) == []
    assert unbalanced_tags(report) == []


def test_no_grid_section_without_grid_cases(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "plain", make_run()))
    assert 'id="grid"' not in render_run(run)
    cmp = compare([run, run])
    assert "grid" not in render_diff(cmp).split("<h2>Behaviour</h2>", 1)[1].split('class="case"', 1)[0]
    assert grid.summary_line(cmp.runs, []) is None


# --- reading the cases -------------------------------------------------------------------------------------------

def test_vocabulary_and_cell_repr_match_conformance_grid() -> None:
    """reports/grid.py never imports the conformance package: its vocabulary must follow conformance/grid.py, and
    it must read every cell the plugin writes (the Cell's repr) and every case id."""
    from conformance import grid as table

    assert tuple(table.MEASURED) == grid.STATES
    assert tuple(table.SEGMENTS) == grid.SEGMENTS and table.POSITIONS == grid.POSITIONS and table.ACKS == grid.ACKS
    assert all(grid.kernel_state(s) == n for s, n in table.STATE_NAMES.items())
    for cell in table.GRID:
        parsed = grid.parse_repr(str(cell))
        assert parsed["state"] == cell.state and parsed["deviation"] == cell.deviation
        assert grid.probe_id(**parsed["probe"]) == cell.probe.id
        assert grid.split_variant(cell.id) == (cell.state, cell.probe.id)
        case = {"id": f"grid/grid[ipv6-{cell.id}]", "area": "grid", "family": "ipv6", "variant": cell.id,
                "outcome": "passed", "params": {"family": "ipv6", "cell": str(cell)}, "segments": [], "states": []}
        gc = grid.identify(case)
        assert gc is not None and (gc.state, gc.probe, gc.answer, gc.after) == (
            cell.state, cell.probe.id, cell.answer, cell.after)
        assert gc.deviates == bool(cell.deviation)
    every = [grid.identify({"id": f"grid/grid[ipv4-{c.id}]", "area": "grid", "family": "ipv4", "variant": c.id,
                            "outcome": "passed", "params": {}, "segments": [], "states": []}) for c in table.GRID]
    layout = grid.Layout.of([[gc for gc in every if gc is not None]])
    assert layout.states == list(table.MEASURED)
    assert [p for p, *_ in layout.probes] == [p.id for p in table.PROBES]  # columns in the table's order


def test_answer_read_from_the_wire_when_nothing_else_says() -> None:
    """Without the cell (params) the answer and the state afterwards come from the segments and the timeline:
    CH from the challenge counter, A+N from the ACK field against rcv_nxt, R, nothing."""
    for state, row in GRID_SAMPLE.items():
        for probe, spec in row.items():
            case = grid_case(state, probe)
            case["params"] = {"family": "ipv4"}
            case["notes"] = []
            gc = grid.identify(case)
            assert gc is not None and gc.source == "wire" and (gc.state, gc.probe) == (state, probe), case["id"]
            answer, _, after = spec.partition(">")
            assert gc.answer == answer, case["id"]
            assert gc.after == (gc.before if after == "=" else after), case["id"]


def test_segment_never_sent() -> None:
    """A case that failed while bringing the socket into its state never injected the probe: no answer is read
    from the segments of the way there (the scripted peer logs every injection with its note)."""
    case = grid_case("time-wait", "rst@left", seen="A+0>=")
    probe_call = next(c for c in case["syscalls"] if c["call"] == "inject")
    case["segments"] = [s for s in case["segments"] if s["t"] < probe_call["t"]]
    case["syscalls"] = [c for c in case["syscalls"] if c is not probe_call]
    case["syscalls"].append({"t": case["segments"][-2]["t"], "t_end": case["segments"][-2]["t"], "side": "server",
                             "call": "inject", "args": "[FA] seq 1 ack 2 len 0 (the peer's FIN)", "result": "0",
                             "errno": None})
    case["message"] = "scripted = <ScriptedPeer>\n...\nE           KeyError: 'kernel'\n\nfixtures/lab.py:208: KeyError"
    gc = grid.identify(case)
    assert gc is not None and not gc.sent and gc.answer == "" and gc.source == ""
    html_text = grid.table(grid.Layout.of([[gc]]), "ipv4", [gc])
    assert "<b>?</b><span class=\"gafter\">not sent</span>" in html_text
    assert "the segment was never sent" in html_text and "KeyError: &#x27;kernel&#x27;" in html_text


def test_observation_is_preferred() -> None:
    case = case_by_id({"cases": grid_cases(families=("ipv4",))}, "grid/grid[ipv4-established-rst@inside]")
    case["observations"] = {"grid": {"value": {"state": "established", "probe": "rst@inside", "answer": "RA",
                                               "after": "CLOSED", "expected": "CH", "expected_after": "ESTABLISHED"},
                                     "text": "an RST"}}
    gc = grid.identify(case)
    assert gc is not None and (gc.answer, gc.after, gc.source) == ("RA", "CLOSED", "observation")
    assert gc.matches_expectation is False


def test_other_grid_area_cases_are_not_cells() -> None:
    case = {"id": "grid/challenge-ack-netns-limit[ipv4]", "area": "grid", "family": "ipv4", "variant": "",
            "outcome": "passed", "params": {"family": "ipv4"}, "segments": [], "states": []}
    assert grid.identify(case) is None


# --- compare -----------------------------------------------------------------------------------------------------

def test_compare_side_by_side_with_the_differing_cell_marked(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", seed=1)
    b = _run(tmp_path, "b", {FAILED: "->="}, seed=2, label="other")
    out_html = tmp_path / "diff.html"
    import io

    text = io.StringIO()
    code = run_compare([a, b], str(out_html), out=text)
    assert code == 1
    lines = [ln.strip() for ln in text.getvalue().splitlines() if ln.strip().startswith("grid:")]
    assert lines == ["grid: 1 of 42 cells differ: closing/rst@left-1 [ipv4]"]
    page = out_html.read_text()
    assert external_resources(page) == [] and unbalanced_tags(page) == []
    side = page.split('<h2 id="grid">', 1)[1].split('<details class="case"', 1)[0]
    tables = re.findall(r'<table class="grid" data-family="([^"]+)">(.*?)</table>', side, re.S)
    assert [f for f, _ in tables] == ["ipv4", "ipv4", "ipv6", "ipv6"]  # A and B side by side, per family
    assert side.count('<div class="cols side">') == 2
    (_, a4), (_, b4), (_, a6), (_, b6) = tables
    for t, outcome in ((a4, "o-passed"), (b4, "o-failed")):
        cell = _cell(t, "closing", "rst@left-1")
        assert "gdiff" in cell and "≠" in cell and outcome in cell
        assert f'href="#{slug(FAILED)}"' in cell  # to the case's diff below
        assert len(re.findall(r"class=\"gcell[^\"]* gdiff\"", t)) == 1
    assert "gdiff" not in a6 and "gdiff" not in b6
    assert f'<details class="case" id="{slug(FAILED)}" open>' in page


def test_compare_identical_grids_say_so(tmp_path: Path) -> None:
    a = load_run(_run(tmp_path, "a", seed=1))
    b = load_run(_run(tmp_path, "b", seed=3))
    cmp = compare([a, b])
    import io

    out = io.StringIO()
    print_text(cmp, out)
    assert "  grid: no cell differs (42 cells)\n" in out.getvalue()
    assert "gdiff\"" not in render_diff(cmp) and 'class="gcell o-passed gdiff' not in render_diff(cmp)


def test_compare_cell_missing_from_one_run(tmp_path: Path) -> None:
    data = with_grid(make_run(), grid_cases())
    data["cases"] = [c for c in data["cases"] if c["id"] != "grid/grid[ipv6-time-wait-rst@left]"]
    data["totals"] = {o: sum(c["outcome"] == o for c in data["cases"]) for o in data["totals"]}
    a = load_run(_run(tmp_path, "a"))
    b = load_run(write_run(tmp_path / "b", data))
    cmp = compare([a, b])
    assert grid.summary_line(cmp.runs, [d.id for d in cmp.differing + cmp.partial]) == (
        "grid: 1 of 42 cells differ: time-wait/rst@left [ipv6]")
    side = render_diff(cmp).split('<h2 id="grid">', 1)[1]
    b6 = re.findall(r'<table class="grid" data-family="ipv6">(.*?)</table>', side, re.S)[1]
    assert 'class="gcell o-none gdiff"' in b6
