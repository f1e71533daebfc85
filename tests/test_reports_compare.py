"""`python -m reports compare`: configuration vs behaviour, exit codes 0/1/2, the HTML diff."""

from __future__ import annotations

import io
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
    selfcheck,
    set_fingerprint,
    set_skipped,
    to_schema1,
    unbalanced_tags,
    write_evidence,
    write_run,
)

from reports.__main__ import main
from reports.compare import explain, run_compare
from reports.html import render_run
from reports.load import load_run

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
    assert ("verdict: configuration identical; behaviour identical (10 cases in every run); 1 case skipped in every "
            "run: not compared\n") in proc.stdout  # the skipped case is never counted as identical
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
    said = behaviour.split(f"    {UNREAD}: A → B\n")[1].split("  1 case skipped")[0]
    assert said == "      outcome passed → failed\n      server sent FA instead of RA\n"  # in words, not raw lines
    assert "configuration identical; behaviour differs: 1 of 10 common cases differ" in out


def test_fingerprint_change_with_same_outcome_exits_1(tmp_path: Path, base: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(seed=1)
    case = case_by_id(other, "orphan/fin-wait2-timeout[ipv4]")
    case["durations"][0].update(measured_s=2.5, ok=False)
    set_fingerprint(case)
    code, out = compare(capsys, base, write_run(tmp_path / "b", other))
    assert code == 1
    assert "orphan/fin-wait2-timeout[ipv4]" in out and "differs in" in out
    assert "      orphan FIN_WAIT2 lifetime 1 s → 2.5 s measured (expected 1 s)\n" in out


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
    assert "<h3>what changed, A → B</h3><ul class=\"changes\"><li>server sent FA instead of RA</li></ul>" in section
    summary = html.split("<th>what changed</th>", 1)[1].split("</table>", 1)[0]
    assert "server sent FA instead of RA" in summary


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


# configuration: harness, fingerprint version, profiles ------------------------------------------------------


def test_harness_commit_and_profiles_are_configuration(tmp_path: Path, base: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(seed=2, profiles=["short-timers", "server-tuned"],
                     harness={"commit": "9e8d7c6b5a4f3e2d1c0b", "dirty": True, "fingerprint_version": 2})
    code, out = compare(capsys, base, write_run(tmp_path / "b", other))
    assert code == 0  # a harness or profile difference alone is configuration
    config = out.split("\nconfiguration:\n")[1].split("\nbehaviour:\n")[0]
    assert re.search(r"harness commit +3f1c3bb0d6a5 +9e8d7c6b5a4f \(dirty\)\n", config), config
    assert re.search(r"profiles +\(none\) +short-timers, server-tuned\n", config), config
    assert "fingerprint version" not in config  # equal: not a row
    assert "verdict: configuration differs; behaviour identical" in out


def test_identical_configuration_names_the_harness(tmp_path: Path, base: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out = compare(capsys, base, write_run(tmp_path / "b", make_run(seed=2)))
    assert code == 0
    assert "  identical (kernel, congestion control, harness, profiles, tuning, sysctls in force)\n" in out


def test_one_side_tuning_shows_both_namespaces(tmp_path: Path, base: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(seed=2, sysctl_overrides={"server:net.ipv4.tcp_fin_timeout": "5"})
    assert other["run"]["configuration"]["server"] == {"net.ipv4.tcp_fin_timeout": "5"}
    code, out = compare(capsys, base, write_run(tmp_path / "b", other))
    assert code == 0
    assert "server:net.ipv4.tcp_fin_timeout=5" in out
    assert re.search(r"net\.ipv4\.tcp_fin_timeout +60 \(given\) +client 60, server 5 \(given\)\n", out), out


@pytest.mark.parametrize("older", ["schema 1", "version 1 recorded", "nothing recorded"])
def test_fingerprints_of_different_versions_are_not_compared(tmp_path: Path, base: Path, older: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = make_run(seed=2)  # the same behaviour: only the fingerprint version differs
    if older == "schema 1":
        data = to_schema1(data)
    elif older == "version 1 recorded":
        data["run"]["harness"]["fingerprint_version"] = 1
        for case in data["cases"]:
            case["fingerprint_data"]["version"] = 1
    else:
        del data["run"]["harness"]
        for case in data["cases"]:
            del case["fingerprint_data"]
    old = write_run(tmp_path / "old", data)
    diff = tmp_path / "diff.html"
    code, out = compare(capsys, old, base, output=diff)
    assert code == 1  # never "identical" across versions
    assert re.search(r"fingerprint version +v1 +v2\n", out), out
    assert "not compared: the runs' fingerprints come from different versions of the algorithm (A v1, B v2)" in out
    assert out.endswith("\nverdict: configuration differs; fingerprints of different versions (v1 vs v2): behaviour "
                        f"not compared\ndiff: {diff}\n")
    assert "behaviour identical" not in out and "cases whose outcome" not in out
    html = diff.read_text()
    assert "fingerprints of different versions (v1 vs v2): behaviour not compared" in html
    assert unbalanced_tags(html) == []
    proc = run_cli(base, old)
    assert proc.returncode == 1 and "(v2 vs v1): behaviour not compared" in proc.stdout


def test_two_schema1_runs_are_both_version_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path / "a", to_schema1(make_run(seed=1)))
    b = write_run(tmp_path / "b", to_schema1(make_run(seed=2)))
    code, out = compare(capsys, a, b)
    assert code == 0 and "harness commit" not in out  # "(not recorded)" in both
    assert "behaviour identical (10 cases in every run)" in out


# what changed, in words -----------------------------------------------------------------------------------


def _fp(**parts: object) -> dict:
    data = {"version": 2, "outcome": "passed", "segments": {}, "states": {}, "calls": {}, "checks": [],
            "observed": []}
    return data | parts


def _case(outcome: str = "passed", durations: list | None = None, **parts: object) -> dict:
    return {"outcome": outcome, "message": None, "durations": durations or [], "fingerprint": "x",
            "fingerprint_text": "", "fingerprint_data": _fp(**parts)}


@pytest.mark.parametrize(("a", "b", "said"), [
    ({"1": ["c>FA", "s>A(fin)", "s>FA", "c>A(fin)"]}, {"1": ["c>RA"]},
     ["client sent RA instead of FA A(fin)", "server did not send A(fin) FA in B"]),
    ({"1": ["c>data+512", "s>RA"]}, {"1": ["c>data+512", "s>FA"]}, ["server sent FA instead of RA"]),
    ({"1": ["c>FA", "s>A(fin)"]}, {"1": ["c>FA", "s>A(fin)", "s>A(fin again)"]},
     ["server also sent A(fin again) in B"]),
    ({"1": ["c>FA", "s>A(dup)", "c>R"]}, {"1": ["c>FA", "c>R"]}, ["server did not send A(dup) in B"]),
    ({"1": ["c>FA(resent 3)"]}, {"1": ["c>FA(resent +)"]},
     ["client resent FA until the scenario ended instead of 3 times"]),
    ({"1": ["c>FA"]}, {"1": ["c>FA(resent 1)"]}, ["client resent FA once instead of never"]),
    ({"1": ["c>FA", "s>FA"]}, {"1": ["s>FA", "c>FA"]},
     ["the same segments in another order: server FA, client FA instead of client FA, server FA"]),
    ({"1": ["c>FA"], "2": ["c>S", "s>SA"]}, {"1": ["c>FA"], "2": ["c>S", "s>RA"]},
     ["connection 2: server sent RA instead of SA"]),
])
def test_segment_changes_in_words(a: dict, b: dict, said: list[str]) -> None:
    sentences, explained = explain(_case(segments=a), _case(segments=b), "B")
    assert sentences == said and explained


@pytest.mark.parametrize(("a", "b", "said"), [
    (["ESTABLISHED", "FIN_WAIT2/timewait", "TIME_WAIT/timewait"], ["ESTABLISHED", "FIN_WAIT2/timewait", "CLOSED"],
     "client: FIN_WAIT2 → gone instead of → TIME_WAIT"),
    (["FIN_WAIT1/retrans", "CLOSING/retrans", "TIME_WAIT/timewait"], ["FIN_WAIT1/retrans", "TIME_WAIT/timewait"],
     "client: FIN_WAIT1 → TIME_WAIT instead of → CLOSING → TIME_WAIT"),
    (["FIN_WAIT2/timewait", "CLOSED"], ["FIN_WAIT2/timewait"], "client: stays FIN_WAIT2 instead of → gone"),
    (["FIN_WAIT2/timewait"], ["FIN_WAIT2/keepalive"], "client: FIN_WAIT2/keepalive instead of FIN_WAIT2/timewait"),
    (["TIME_WAIT/timewait"], ["CLOSED"], "client: gone instead of TIME_WAIT"),
])
def test_state_path_changes_in_words(a: list[str], b: list[str], said: str) -> None:
    assert explain(_case(states={"client": a}), _case(states={"client": b}))[0] == [said]


def test_calls_checks_observations_durations_and_outcome_in_words() -> None:
    lifetime = {"name": "orphan FIN_WAIT2 lifetime", "measured_s": 60.3, "expected_s": 60.0, "low_s": 59.0,
                "high_s": 61.0, "ok": True, "source": "sock_diag"}
    a = _case(calls={"server": ["close=ok", "recv=ok"]},
              checks=["segment client [FA] ok", "duration orphan FIN_WAIT2 lifetime ~60s ok",
                      "value nstat client TcpExtTCPAbortOnClose delta ok", "unexpected none"],
              observed=["close_with_unread_data"], durations=[lifetime])
    b = _case("failed", calls={"server": ["close=ok", "recv=ECONNRESET"], "client": ["shutdown=ok"]},
              checks=["segment client [FA] FAIL", "duration orphan FIN_WAIT2 lifetime ~5s ok",
                      "value nstat client TcpExtTCPAbortOnClose delta ok", "unexpected client [RA] seq 1"],
              observed=[], durations=[lifetime | {"measured_s": 5.02, "expected_s": 5.0, "low_s": 4.9,
                                                  "high_s": 5.2}])
    sentences, explained = explain(a, b, "B")
    assert explained and sentences == [
        "outcome passed → failed",
        "orphan FIN_WAIT2 lifetime 60 s → 5 s",  # the duration check itself did not change its verdict
        "client also called shutdown() in B: ok",
        "server.recv(): ECONNRESET instead of ok",
        "check “segment client [FA]”: ok → FAIL",
        "check “no unexpected segment”: ok → FAIL",
        "observation close_with_unread_data not made in B",
    ]
    outside = lifetime | {"measured_s": 75.0, "ok": False}
    assert explain(_case(durations=[lifetime]), _case(durations=[outside]))[0] == [
        "orphan FIN_WAIT2 lifetime 60 s → 75 s measured (expected 60 s)"]
    assert explain(_case(durations=[lifetime]), _case(), "C")[0] == ["C did not measure the orphan FIN_WAIT2 lifetime"]
    spans = lifetime | {"measured_s": 60.5, "measured_low_s": 59.9, "measured_high_s": 61.1}  # meets its window
    assert explain(_case(durations=[lifetime]), _case(durations=[spans]))[0] == []
    late = lifetime | {"measured_s": 81.0, "measured_low_s": 77.0, "measured_high_s": 85.0, "ok": False}
    assert explain(_case(durations=[lifetime]), _case(durations=[late]))[0] == [
        "orphan FIN_WAIT2 lifetime 60 s → 77 s measured (expected 60 s)"]  # the end the evidence proves at least
    probe = {"name": "FIN resend", "measured_s": 0.41, "expected_s": 0.41, "low_s": 0.39, "high_s": 0.5, "ok": True,
             "basis": "loss probe: 2·srtt + rto_min 0.4 s, at most the RTO"}
    assert explain(_case(durations=[probe]), _case(durations=[probe | {"expected_s": 0.4}]))[0] == []
    assert explain(_case(durations=[probe]), _case(durations=[probe | {"basis": "1.0×RTO (rto_min 0.4 s)"}]))[0] == [
        "FIN resend loss probe: 2·srtt + rto_min 0.4 s, at most the RTO → 1.0×RTO (rto_min 0.4 s)"]


def test_many_changes_are_cut_short() -> None:
    checks_a = [f"state client S{i} ok" for i in range(8)]
    checks_b = [f"state client S{i} FAIL" for i in range(8)]
    sentences, _ = explain(_case(checks=checks_a), _case(checks=checks_b))
    assert sentences[-1] == "… and 5 more checks changed" and len(sentences) == 4


def test_raw_fingerprint_lines_when_no_sentence_explains(tmp_path: Path, base: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(seed=1)
    case = case_by_id(other, UNREAD)
    case["segments"][-1]["flags"] = "FA"
    set_fingerprint(case)
    del case["fingerprint_data"]  # a run whose cases carry no structured fingerprint: nothing to say in words
    diff = tmp_path / "diff.html"
    code, out = compare(capsys, base, write_run(tmp_path / "b", other), output=diff)
    assert code == 1
    said = out.split(f"    {UNREAD}: A → B\n")[1]
    assert said.startswith("      fingerprint lines (A -, B +):\n"
                           "        -segments client>S server>SA client>PA+512 server>RA\n"
                           "        +segments client>S server>SA client>PA+512 server>FA\n"), said
    assert "fingerprint lines (A -, B +)" in diff.read_text()
    case["outcome"] = "failed"  # the outcome's sentence does not explain the fingerprint: the raw lines stay
    code, out = compare(capsys, base, write_run(tmp_path / "c", other))
    said = out.split(f"    {UNREAD}: A → B\n")[1]
    assert said.startswith("      outcome passed → failed\n      fingerprint lines (A -, B +):\n"), said


def test_three_runs_say_what_changed_against_the_first(tmp_path: Path, base: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    b = write_run(tmp_path / "b", make_run(seed=2))
    third = make_run(seed=3)
    case = case_by_id(third, UNREAD)
    case["segments"][-1]["flags"] = "FA"
    set_fingerprint(case)
    code, out = compare(capsys, base, b, write_run(tmp_path / "c", third))
    assert code == 1
    assert f"    {UNREAD}: A → C\n      server sent FA instead of RA\n" in out and "A → B" not in out


# skips -----------------------------------------------------------------------------------------------------


def test_skipped_in_every_run_is_counted_apart(tmp_path: Path, base: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    a, b = make_run(seed=1), make_run(seed=2)
    for data in (a, b):
        set_skipped(case_by_id(data, UNREAD), "not testable on this kernel: this case needs a sysctl")
    code, out = compare(capsys, write_run(tmp_path / "a2", a), write_run(tmp_path / "b", b))
    assert code == 0
    assert (f"  2 cases skipped in every run: not compared ({UNREAD}, timewait/reuse-port[ipv4])\n") in out
    assert "behaviour identical (9 cases in every run); 2 cases skipped in every run: not compared\n" in out


@pytest.mark.parametrize("message", [
    "Skipped: not testable on this kernel: net.ipv4.tcp_rto_min_us absent on this kernel",
    "TIME_WAIT is never entered with tcp_max_tw_buckets=0",  # names the tuned sysctl
    "the run's tuning leaves nothing to check here",
])
def test_skipped_by_configuration_is_listed_apart_and_exits_0(tmp_path: Path, base: Path, message: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    tuned = make_run(seed=2, label="tuned", sysctl_overrides={"net.ipv4.tcp_max_tw_buckets": "0"})
    set_skipped(case_by_id(tuned, UNREAD), message)
    diff = tmp_path / "diff.html"
    code, out = compare(capsys, base, write_run(tmp_path / "b", tuned), output=diff)
    assert code == 0, out
    behaviour = out.split("\nbehaviour:\n")[1]
    listed = behaviour.split("  skipped by configuration (not a behaviour difference):\n")[1]
    assert re.search(re.escape(UNREAD) + r" +passed \w+ +skipped +skipped in B \(configuration\)\n", listed), listed
    assert f"    {UNREAD} in B: {message.removeprefix('Skipped: ')}\n" in listed
    assert "cases whose outcome" not in behaviour
    assert out.endswith("\nverdict: configuration differs; behaviour identical (9 cases in every run); 1 case skipped "
                        f"in every run: not compared; 1 case skipped in B (configuration)\ndiff: {diff}\n")
    html = diff.read_text()
    assert "<b>Skipped by configuration</b>" in html and "1 case skipped in B (configuration)" in html
    assert unbalanced_tags(html) == []


def test_skipped_for_another_reason_is_a_difference(tmp_path: Path, base: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    other = make_run(seed=2)  # no tuning mentioned, not "not testable"
    set_skipped(case_by_id(other, UNREAD), "Skipped: the peer namespace was busy")
    code, out = compare(capsys, base, write_run(tmp_path / "b", other))
    assert code == 1
    assert f"    {UNREAD}: A → B\n      outcome passed → skipped (the peer namespace was busy)\n" in out
    assert "skipped by configuration" not in out
    assert "behaviour differs: 1 of 10 common cases differ" in out


def test_runs_that_ran_a_configuration_skipped_case_are_still_compared(tmp_path: Path, base: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    b = make_run(seed=2)
    set_skipped(case_by_id(b, UNREAD), "not testable on this kernel: needs 6.11")
    c = make_run(seed=3)
    case_by_id(c, UNREAD)["segments"][-1]["flags"] = "FA"
    set_fingerprint(case_by_id(c, UNREAD))
    code, out = compare(capsys, base, write_run(tmp_path / "b", b), write_run(tmp_path / "c", c))
    assert code == 1  # A and C ran it and differ
    assert re.search(re.escape(UNREAD) + r" .*fingerprint, skipped in B \(configuration\)\n", out), out
    assert f"    {UNREAD}: A → C\n      server sent FA instead of RA\n" in out
    code, out = compare(capsys, tmp_path / "b", base, tmp_path / "c")  # the first run skipped it: said from B's
    assert code == 1 and f"    {UNREAD}: B → C\n      server sent FA instead of RA\n" in out
    assert "outcome skipped" not in out


# speed and the self-check --------------------------------------------------------------------------------------


def test_compare_of_two_300_case_runs_names_what_changed(tmp_path: Path) -> None:
    """How long it takes is bench/bench_reports.py's (target ≤ 1 s): a timed assert fails on a loaded CI machine."""
    a = write_run(tmp_path / "a", make_run(300, seed=1), pcaps=False)
    tuned = make_run(300, seed=2, label="tuned", sysctl_overrides={"net.ipv4.tcp_fin_timeout": "5"})
    for case in tuned["cases"][::10]:
        if case["segments"]:
            case["segments"][-1]["flags"] = "R"
            set_fingerprint(case)
    b = write_run(tmp_path / "b", tuned, pcaps=False)
    out = io.StringIO()
    code = run_compare([a, b], str(tmp_path / "diff.html"), out=out)
    assert code == 1 and "what changed:" in out.getvalue()
    assert (tmp_path / "diff.html").stat().st_size > 0


@pytest.mark.parametrize("verdict", ["pass", "fail"])
def test_run_report_shows_the_latest_selfcheck(tmp_path: Path, verdict: str) -> None:
    data = make_run(seed=1)
    data["run"]["selfcheck"] = selfcheck(verdict)
    html = render_run(load_run(write_run(tmp_path / "a", data)))
    assert external_resources(html) == [] and unbalanced_tags(html) == []
    section = html.split('<h2 id="selfcheck">Self-check (proof of sensitivity)</h2>', 1)[1].split("<h2", 1)[0]
    assert "2026-11-24T09:30:00+00:00" in section
    assert section.count("<tr>") == 1 + 3  # header + one row per tuning
    assert "net.ipv4.tcp_max_tw_buckets=0" in section and "A/A (no tuning)" in section
    if verdict == "fail":
        assert '<span class="badge o-failed">fail</span>' in section and ">FAIL</span>" in section
        assert "1 failed" in section and "close/unread-data[ipv4]" in section
    else:
        assert '<span class="badge o-passed">pass</span>' in section and "FAIL" not in section


def test_run_report_without_selfcheck_has_no_such_section(tmp_path: Path) -> None:
    html = render_run(load_run(write_run(tmp_path / "a", make_run(seed=1))))
    assert "Self-check" not in html
