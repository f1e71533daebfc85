"""Rebuilding results.json after a kill: `reports.rebuild` and `python -m reports render` on a run directory
holding only run.json and cases/ (pure python, no root)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from reports_sample import (
    leave_tmp,
    make_run,
    run_header,
    safe_name,
    truncate_case,
    unbalanced_tags,
    write_evidence,
    write_run,
)

from reports.__main__ import main
from reports.load import ResultsError, load_run
from reports.rebuild import CLAIMS_NOTE, needs_rebuild, rebuild

REPO = Path(__file__).resolve().parent.parent
TRUNCATED = "orphan/fin-wait2-timeout[ipv4]"  # the third case of make_run()
TMP = "shutdown/shut-wr-half-close[ipv4]"  # the ninth: it was being written when the run was killed
INCOMPLETE_LINE = ("INCOMPLETE: rebuilt after the run was killed; 7 of 11 cases finished; "
                   "2 cases' evidence was lost (1 truncated, 1 never renamed into place)")


@pytest.fixture
def killed(tmp_path: Path) -> tuple[Path, dict]:
    """A run of 11 selected cases killed after 8 finished, one of whose files is cut short, while a ninth
    case's evidence was still in its .tmp."""
    data = make_run()
    assert [data["cases"][i]["id"] for i in (2, 8)] == [TRUNCATED, TMP]
    run_dir = write_evidence(tmp_path / "run", data, finished=8)
    truncate_case(run_dir, TRUNCATED, lines=3)
    leave_tmp(run_dir, data["cases"][8])
    return run_dir, data


def test_rebuild_marks_the_run_incomplete_and_reports_lost_evidence(killed: tuple[Path, dict]) -> None:
    run_dir, data = killed
    assert needs_rebuild(run_dir) == "results.json was never written"
    path = rebuild(run_dir)
    assert path == run_dir / "results.json"
    doc = json.loads(path.read_text())
    run = doc["run"]
    assert doc["schema"] == data["schema"] and doc["claims"] is None
    assert run["status"] == "incomplete" and run["selected"] == 11 and run["finished"] == 7
    assert run["id"] == data["run"]["id"] and run["kernel"] == data["run"]["kernel"]  # the header, kept
    assert CLAIMS_NOTE in run["note"]
    ids = [c["id"] for c in doc["cases"]]
    assert ids == sorted(c["id"] for c in data["cases"][:8] if c["id"] != TRUNCATED)
    assert doc["totals"] == {"passed": 5, "failed": 1, "skipped": 1, "error": 0, "xfailed": 0, "xpassed": 0}
    lost = {item["case"]: item for item in run["lost"]}
    assert set(lost) == {TRUNCATED, TMP}  # neither dropped silently; both named by their case id
    assert lost[TRUNCATED]["reason"] == "truncated JSON at line 3"
    assert lost[TRUNCATED]["file"] == f"cases/{safe_name(TRUNCATED)}.json"
    assert lost[TMP]["file"] == f"cases/{safe_name(TMP)}.tmp"
    assert "left-over temporary file" in lost[TMP]["reason"] and "never renamed into place" in lost[TMP]["reason"]
    assert "truncated JSON" in lost[TMP]["reason"]
    loaded = load_run(run_dir)
    assert loaded.status == "incomplete" and loaded.selected == 11 and loaded.finished == 7 and len(loaded.lost) == 2
    assert needs_rebuild(run_dir) is None  # once rebuilt, it is a results.json like any other


def test_render_cli_rebuilds_says_so_then_renders(killed: tuple[Path, dict]) -> None:
    run_dir, _ = killed
    proc = subprocess.run([sys.executable, "-m", "reports", "render", str(run_dir)], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[1] == str(run_dir / "index.html")
    assert lines[0].startswith(f"rebuilt {run_dir / 'results.json'} for an incomplete run")
    assert "7 of 11 selected cases finished, 2 lost" in lines[0]
    html = (run_dir / "index.html").read_text()
    header = html.split("</header>", 1)[0]
    escaped = INCOMPLETE_LINE.replace("'", "&#x27;")
    assert f'<p class="st-line">{escaped}</p>' in header
    assert "<title>sockconf — default (INCOMPLETE)</title>" in html
    lost_table = header.split('<table class="lost">', 1)[1].split("</table>", 1)[0]
    assert TRUNCATED in lost_table and "truncated JSON at line 3" in lost_table and TMP in lost_table
    assert "Claims were not decided in a rebuilt run" in html.split('<h2 id="claims">', 1)[1].split("<h2", 1)[0]
    assert unbalanced_tags(html) == []
    suite = ET.parse(run_dir / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.find("properties") or []}
    assert (props["run_status"], props["selected"], props["finished"]) == ("incomplete", "11", "7")
    errors = {tc.get("name"): tc.find("error") for tc in suite.findall("testcase") if tc.find("error") is not None}
    assert errors[TRUNCATED].get("message") == "evidence lost: truncated JSON at line 3"
    assert errors["run status"].get("message") == INCOMPLETE_LINE
    # rendering again does not rebuild again
    before = (run_dir / "results.json").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "reports", "render", str(run_dir)], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == str(run_dir / "index.html")
    assert (run_dir / "results.json").read_bytes() == before


