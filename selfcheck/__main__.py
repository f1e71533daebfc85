"""The self-check: proof that compare can gate a rollout. Runs the default selection twice with the kernel's
defaults (an A/A pair: no case may differ) and once per behaviour-changing tuning of selfcheck/tunings.toml (each
must pass, and differ from the default run on exactly the cases it lists), then prints and saves a table.

    python3 -m selfcheck                      # as root; ~2 min per run on a 2-core machine
    python3 -m selfcheck --only no-time-wait  # one tuning (and the A/A pair)
    python3 -m selfcheck --runs DIR           # keep the runs there (default reports/runs/selfcheck-<time>)
    python3 -m selfcheck --reuse DIR          # decide again from the runs already in DIR (e.g. after editing
                                              # tunings.toml); runs nothing

Exit 0 when every row is right; 1 on any false difference, missed difference, A/A difference or failing tuned
run; 2 on bad input. The latest table is saved as reports/runs/selfcheck-latest.json, which every later run's
report shows (results.json run.selfcheck).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reports.compare import compare  # noqa: E402
from reports.load import ResultsError, load_run  # noqa: E402

TUNINGS = Path(__file__).resolve().parent / "tunings.toml"
LATEST = REPO / "reports" / "runs" / "selfcheck-latest.json"
SELECTION = ["conformance", "-m", "not slow"]


def load_tunings(only: list[str]) -> list[dict]:
    rows = tomllib.loads(TUNINGS.read_text())["tuning"]
    if only:
        unknown = set(only) - {r["profile"] for r in rows}
        if unknown:
            raise SystemExit(f"selfcheck: unknown tuning(s) {sorted(unknown)}; see {TUNINGS}")
        rows = [r for r in rows if r["profile"] in only]
    return rows


def run_suite(run_dir: Path, workers: str, extra: list[str]) -> float:
    start = time.monotonic()
    argv = [sys.executable, "-m", "pytest", *SELECTION, "-n", workers, "-q", "--no-report", "-p", "no:randomly",
            "--results-dir", str(run_dir), *extra]
    print(f"selfcheck: {' '.join(argv[3:])}", flush=True)
    subprocess.run(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.monotonic() - start


def matches(case_id: str, patterns: list[str]) -> bool:
    return any(case_id == p or case_id.startswith(p if "[" in p else p + "[") for p in patterns)


def differing(a: Path, b: Path) -> tuple[set[str], int]:
    """Case ids whose behaviour differs between two runs (configuration-caused skips excluded), and the number
    of failed cases in run b."""
    cmp = compare([load_run(a), load_run(b)])
    ids = {d.id for d in cmp.differing} | {d.id for d in cmp.partial}
    run_b = load_run(b)
    return ids, run_b.totals["failed"] + run_b.totals["error"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m selfcheck", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], metavar="PROFILE")
    ap.add_argument("--runs", type=Path, default=None)
    ap.add_argument("-n", "--workers", default="auto")
    ap.add_argument("--reuse", type=Path, default=None, metavar="DIR")
    args = ap.parse_args(argv)
    tunings = load_tunings(args.only)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    runs = (args.reuse or args.runs or REPO / "reports" / "runs" / f"selfcheck-{stamp}").resolve()
    runs.mkdir(parents=True, exist_ok=True)
    baseline, again = runs / "default-A", runs / "default-B"

    def suite(run_dir: Path, extra: list[str]) -> float:
        return 0.0 if args.reuse else run_suite(run_dir, args.workers, extra)

    timings = {"default-A": suite(baseline, []), "default-B": suite(again, [])}
    rows = []
    try:
        aa, aa_failed = differing(baseline, again)
        base_failed = load_run(baseline).totals["failed"] + load_run(baseline).totals["error"]
        rows.append({"tuning": "A/A (default twice)", "expected": [], "differed": sorted(aa), "false": sorted(aa),
                     "missed": [], "tuned_run": "passed" if not (aa_failed or base_failed)
                     else f"{base_failed}+{aa_failed} failed",
                     "verdict": "ok" if not aa and not aa_failed and not base_failed else "FAIL"})
        for t in tunings:
            run_dir = runs / t["profile"]
            timings[t["profile"]] = suite(run_dir, ["--profile", t["profile"]])
            diff, failed = differing(baseline, run_dir)
            expected = {cid for cid in load_run(baseline).case_map() if matches(cid, t["cases"])}
            false, missed = diff - expected, expected - diff
            rows.append({"tuning": t["profile"], "expected": sorted(expected), "differed": sorted(diff),
                         "false": sorted(false), "missed": sorted(missed),
                         "tuned_run": "passed" if not failed else f"{failed} failed",
                         "verdict": "ok" if not (false or missed or failed) else "FAIL"})
    except ResultsError as exc:
        print(f"selfcheck: {exc}", file=sys.stderr)
        return 2
    verdict = "pass" if all(r["verdict"] == "ok" for r in rows) else "fail"
    result = {"when": datetime.now(UTC).isoformat(), "verdict": verdict, "runs": str(runs), "rows": rows,
              "run_seconds": {k: round(v, 1) for k, v in timings.items()}}
    print(table(rows))
    print(f"selfcheck: {verdict}; runs in {runs}")
    text = json.dumps(result, indent=1)
    (runs / "selfcheck.json").write_text(text)
    LATEST.parent.mkdir(parents=True, exist_ok=True)
    LATEST.write_text(text)
    return 0 if verdict == "pass" else 1


def table(rows: list[dict]) -> str:
    head = ["tuning", "expected", "differed", "false", "missed", "tuned run", "verdict"]
    body = [[r["tuning"], str(len(r["expected"])), str(len(r["differed"])), str(len(r["false"])),
             str(len(r["missed"])), r["tuned_run"], r["verdict"]] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in [head, *body]]
    for r in rows:
        for what in ("false", "missed"):
            lines += [f"  {r['tuning']}: {what}: {cid}" for cid in r[what]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
