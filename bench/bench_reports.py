"""Benchmark the reports package on a synthetic 300-case run.

    python bench/bench_reports.py [--cases 300]

Targets (issue 4): render ≤ 2 s, index.html ≤ 5 MB, compare of two runs ≤ 1 s.  Exits 1 if one is missed.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from reports_sample import make_run, set_fingerprint, write_run  # noqa: E402

from reports.__main__ import render  # noqa: E402
from reports.compare import run_compare  # noqa: E402

RENDER_S, SIZE_MB, COMPARE_S = 2.0, 5.0, 1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=300)
    n = ap.parse_args().cases
    with tempfile.TemporaryDirectory() as tmp:
        a = write_run(Path(tmp) / "a", make_run(n, seed=1))
        tuned = make_run(n, seed=2, label="tuned", sysctl_overrides={"net.ipv4.tcp_fin_timeout": "5"})
        for case in tuned["cases"][::10]:  # every tenth case behaves differently: ladders in the diff
            if case["segments"]:
                case["segments"][-1]["flags"] = "R"
                set_fingerprint(case)
        b = write_run(Path(tmp) / "b", tuned)
        segments = sum(len(c["segments"]) for c in make_run(n)["cases"])

        t = time.perf_counter()
        index = render(a)
        render_s = time.perf_counter() - t
        size_mb = index.stat().st_size / 1e6

        t = time.perf_counter()
        code = run_compare([a, b], str(Path(tmp) / "diff.html"), out=io.StringIO())
        compare_s = time.perf_counter() - t

        cli = {}
        for name, args in (("render", ["render", a]), ("compare", ["compare", a, b, "-o", Path(tmp) / "d.html"])):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "reports", *map(str, args)], cwd=REPO, capture_output=True,
                           check=False)
            cli[name] = time.perf_counter() - t

    rows = [
        ("render", f"{render_s:.3f} s", f"≤ {RENDER_S} s", render_s <= RENDER_S),
        ("index.html size", f"{size_mb:.2f} MB", f"≤ {SIZE_MB} MB", size_mb <= SIZE_MB),
        ("compare (2 runs, with -o)", f"{compare_s:.3f} s", f"≤ {COMPARE_S} s", compare_s <= COMPARE_S),
        ("python -m reports render", f"{cli['render']:.3f} s", f"≤ {RENDER_S} s", cli["render"] <= RENDER_S),
        ("python -m reports compare", f"{cli['compare']:.3f} s", f"≤ {COMPARE_S} s", cli["compare"] <= COMPARE_S),
    ]
    print(f"{n} cases, {segments} segments per run; compare exit status {code} (expected 1)")
    for what, value, target, ok in rows:
        print(f"  {what:<26} {value:>10}   target {target:<8} {'ok' if ok else 'MISSED'}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