def test_a_complete_results_json_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_run()
    run_dir = write_run(tmp_path / "run", data)
    write_evidence(run_dir, data, finished=3)  # run.json still says running, and only 3 case files: no matter
    truncate_case(run_dir, data["cases"][0]["id"])
    before = (run_dir / "results.json").read_bytes()
    assert needs_rebuild(run_dir) is None
    with pytest.raises(ResultsError, match="already written by the run; not overwritten"):
        rebuild(run_dir)
    assert main(["render", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "index.html")
    assert (run_dir / "results.json").read_bytes() == before
    assert load_run(run_dir).status == "complete" and len(load_run(run_dir).cases) == 11


def test_without_run_json_it_rebuilds_what_it_can(tmp_path: Path) -> None:
    data = make_run()
    run_dir = write_evidence(tmp_path / "killed-run", data, finished=5, header=False)
    doc = json.loads(rebuild(run_dir).read_text())
    run = doc["run"]
    assert run["label"] == run["id"] == "killed-run" and run["selected"] is None and run["finished"] == 5
    assert run["header_lost"] == "run.json is missing" and "The run header was lost" in run["note"]
    assert run["started"] == "2025-11-25T15:16:00+00:00"  # from the earliest case's t0
    html = (main(["render", str(run_dir)]), (run_dir / "index.html").read_text())[1]
    assert ("INCOMPLETE: rebuilt after the run was killed; the run header was lost; 5 cases finished (how many "
            "were selected is unknown)") in html


def test_truncated_run_json_is_reported_as_a_lost_header(tmp_path: Path) -> None:
    data = make_run()
    run_dir = write_evidence(tmp_path / "run", data, finished=4)
    (run_dir / "run.json").write_text(json.dumps(run_header(data), indent=1)[:300])
    run = json.loads(rebuild(run_dir).read_text())["run"]
    assert run["header_lost"].startswith("run.json: truncated JSON at line") and run["label"] == "run"


def test_nothing_to_rebuild_from_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    assert needs_rebuild(run_dir) is None
    assert main(["render", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("reports: error: ") and "no results.json" in err
    with pytest.raises(ResultsError, match=r"no results\.json, and no run\.json or cases/ to rebuild it from"):
        rebuild(run_dir)


def test_results_json_cut_short_while_written_is_rebuilt_and_kept(tmp_path: Path) -> None:
    data = make_run()
    run_dir = write_evidence(tmp_path / "run", data)
    broken = json.dumps(data)[:1000]
    (run_dir / "results.json").write_text(broken)
    assert needs_rebuild(run_dir).startswith("results.json is unusable (truncated JSON at line 1)")
    rebuild(run_dir)
    assert (run_dir / "results.json.broken").read_text() == broken
    assert load_run(run_dir).status == "incomplete" and load_run(run_dir).finished == 11


def test_results_json_of_an_earlier_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_run()
    run_dir = write_run(tmp_path / "run", data)
    newer = make_run(seed=9)  # another run id, started in the same directory and killed
    write_evidence(run_dir, newer, finished=2)
    assert main(["render", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "move results.json away" in err and newer["run"]["id"] in err
    same_id = run_header(make_run(), selected=11) | {"started": "2026-11-26T09:00:00+00:00"}
    (run_dir / "run.json").write_text(json.dumps(same_id))  # the same directory name, a later start
    assert main(["render", str(run_dir)]) == 2
    assert "2026-11-26T09:00:00+00:00" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "reason"), [
    ("", "truncated: empty file"),
    ('{"id": "close/x[ipv4]", "outcome": "passed"' + "\0" * 64, "truncated JSON at line 1 (then zero bytes)"),
    ("[1, 2]", "not a JSON object"),
    ('{"outcome": "passed"}', "no case id"),
    ('{"id": "close/x[ipv4]"}', "no outcome"),
    ('{"id": "close/x[ipv4]", "outcome": "exploded"}', "outcome 'exploded' is not one of"),
    ('{"id": "close/x[ipv4]", "outcome": "passed",}', "invalid JSON at line 1, column 45"),
])
def test_each_unusable_case_file_says_why(tmp_path: Path, content: str, reason: str) -> None:
    data = make_run()
    run_dir = write_evidence(tmp_path / "run", data, finished=2)
    (run_dir / "cases" / "close_x_ipv4.json").write_text(content)
    run = load_run(rebuild(run_dir))
    assert run.finished == 2 and len(run.cases) == 2
    assert [item["file"] for item in run.lost] == ["cases/close_x_ipv4.json"]
    assert run.lost[0]["reason"].startswith(reason), run.lost[0]["reason"]
    expected_name = "close/x[ipv4]" if '"id"' in content else "close_x_ipv4.json"
    assert run.lost[0]["case"] == expected_name


def test_a_tmp_beside_its_renamed_case_file_is_not_lost(tmp_path: Path) -> None:
    data = make_run()
    run_dir = write_evidence(tmp_path / "run", data, finished=3)
    (run_dir / "cases" / f"{safe_name(data['cases'][0]['id'])}.tmp").write_text('{"id": ')
    complete_tmp = leave_tmp(run_dir, data["cases"][5], cut=False)
    run = load_run(rebuild(run_dir))
    assert run.finished == 3
    assert [item["file"] for item in run.lost] == [f"cases/{complete_tmp.name}"]
    assert "complete JSON, but not confirmed by the rename" in run.lost[0]["reason"]
