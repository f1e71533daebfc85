"""python -m matrix: run every kernel × profile as its own job, then build one matrix report from their run directories.

    python -m matrix --kernels "host debian:6.1 debian:6.12" --profiles "default short-fin-timeout" \\
        [--out DIR] [--kernel-opts "--kvm no --nice 10"] [-- <pytest args>]

Each job is ``python -m kernels run --kernel K --results-dir DIR/<job> [kernel opts] -- <pytest args> --profile P``
(pytest args default to ``conformance``), run one after the other (one guest at a time: the jobs share the
machine, and a host run beside a guest would disturb its timings).  A job that fails (a kernel that does not
boot, lacks a config option, a series Debian does not ship, a guest that dies) does not stop the others; a guest
that died leaves its partial run directory, marked incomplete, and it is in the matrix with a warning.

DIR (default ``reports/runs/matrix-<UTC time>``) ends up holding one run directory per job (``<kernel>__<profile>``),
``logs/<job>.log`` (everything the job printed, also shown as it runs), ``jobs.json`` (per job: kernel, profile,
directory, exit code and its meaning, seconds, how its run ended) and ``matrix.html``, built from the jobs' run
directories with ``python -m reports matrix`` (links to the runs are relative, so DIR can be moved or archived
whole; a run directory left without its index.html, as by a run killed outright, is rendered first).  The last
line printed is ``matrix: DIR/matrix.html``.

Exit: 0 every job left a run and they behave the same; 1 behaviour differs (compare's 1); 2 some job left no run
directory (the matrix lacks that configuration; the others are still in it) or the runs could not be read;
4 bad command line (nothing run); 130 interrupted (the matrix is still built from the runs finished).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROFILES_DIR = REPO / "profiles"
USAGE_ERROR = 4
NO_RUN = 2
INTERRUPTED = 130
RESERVED = ("--results-dir", "--kernel", "--profile")  # the runner's to give, per job
PYTEST_CODES = {0: "all cases passed", 1: "some cases failed", 2: "pytest interrupted", 3: "pytest internal error",
                4: "bad command line", 5: "no cases selected"}

Command = Callable[[str, str, Path, Sequence[str], Sequence[str]], list[str]]


class UsageError(Exception):
    pass


@dataclass
class Job:
    kernel: str  # as given
    profile: str  # as given
    kernel_arg: str  # what the job passes (paths made absolute)
    profile_arg: str
    dir: Path
    log: Path
    code: int | None = None
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.dir.name

    def run_state(self) -> str:
        """How the job's run ended: complete | interrupted | incomplete | running, "killed" (run.json and cases only:
        the report rebuilds it) or "none" (no run directory)."""
        for name in ("results.json", "run.json"):
            path = self.dir / name
            if path.is_file():
                try:
                    doc = json.loads(path.read_text(encoding="utf-8"))
                    state = str(doc.get("run", doc).get("status") or "complete")
                except (OSError, ValueError, AttributeError):
                    state = "unreadable"
                return state if name == "results.json" else "killed"
        return "none"

    @property
    def usable(self) -> bool:
        return self.run_state() not in ("none", "unreadable")


def job_command(kernel: str, profile: str, run_dir: Path, pytest_args: Sequence[str],
                kernel_opts: Sequence[str]) -> list[str]:
    """The job: ``python -m kernels run --kernel K --results-dir DIR [opts] -- <pytest args> --profile P``
    (``kernels`` takes everything after ``--`` as pytest's arguments)."""
    return [sys.executable, "-m", "kernels", "run", "--kernel", kernel, "--results-dir", str(run_dir), *kernel_opts,
            "--", *pytest_args, "--profile", profile]


def meaning(code: int | None) -> str:
    if code is None:
        return "not run"
    if code == INTERRUPTED or code < 0:
        return "interrupted" if code == INTERRUPTED else f"killed by signal {-code}"
    if code in PYTEST_CODES:
        return PYTEST_CODES[code]
    try:
        from kernels.errors import CODES
    except ImportError:  # pragma: no cover - kernels is beside this package
        CODES = {}
    return CODES.get(code, f"exit {code}")


def safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


def kernel_arg(spec: str) -> tuple[str, str]:
    """(what the job passes, a short name for directories): ``host`` and ``debian:<series>`` as given, a path made
    absolute (the jobs run from the repository).  Raises UsageError for a spec ``kernels`` would refuse."""
    from kernels.errors import KernelsError
    from kernels.spec import parse_spec

    try:
        parsed = parse_spec(spec)
    except KernelsError as exc:
        raise UsageError(str(exc)) from None
    if parsed.kind in ("host", "debian"):
        return spec, safe(spec)
    assert parsed.path is not None
    arg = str(parsed.path) + (f":{parsed.modules}" if parsed.modules else "")
    return arg, safe(parsed.path.name if parsed.kind == "image" else parsed.path.name or "tree")


def profile_arg(spec: str) -> tuple[str, str]:
    """(what the job passes, a short name): a profile name (profiles/NAME.toml) or a path, made absolute."""
    if "/" in spec or spec.endswith(".toml"):
        path = Path(spec).resolve()
        if not path.is_file():
            raise UsageError(f"--profiles: {spec}: no such file")
        return str(path), safe(path.stem)
    if not (PROFILES_DIR / f"{spec}.toml").is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))) or "none"
        raise UsageError(f"--profiles: {spec}: no such profile (profiles/{spec}.toml); known: {known}")
    return spec, safe(spec)


