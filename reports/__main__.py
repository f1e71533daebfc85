"""sockconf reports: render a run, compare runs, or build a matrix of runs.

  python -m reports render RUN_DIR
      Writes RUN_DIR/index.html (one self-contained file), RUN_DIR/junit.xml and RUN_DIR/results.ktap (KTAP
      version 1, as kselftest prints it: reports/ktap.py) from RUN_DIR/results.json, then prints the path of
      index.html.  When the run was killed or crashed (no results.json, but run.json and cases/), it first
      rebuilds results.json from that evidence, marked incomplete, and prints one line saying so with the
      counts.

  python -m reports compare RUN_A RUN_B [RUN_C ...] [-o diff.html]
      Prints how the runs' configurations differ (kernel, congestion control, harness commit and
      "dirty", fingerprint version, profiles, the tuning, sysctls in force, sysctls present in one run
      only), then the cases whose outcome or behaviour fingerprint differ, each with what changed in
      words ("client sent RA instead of FA", "client: FIN_WAIT2 → gone instead of → TIME_WAIT",
      "orphan FIN_WAIT2 lifetime 60 s → 5 s", "server.recv(): ECONNRESET instead of ok", a check whose
      verdict changed; the raw fingerprint lines when no sentence explains it), the cases present in
      only some runs, the cases skipped by configuration, then a one-line verdict.  A case skipped in
      every run is not compared ("N cases skipped in every run: not compared", never counted as
      identical).  A case skipped in some runs because of their configuration (its reason contains "not
      testable on this kernel: ", or names a tuned sysctl or the tuning) is listed as "skipped in B
      (configuration)" and is not a difference by itself; skipped for any other reason in one run and
      run in another, it is a difference.  A run that did not complete (interrupted, or incomplete)
      gets a warning line, and only the cases every run finished are compared: the others are listed as
      not finished, apart from the differences, and the verdict says "partial comparison ...; partial:
      N cases not compared".

  python -m reports matrix RUN [RUN ...] [-o matrix.html]
      One report over run directories, each one kernel x profile (reports/matrix.py): configuration rows
      first (run directory, kernel, execution: host / guest under KVM or emulated, profiles, tuning,
      harness commit, run status, ...; a row whose values differ is highlighted), then cases x runs, each
      cell the case's outcome linking to that run's case (RUN/index.html#<case>, relative to the matrix
      file), a cell whose outcome or fingerprint differs from the first run's highlighted.  The comparison
      and the text printed are compare's; runs that did not complete are warned about.  Writes the HTML to
      -o (default ./matrix.html) and prints its path last.  Exit status as compare's.

Exit status (usable as a CI gate):
  0  success; for compare: the behaviour is the same (every case is present in every run with the same
     outcome and fingerprint, cases skipped everywhere or by configuration apart).  Configuration
     differences alone do not change this: they are printed and the verdict says "configuration
     differs; behaviour identical".  When a run is not complete, 0 means the cases every run finished
     behave the same: the verdict then starts "partial comparison" and ends "partial: N cases not
     compared".
  1  compare and matrix: the behaviour differs (an outcome or fingerprint differs among the cases compared, or
     a case is missing from a complete run).  Cases without a fingerprint are compared by outcome only,
     and the output says so.  Also when the runs' fingerprints come from different algorithm versions
     (a run without a recorded version, e.g. schema 1, is version 1): behaviour is then not compared
     and the verdict says "fingerprints of different versions (v1 vs v2): behaviour not compared".
  2  bad input: missing directory, unreadable or corrupt results.json, another schema version
     (one line on stderr), or bad command-line usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .load import ResultsError, Run, load_run
from .rebuild import inspect, rebuild

INDEX = "index.html"
JUNIT = "junit.xml"
KTAP = "results.ktap"


def render(run_dir: str | Path, run: Run | None = None) -> Path:
    """Write index.html, junit.xml and results.ktap into the run directory; return the index path.  ``run``: the
    run already loaded from ``run_dir``."""
    from .html import render_run
    from .junit import render_junit
    from .ktap import render_ktap

    run = run or load_run(run_dir)
    index = run.dir / INDEX
    _write(index, render_run(run).encode("utf-8"))
    _write(run.dir / JUNIT, render_junit(run))
    _write(run.dir / KTAP, render_ktap(run).encode("utf-8"))
    return index


def load_or_rebuild(run_dir: str | Path) -> tuple[Run, str | None]:
    """The run; when it was killed before writing results.json, rebuilt (and written) first, with the line
    saying so."""
    run, why = inspect(run_dir)
    if run is not None:
        return run, None
    path = rebuild(run_dir)
    run = load_run(path)
    selected = f" of {run.selected} selected" if run.selected is not None else " (selected: unknown)"
    lost = f", {len(run.lost)} lost" if run.lost else ""
    return run, (f"rebuilt {path} for an incomplete run ({why}): {run.finished}{selected} cases finished{lost}; "
                 "claims not decided")


def _write(path: Path, data: bytes) -> None:
    """Write atomically, so a reader never sees half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        raise ResultsError(f"{path}: cannot write: {exc.strerror or exc}") from None


def parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(
        prog="python -m reports",
        description=doc.split("\n\n", 1)[0],
        epilog=doc.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{render,compare,matrix}")
    r = sub.add_parser("render", help="write index.html, junit.xml and results.ktap for a run directory")
    r.add_argument("run_dir", metavar="RUN_DIR",
                   help="directory holding results.json (or run.json and cases/ of a killed run)")
    c = sub.add_parser(
        "compare",
        help="compare two or more runs (exit 0 same behaviour, 1 different, 2 bad input)",
        description="Compare runs. Exit 0: same behaviour (configuration may still differ); "
        "1: behaviour differs, or fingerprints of different versions (behaviour not compared); 2: bad input.",
    )
    c.add_argument("run_dirs", metavar="RUN", nargs="+", help="run directories (at least two)")
    c.add_argument("-o", "--output", metavar="DIFF_HTML", help="also write an HTML diff to this file")
    m = sub.add_parser(
        "matrix",
        help="one matrix report over runs (kernel x profile); exit as compare's",
        description="Cases x runs with the configuration rows first; differing cells highlighted, each cell linking "
        "to the case in its run's index.html. Exit 0: same behaviour; 1: behaviour differs (or fingerprints of "
        "different versions); 2: bad input.",
    )
    m.add_argument("run_dirs", metavar="RUN", nargs="+", help="run directories (one per kernel x profile)")
    m.add_argument("-o", "--output", metavar="MATRIX_HTML", default="matrix.html",
                   help="where to write the matrix (default: ./matrix.html); links to the runs are relative to it")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "render":
            run, rebuilt = load_or_rebuild(args.run_dir)
            if rebuilt:
                print(rebuilt, flush=True)
            print(render(args.run_dir, run))
            return 0
        if args.command == "matrix":
            from .matrix import run_matrix

            return run_matrix([Path(d) for d in args.run_dirs], args.output)
        from .compare import run_compare

        if len(args.run_dirs) < 2:
            raise ResultsError("compare needs at least two run directories")
        return run_compare([Path(d) for d in args.run_dirs], args.output)
    except ResultsError as exc:
        print(f"reports: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
