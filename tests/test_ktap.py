"""results.ktap: KTAP version 1 (Documentation/dev-tools/ktap.rst) for kselftest-style runners, parsed back here by
a reader written from the specification, not from reports/ktap.py."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from reports_sample import case_by_id, clone, ended, make_run, set_fingerprint, truncate_case, write_evidence, write_run

from reports.__main__ import main
from reports.ktap import render_ktap
from reports.load import load_run

REPO = Path(__file__).resolve().parent.parent
RESULT = re.compile(r"^(ok|not ok) ([0-9]+)(?: ([^#]*?))?(?: # ?(.*))?$")
PLAN = re.compile(r"^1\.\.([0-9]+)$")
TOTALS = re.compile(r"^# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) error:(\d+)$")


@dataclass
class Result:
    ok: bool
    number: int
    description: str
    directive: str  # SKIP / ERROR / "" (the keyword)
    data: str  # what follows the directive (or the diagnostic data after #)
    diagnostics: list[str] = field(default_factory=list)  # the "# ..." lines directly before the result line


@dataclass
class Ktap:
    header: list[str]
    plan: int
    results: list[Result]
    totals: dict[str, int]


def parse(text: str) -> Ktap:
    """A strict KTAP version 1 reader (no nesting): version line first, one plan before the results, result
    lines numbered from 1, descriptions without ``#``, every other line a diagnostic; kselftest's totals last."""
    assert text.endswith("\n"), "ends with a newline"
    lines = text.split("\n")[:-1]
    assert lines[0] == "KTAP version 1", lines[0]
    header: list[str] = []
    plan: int | None = None
    results: list[Result] = []
    pending: list[str] = []
    totals: dict[str, int] = {}
    for i, line in enumerate(lines[1:], 2):
        if m := PLAN.match(line):
            assert plan is None, f"line {i}: a second plan"
            assert not results, f"line {i}: the plan comes before the results"
            plan = int(m.group(1))
            header, pending = pending, []
        elif m := RESULT.match(line):
            assert plan is not None, f"line {i}: a result before the plan"
            assert int(m.group(2)) == len(results) + 1, f"line {i}: numbered {m.group(2)}, expected {len(results) + 1}"
            description = m.group(3) or ""
            assert "#" not in description
            directive, _, data = (m.group(4) or "").partition(" ")
            if directive not in ("SKIP", "ERROR", "XFAIL", "TIMEOUT", "TODO"):
                directive, data = "", m.group(4) or ""
            results.append(Result(m.group(1) == "ok", int(m.group(2)), description, directive, data, pending))
            pending = []
        elif line.startswith("#"):
            if m := TOTALS.match(line):
                assert i == len(lines), "the totals line is the last one"
                totals = dict(zip(("pass", "fail", "xfail", "xpass", "skip", "error"), map(int, m.groups()),
                                  strict=True))
            else:
                pending.append(line[2:] if line.startswith("# ") else line[1:])
        else:
            raise AssertionError(f"line {i}: neither a plan, a result nor a diagnostic: {line!r}")
    assert plan is not None, "no plan line"
    assert plan == len(results), f"plan 1..{plan} but {len(results)} results"
    assert totals, "no totals line"
    return Ktap(header, plan, results, totals)


def ktap_of(tmp_path: Path, data: dict, name: str = "run") -> Ktap:
    return parse(render_ktap(load_run(write_run(tmp_path / name, data))))


def test_every_case_is_one_result_line_with_its_outcome(tmp_path: Path) -> None:
    data = make_run(seed=1)
    k = ktap_of(tmp_path, data)
    by_id = {c["id"]: c for c in data["cases"]}
    assert [r.description for r in k.results] == sorted(by_id)
    for r in k.results:
        case = by_id[r.description]
        outcome = case["outcome"]
        assert r.ok == (outcome in ("passed", "skipped", "xfailed")), (r, outcome)
        if outcome == "passed":
            assert (r.directive, r.data, r.diagnostics) == ("", "", [])
        elif outcome == "skipped":
            assert r.directive == "SKIP" and r.data == case["message"]
        elif outcome == "xfailed":
            assert r.directive == "SKIP" and r.data == f"xfail: {case['message']}"
        elif outcome == "failed":
            assert r.directive == ""
            first = str(case["message"]).strip().splitlines()[0]
            assert r.diagnostics[0] == first  # the first lines of the failure, just before its result line
            assert any(d.startswith("checks: ") for d in r.diagnostics)
            assert any(d.startswith("✗ ") for d in r.diagnostics)  # the failed check
    counts = {o: sum(c["outcome"] == o for c in data["cases"]) for o in data["totals"]}
    assert k.totals == {"pass": counts["passed"], "fail": counts["failed"], "xfail": counts["xfailed"],
                        "xpass": counts["xpassed"], "skip": counts["skipped"], "error": counts["error"]}
    assert sum(k.totals.values()) == k.plan