def plan(kernels: Sequence[str], profiles: Sequence[str], out: Path) -> list[Job]:
    jobs: list[Job] = []
    names: set[str] = set()
    kargs = [kernel_arg(k) for k in kernels]
    pargs = [profile_arg(p) for p in profiles]
    for k, (karg, kname) in zip(kernels, kargs, strict=True):
        for p, (parg, pname) in zip(profiles, pargs, strict=True):
            name, n = f"{kname}__{pname}", 2
            while name in names:
                name, n = f"{kname}-{n}__{pname}", n + 1
            names.add(name)
            jobs.append(Job(k, p, karg, parg, out / name, out / "logs" / f"{name}.log"))
    return jobs


def _split(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", text.strip()) if w]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    rest: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    ap = _Parser(prog="python -m matrix", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", required=True, metavar='"SPEC ..."',
                    help="kernel specs, space separated (host, debian:<series>, a vmlinuz path, a build tree)")
    ap.add_argument("--profiles", default="default", metavar='"NAME ..."',
                    help="tuning profiles (profiles/NAME.toml or paths), space separated; default: default")
    ap.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="the matrix directory (default reports/runs/matrix-<UTC time>); must not hold a matrix")
    ap.add_argument("--kernel-opts", default="", metavar='"OPTS"',
                    help='options for `python -m kernels run` (e.g. "--kvm no --nice 10 --run-timeout 3600")')
    args = ap.parse_args(argv)
    for arg in rest:
        if arg in RESERVED or arg.startswith(tuple(f"{r}=" for r in RESERVED)):
            raise UsageError(f"{arg.split('=')[0]} after --: the matrix gives it to each job; use --kernels / "
                             "--profiles / --out")
    return args, rest or ["conformance"]


