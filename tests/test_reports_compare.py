"""`python -m reports compare`: configuration vs behaviour, exit codes 0/1/2, the HTML diff."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from reports_sample import (
    case_by_id,
    clone,
    ended,
    external_resources,
    make_run,
    set_fingerprint,
    unbalanced_tags,
    write_evidence,
    write_run,
)

from reports.__main__ import main

REPO = Path(__file__).resolve().parent.parent
UNREAD = "close/unread-data[ipv4]"


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reports", "compare", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, check=False)


def compare(capsys: pytest.CaptureFixture[str], *dirs: Path, output: Path | None = None) -> tuple[int, str]:
    argv = ["compare", *map(str, dirs)] + (["-o", str(output)] if output else [])
    code = main(argv)
    return code, capsys.readouterr().out


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write_run(tmp_path / "a", make_run(seed=1))


def test_same_behaviour_despite_timing_noise_exits_0(tmp_path: Path, base: Path) -> None:
    other = make_run(seed=2)  # other jitter: every time differs, the behaviour does not
    assert case_by_id(other, UNREAD)["segments"][1]["t"] != case_by_id(make_run(seed=1), UNREAD)["segments"][1]["t"]
    proc = run_cli(base, write_run(tmp_path / "b", other))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: configuration identical; behaviour identical (11 cases in every run)" in proc.stdout
    assert proc.stderr == ""


def test_configuration_only_difference_exits_0_and_says_both(tmp_path: Path, base: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(seed=3, label="next-kernel", kernel_release="6.19.2-fc-v700")
    other["run"]["congestion_control"] = "cubic"
    other["run"]["sysctls"]["net.ipv4.tcp_max_orphans"]["value"] = "16384"
    other["run"]["sysctls"]["net.ipv4.tcp_rto_min_us"] = {"value": "200000", "default": "200000", "given": False}
    del other["run"]["sysctls"]["net.ipv4.tcp_retries2"]
    code, out = compare(capsys, base, write_run(tmp_path / "b", other))
    assert code == 0
    config, behaviour = out.split("\nbehaviour:\n")
    assert "kernel release" in config and "6.19.2-fc-v700" in config
    assert "congestion control" in config and "cubic" in config
    assert "net.ipv4.tcp_max_orphans" in config and "16384" in config
    present_only = config.split("sysctls present in only some runs:")[1]
    assert "net.ipv4.tcp_rto_min_us" in present_only and "net.ipv4.tcp_retries2" in present_only
    assert "(absent)" in present_only
    assert "same outcome and fingerprint" in behaviour
    assert "verdict: configuration differs; behaviour identical" in out


def test_behaviour_change_exits_1_and_lists_the_case(tmp_path: Path, base: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(seed=1, label="tuned")
    case = case_by_id(other, UNREAD)
    case["segments"][-1]["flags"] = "FA"  # FIN instead of RST
    case["outcome"] = "failed"
    set_fingerprint(case)
    code, out = compare(capsys, base, write_run(tmp_path / "b", other))
    assert code == 1
    behaviour = out.split("\nbehaviour:\n")[1]
    assert UNREAD in behaviour and "outcome, fingerprint" in behaviour
    assert "-segments client>S server>SA client>PA+512 server>RA" in behaviour
    assert "+segments client>S server>SA client>PA+512 server>FA" in behaviour
    assert "configuration identical; behaviour differs: 1 of 11 common cases differ" in out


def test_fingerprint_change_with_same_outcome_exits_1(tmp_path: Path, base: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(seed=1)
    case = case_by_id(other, "orphan/fin-wait2-timeout[ipv4]")
    case["durations"][0].update(measured_s=2.5, ok=False)
    set_fingerprint(case)
    code, out = compare(capsys, base, write_run(tmp_path / "b", other))
    assert code == 1
    assert "orphan/fin-wait2-timeout[ipv4]" in out and "differs in" in out
    assert "+duration orphan FIN_WAIT2 lifetime 2.5" in out


def test_case_present_in_one_run_only_exits_1(tmp_path: Path, base: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(seed=1)
    other["cases"] = [c for c in other["cases"] if c["id"] != UNREAD]
    code, out = compare(capsys, base, write_run(tmp_path / "b", other))
    assert code == 1
    only = out.split("cases present in only some runs:")[1]
    assert UNREAD in only and "—" in only
    assert "1 case missing from some runs" in out
    code, out = compare(capsys, tmp_path / "b", base)
    assert code == 1


def test_missing_fingerprint_falls_back_to_outcome_and_says_so(tmp_path: Path, base: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(seed=1)
    case = case_by_id(other, UNREAD)
    case["fingerprint"] = case["fingerprint_text"] = None
    case["segments"][-1]["flags"] = "FA"  # not visible without a fingerprint
    code, out = compare(capsys, base, write_run(tmp_path / "b", other))
    assert code == 0
    assert f"1 case lacks a fingerprint in some run, so compared by outcome only: {UNREAD}" in out
    case["outcome"] = "failed"
    code, out = compare(capsys, base, write_run(tmp_path / "c", other))
    assert code == 1


@pytest.mark.parametrize("problem", ["missing dir", "no results.json", "corrupt json", "other schema", "not object"])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, base: Path, problem: str) -> None:
    bad = tmp_path / "bad"
    if problem != "missing dir":
        bad.mkdir()
    if problem == "corrupt json":
        (bad / "results.json").write_text('{"schema": "sockconf/results/1", "run": {')
    elif problem == "other schema":
        (bad / "results.json").write_text(json.dumps({**make_run(), "schema": "sockconf/results/3"}))
    elif problem == "not object":
        (bad / "results.json").write_text("[1, 2]")
    proc = run_cli(base, bad)
    assert proc.returncode == 2
    assert proc.stdout == ""  # nothing half-printed before the error
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("reports: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and str(bad) in proc.stderr


def test_one_run_is_bad_usage(base: Path) -> None:
    proc = run_cli(base)
    assert proc.returncode == 2 and "at least two" in proc.stderr


def test_html_diff_shows_ladders_side_by_side(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(seed=2, sysctl_overrides={"net.ipv4.tcp_fin_timeout": "5"})
    case = case_by_id(other, UNREAD)
    case["segments"][-1]["flags"] = "FA"
    set_fingerprint(case)
    diff = tmp_path / "diff.html"
    code, out = compare(capsys, base, write_run(tmp_path / "b", other), output=diff)
    assert code == 1 and f"diff: {diff}" in out
    html = diff.read_text()
    assert external_resources(html) == [] and unbalanced_tags(html) == []
    section = html.split('<details class="case" id="c-close-unread-data-ipv4"', 1)[1].split("</details>", 1)[0]
    assert section.count('<svg class="ladder"') == 2 and 'class="cols side"' in section
    assert "configuration differs; behaviour differs" in html and "tcp_fin_timeout" in html
    assert "Cases × runs" not in html  # only for more than two runs


def test_three_runs_get_a_matrix(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = write_run(tmp_path / "b", make_run(seed=2))
    third = make_run(seed=3)
    third["cases"].pop()
    c = write_run(tmp_path / "c", third)
    diff = tmp_path / "diff.html"
    code, out = compare(capsys, base, b, c, output=diff)
    assert code == 1
    assert "  A  " in out and "  C  " in out
    html = diff.read_text()
    matrix = html.split("Cases × runs", 1)[1].split("</table>", 1)[0]
    assert matrix.count("<tr>") == 1 + 11 and "absent" in matrix  # header + one row per case


def test_identical_runs_html_diff_says_so(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    diff = tmp_path / "diff.html"
    code, _ = compare(capsys, base, write_run(tmp_path / "b", make_run(seed=5)), output=diff)
    assert code == 0
    html = diff.read_text()
    assert "configuration identical; behaviour identical" in html and '<svg class="ladder"' not in html


def test_complete_vs_interrupted_compares_only_cases_both_finished(tmp_path: Path, base: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = make_run(seed=2)
    interrupted = write_run(tmp_path / "b", ended(data, 6))  # 5 of the 11 cases never ran
    unfinished = [c["id"] for c in data["cases"][6:]]
    diff = tmp_path / "diff.html"
    code, out = compare(capsys, base, interrupted, output=diff)
    assert code == 0  # the cases both runs finished behave the same
    runs, rest = out.split("\nconfiguration:\n")
    assert ("warning: run B (default) INTERRUPTED by SIGINT after 6 of 11 selected cases; only the cases every run "
            "finished are compared\n") in runs
    assert "warning: run A" not in runs and "interrupted (SIGINT)" in runs
    behaviour = rest.split("\nbehaviour:\n")[1]
    assert "all 6 cases finished in every run have the same outcome and fingerprint" in behaviour
    assert "cases present in only some runs" not in behaviour  # not a behaviour difference
    listed = behaviour.split("not compared: 5 cases (5 not finished in run B):\n")[1].split("\nverdict:")[0]
    for cid in unfinished:
        assert re.search(re.escape(cid) + r" .*— +not finished in run B\n", listed), cid
    assert ("\nverdict: partial comparison: configuration identical; behaviour identical (6 cases finished in every "
            "run); partial: 5 cases not compared\n") in out
    html = diff.read_text()
    assert external_resources(html) == [] and unbalanced_tags(html) == []
    assert "warning: run B (default) INTERRUPTED by SIGINT after 6 of 11 selected cases" in html
    assert "partial: 5 cases not compared" in html and "<b>Not compared</b>: 5 cases" in html
    code, out = compare(capsys, interrupted, base)  # either order
    assert code == 0 and "partial: 5 cases not compared" in out and "warning: run A (default) INTERRUPTED" in out


def test_partial_comparison_still_exits_1_when_common_cases_differ(tmp_path: Path, base: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = ended(make_run(seed=2), 6)
    case = case_by_id(data, UNREAD)
    case["segments"][-1]["flags"] = "FA"
    set_fingerprint(case)
    code, out = compare(capsys, base, write_run(tmp_path / "b", data))
    assert code == 1
    assert ("verdict: partial comparison: configuration identical; behaviour differs: 1 of 6 common cases differ; "
            "partial: 5 cases not compared") in out


def test_a_case_missing_from_the_complete_run_is_still_a_difference(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    full = make_run(seed=1)
    complete = clone(full)
    complete["cases"] = [c for c in complete["cases"] if c["id"] != UNREAD]  # a complete run without it
    a = write_run(tmp_path / "a", complete)
    b = write_run(tmp_path / "b", ended(full, 6))  # finished it
    code, out = compare(capsys, a, b)
    assert code == 1
    assert UNREAD in out.split("cases present in only some runs:")[1].split("not compared")[0]
    assert "1 case missing from some runs" in out and "partial comparison" in out


def test_a_case_whose_evidence_was_lost_is_not_compared(tmp_path: Path, base: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    lost = [{"case": UNREAD, "reason": "truncated JSON at line 3"}]
    data = ended(make_run(seed=2), 11, status="incomplete", signal=None, lost=lost)
    data["cases"] = [c for c in data["cases"] if c["id"] != UNREAD]
    data["run"]["finished"] = 10
    code, out = compare(capsys, base, write_run(tmp_path / "b", data))
    assert code == 0
    assert "warning: run B (default) INCOMPLETE: rebuilt after the run was killed; 10 of 11 cases finished" in out
    assert re.search(re.escape(UNREAD) + r" .*evidence lost in run B", out)
    assert "1 not finished in run B, 1 of them with evidence lost" in out
    assert out.rstrip().endswith("partial: 1 case not compared")


def test_a_killed_run_without_results_json_is_compared_from_its_case_files(
        tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    killed = write_evidence(tmp_path / "killed", make_run(seed=2), finished=4)
    code, out = compare(capsys, base, killed)
    assert code == 0
    assert "warning: run B (default) INCOMPLETE: rebuilt after the run was killed; 4 of 11 cases finished" in out
    assert "rebuilt in memory from run.json and cases/" in out
    assert "partial: 7 cases not compared" in out
    assert not (killed / "results.json").exists()  # compare only reads


def test_two_complete_runs_get_no_warning(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = compare(capsys, base, write_run(tmp_path / "b", ended(make_run(seed=2), 11, status="complete",
                                                                           signal=None)))
    assert code == 0 and "warning" not in out and "partial" not in out
