"""Time the closing-state × incoming-segment grid (issue 10). Run as root:

    python3 bench/bench_grid.py [--workers auto] [--results-dir DIR] [-- PYTEST_ARGS...]

Runs `python3 -m pytest conformance/test_grid.py -n WORKERS -q --no-report --results-dir DIR` (DIR: a fresh
temporary directory, removed afterwards, unless --results-dir is given) and prints its wall time, the number of
cases (grid cells and the other grid-area cases, per family, per outcome) and the targets: at least 300 grid
cases, the grid at -n auto in at most 60 s. Exits 0 when pytest passed and the targets are met, 1 otherwise, 2
when it cannot run (not root, or the results directory is not new).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIN_CASES, MAX_WALL_S = 300, 60.0


def run_grid(workers: str, results_dir: Path, extra: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    cmd = [sys.executable, "-m", "pytest", "conformance/test_grid.py", "-n", workers, "-q", "--no-report",
           "--results-dir", str(results_dir), *extra]
    print("$ " + " ".join(cmd), flush=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    return time.perf_counter() - t, proc


def count_cases(results_dir: Path) -> dict[str, object] | None:
    """Cases in the run's results.json: all, grid cells (test_grid's parametrised cases), per family and outcome."""
    try:
        data = json.loads((results_dir / "results.json").read_text())
    except (OSError, ValueError):
        return None
    cases = data.get("cases") or []
    cells = [c for c in cases if "::test_grid[" in str(c.get("nodeid", ""))]
    return {"cases": len(cases), "cells": len(cells),
            "families": Counter(str(c.get("family")) for c in cells),
            "outcomes": Counter(str(c.get("outcome")) for c in cases),
            "duration_s": (data.get("run") or {}).get("duration_s")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="auto", help="pytest-xdist -n value (default auto)")
    ap.add_argument("--results-dir", type=Path, default=None,
                    help="keep the run here (a new or empty directory); default: a temporary one, removed")
    ap.add_argument("pytest_args", nargs="*", help="more pytest arguments, after --")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_grid: the grid needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): run it as root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sockconf-grid-") as tmp:
        results_dir = (args.results_dir or Path(tmp) / "run").resolve()
        if results_dir.exists() and any(results_dir.iterdir()):
            print(f"bench_grid: {results_dir} is not empty; give a new or empty directory", file=sys.stderr)
            return 2
        wall, proc = run_grid(args.workers, results_dir, args.pytest_args)
        counts = count_cases(results_dir)
    summary = [line for line in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    print(f"pytest exit status {proc.returncode}: {summary[-1] if summary else '(no summary line)'}")
    if counts is None:
        print(f"no results.json in {results_dir}; pytest said:\n{(proc.stdout + proc.stderr)[-2000:]}")
        return 1
    families = ", ".join(f"{n} {f}" for f, n in sorted(counts["families"].items()))  # type: ignore[attr-defined]
    outcomes = ", ".join(f"{n} {o}" for o, n in sorted(counts["outcomes"].items()))  # type: ignore[attr-defined]
    print(f"grid at -n {args.workers}: {wall:.1f} s wall (run {counts['duration_s']} s as recorded); "
          f"{counts['cases']} cases: {counts['cells']} grid cells ({families}) and "
          f"{counts['cases'] - counts['cells']} others; {outcomes}")  # type: ignore[operator]
    if args.results_dir:
        print(f"results: {results_dir / 'results.json'}")
    checks = [(f"grid cells ≥ {MIN_CASES}", f"{counts['cells']}", counts["cells"] >= MIN_CASES)]  # type: ignore[operator]
    if args.workers == "auto" and not args.pytest_args:
        checks.append((f"wall time at -n auto ≤ {MAX_WALL_S:.0f} s", f"{wall:.1f} s", wall <= MAX_WALL_S))
    for what, value, ok in checks:
        print(f"  {what:<28} {value:>8}   {'ok' if ok else 'MISSED'}")
    return 0 if proc.returncode == 0 and all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