def run_job(job: Job, argv: list[str], echo: bool = True) -> int:
    """Run one job from the repository, its output shown and kept in its log; return its exit code.  On an
    interrupt the job is given time to end its guest (kernels ends vng, qemu and virtiofsd on SIGINT/SIGTERM), then
    KeyboardInterrupt goes on."""
    job.log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with job.log.open("w", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if echo:
                    sys.stdout.write(line)
                    sys.stdout.flush()
            job.code = proc.wait()
        except KeyboardInterrupt:
            _stop(proc)
            job.code = INTERRUPTED
            raise
        finally:
            job.seconds = time.monotonic() - start
            log.write(f"\n[matrix] exit {job.code} ({meaning(job.code)}) after {job.seconds:.1f} s\n")
    return int(job.code)


def _stop(proc: subprocess.Popen) -> None:
    """A terminal's ^C reached the job too (same process group): let it end its guest; else (SIGTERM to the runner
    alone) send it SIGTERM; SIGKILL only if it will not end."""
    for sig, wait in ((None, 10.0), (signal.SIGTERM, 120.0), (signal.SIGKILL, 10.0)):
        if sig is not None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # a second ^C: go on to the next step at once
            continue


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def ensure_report(job: Job) -> None:
    """A run directory the matrix links into needs its index.html (and results.ktap): the plugin renders them at the
    end of a run, kernels after a guest died; render them here when neither did (a run killed outright)."""
    if (job.dir / "index.html").is_file() and (job.dir / "results.ktap").is_file():
        return
    from reports.__main__ import load_or_rebuild, render
    from reports.load import ResultsError

    try:
        run, rebuilt = load_or_rebuild(job.dir)
        render(job.dir, run)
    except ResultsError as exc:
        print(f"matrix: {job.name}: cannot render its report: {exc}", file=sys.stderr, flush=True)
        return
    if rebuilt:
        print(f"matrix: {job.name}: {rebuilt}", flush=True)


def write_jobs(out: Path, jobs: Sequence[Job]) -> Path:
    path = out / "jobs.json"
    doc = [{"kernel": j.kernel, "profile": j.profile, "dir": j.name, "log": str(j.log.relative_to(out)),
            "exit": j.code, "meaning": meaning(j.code), "seconds": round(j.seconds, 1), "run": j.run_state()}
           for j in jobs]
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def summary(jobs: Sequence[Job]) -> list[str]:
    width = max(len(j.name) for j in jobs)
    return [f"  {j.name.ljust(width)}  exit {'-' if j.code is None else j.code:<3}  {meaning(j.code):<40}  "
            f"run {j.run_state():<11}  {j.seconds:7.1f} s" for j in jobs]


def main(argv: Sequence[str] | None = None, command: Command = job_command) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, pytest_args = parse(argv)
        kernels, profiles = _split(args.kernels), _split(args.profiles)
        if not kernels or not profiles:
            raise UsageError("--kernels and --profiles each need at least one entry")
        if len(set(kernels)) < len(kernels) or len(set(profiles)) < len(profiles):
            raise UsageError("a kernel or profile is given twice")
        out = (args.out or REPO / "reports" / "runs" / f"matrix-{datetime.now(UTC):%Y%m%dT%H%M%SZ}").resolve()
        if (out / "jobs.json").exists() or (out / "matrix.html").exists():
            raise UsageError(f"--out {out} already holds a matrix; give a new or empty directory")
        jobs = plan(kernels, profiles, out)
        held = [j.name for j in jobs if j.dir.exists() and any(j.dir.iterdir())]
        if held:
            raise UsageError(f"--out {out} already holds run directories: {', '.join(held)}")
        kernel_opts = shlex.split(args.kernel_opts)
    except UsageError as exc:
        print(f"matrix: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)
    out.mkdir(parents=True, exist_ok=True)
    print(f"matrix: {len(jobs)} jobs ({len(kernels)} kernels × {len(profiles)} profiles) in {out}", flush=True)
    interrupted = False
    for n, job in enumerate(jobs, 1):
        argv_job = command(job.kernel_arg, job.profile_arg, job.dir, pytest_args, kernel_opts)
        print(f"\nmatrix: job {n}/{len(jobs)} {job.name}: {shlex.join(argv_job)}", flush=True)
        try:
            run_job(job, argv_job)
        except KeyboardInterrupt:
            interrupted = True
            print(f"\nmatrix: interrupted during {job.name}; no further jobs", file=sys.stderr, flush=True)
            break
        except OSError as exc:  # the command could not be started: this job fails, the others go on
            job.code = 127
            print(f"matrix: job {job.name} could not start: {exc}", file=sys.stderr, flush=True)
            continue
        print(f"matrix: job {job.name}: exit {job.code} ({meaning(job.code)}), run {job.run_state()}, "
              f"{job.seconds:.1f} s", flush=True)
    write_jobs(out, jobs)
    print("\nmatrix: jobs\n" + "\n".join(summary(jobs)), flush=True)
    usable = [j for j in jobs if j.usable]
    lacking = [j for j in jobs if not j.usable]
    if lacking:
        print(f"matrix: warning: {len(lacking)} of {len(jobs)} jobs left no run (see {out / 'logs'}): "
              + ", ".join(j.name for j in lacking), file=sys.stderr, flush=True)
    if not usable:
        print("matrix: no job left a run directory: no matrix", file=sys.stderr)
        return INTERRUPTED if interrupted else NO_RUN
    print("", flush=True)
    from reports.load import ResultsError
    from reports.matrix import run_matrix

    for job in usable:
        ensure_report(job)

    try:
        code = run_matrix([j.dir for j in usable], out / "matrix.html")
    except ResultsError as exc:
        print(f"matrix: error: {exc}", file=sys.stderr)
        return NO_RUN
    sys.stdout.flush()
    if interrupted:
        return INTERRUPTED
    return NO_RUN if lacking else code


if __name__ == "__main__":
    sys.exit(main())