def test_header_says_kernel_label_execution_configuration_and_status(tmp_path: Path) -> None:
    data = make_run(seed=1, label="tuned", kernel_release="6.1.0-31-cloud-amd64", profiles=["short-fin-timeout"],
                    sysctl_overrides={"net.ipv4.tcp_fin_timeout": "5"})
    data["run"]["execution"] = {"guest": True, "accel": "tcg", "emulated": True, "timing_factor": 8.0}
    header = ktap_of(tmp_path, data).header
    assert header[0] == f"sockconf run {data['run']['id']}"
    assert "kernel: 6.1.0-31-cloud-amd64 (#1 SMP PREEMPT_DYNAMIC Tue Nov 18 10:00:00 UTC 2026)" in header
    assert "label: tuned" in header
    assert "execution: guest, tcg (emulated; timing windows x8)" in header
    assert "profiles: short-fin-timeout; tuning: net.ipv4.tcp_fin_timeout=5" in header
    assert "run status: complete" in header
    host = clone(data)
    host["run"]["execution"] = {"guest": False, "accel": "host", "emulated": False, "timing_factor": 1.0}
    assert "execution: host" in ktap_of(tmp_path, host, "host").header
    del host["run"]["execution"]
    assert "execution: not recorded" in ktap_of(tmp_path, host, "old").header


def test_case_ids_and_numbers_are_stable_across_kernels(tmp_path: Path) -> None:
    a = make_run(seed=1, kernel_release="6.18.44-fc-v657")
    b = make_run(seed=7, kernel_release="6.1.0-31-cloud-amd64")
    b["cases"].reverse()  # whatever order the run wrote them in
    ka, kb = ktap_of(tmp_path, a, "a"), ktap_of(tmp_path, b, "b")
    assert [(r.number, r.description) for r in ka.results] == [(r.number, r.description) for r in kb.results]


def test_error_xpassed_and_awkward_messages(tmp_path: Path) -> None:
    data = make_run(seed=1)
    err = case_by_id(data, "close/unread-data[ipv4]")
    err.update(outcome="error", message="fixture 'lab' raised\nOSError: [Errno 1] Operation not permitted")
    xpass = case_by_id(data, "close/fin-handshake[ipv6]")
    xpass.update(outcome="xpassed", message="known: 6.x answers with RST")
    skip = case_by_id(data, "timewait/reuse-port[ipv4]")
    skip["message"] = "Skipped: not testable on this kernel: needs\n  net.ipv4.tcp_tw_reuse # of 2"
    weird = case_by_id(data, "close/fin-handshake[ipv4]")
    weird["id"] = "close/fin-handshake[ipv4-#1]"
    for case in (err, xpass):
        set_fingerprint(case)
    k = ktap_of(tmp_path, data)
    r = {x.description: x for x in k.results}
    assert not r["close/unread-data[ipv4]"].ok
    assert r["close/unread-data[ipv4]"].directive == "ERROR"
    assert r["close/unread-data[ipv4]"].data == "fixture 'lab' raised"
    assert r["close/unread-data[ipv4]"].diagnostics[:2] == ["fixture 'lab' raised",
                                                          "OSError: [Errno 1] Operation not permitted"]
    assert not r["close/fin-handshake[ipv6]"].ok and r["close/fin-handshake[ipv6]"].directive == ""
    assert r["close/fin-handshake[ipv6]"].diagnostics == ["xpassed: expected to fail, passed (known: 6.x answers "
                                                          "with RST)"]
    assert r["timewait/reuse-port[ipv4]"].directive == "SKIP"
    assert r["timewait/reuse-port[ipv4]"].data == "not testable on this kernel: needs"  # first line, no prefix
    assert "close/fin-handshake[ipv4-%231]" in r  # "#" cannot stand in a description
    assert k.totals["error"] == 1 and k.totals["xpass"] == 1


def test_long_failure_keeps_its_first_lines(tmp_path: Path) -> None:
    data = make_run(seed=1)
    case = case_by_id(data, "close/unread-data[ipv4]")
    case.update(outcome="failed", message="\n".join(f"line {i}" for i in range(40)))
    k = ktap_of(tmp_path, data)
    diags = next(r for r in k.results if r.description == case["id"]).diagnostics
    assert diags[:5] == [f"line {i}" for i in range(5)]
    assert re.fullmatch(r"\.\.\. \d+ more lines in the report", diags[-1])
    assert len(diags) <= 6


def test_interrupted_run_says_so_in_a_result_line(tmp_path: Path) -> None:
    data = ended(make_run(seed=1), finished=4, signal="SIGINT")
    k = ktap_of(tmp_path, data)
    assert "run status: interrupted" in k.header
    first = k.results[0]
    assert (first.ok, first.description, first.directive) == (False, "run-status", "ERROR")
    assert first.data.startswith("INTERRUPTED by SIGINT after 4 of 11 selected cases")
    assert k.plan == 5 and k.totals["error"] == 1


def test_killed_run_rendered_writes_ktap_beside_junit_with_lost_evidence(tmp_path: Path) -> None:
    data = make_run(seed=1)
    run_dir = write_evidence(tmp_path / "run", data, finished=6)
    lost = data["cases"][2]["id"]
    truncate_case(run_dir, lost)
    proc = subprocess.run([sys.executable, "-m", "reports", "render", str(run_dir)], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(run_dir / "index.html")  # the plugin prints the last line
    assert (run_dir / "junit.xml").is_file()
    k = parse((run_dir / "results.ktap").read_text(encoding="utf-8"))
    assert "run status: incomplete" in k.header
    errors = [r for r in k.results if r.directive == "ERROR"]
    assert [r.description for r in errors] == ["run-status", lost]
    assert errors[1].data.startswith("evidence lost: truncated")
    assert k.plan == 5 + 2  # 5 readable cases, the run's status and the lost case
    assert k.totals["error"] == 2


def test_render_cli_writes_results_ktap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = write_run(tmp_path / "run", make_run(seed=3))
    assert main(["render", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "index.html")
    k = parse((run_dir / "results.ktap").read_text(encoding="utf-8"))
    assert k.plan == 11
    assert not list(run_dir.glob(".*.tmp"))
