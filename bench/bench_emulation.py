"""Fit the emulation factor of the tolerance model (fixtures/tolerance.py) from runs, not by judgement.

    python3 bench/bench_emulation.py HOST_RUN_DIR GUEST_RUN_DIR...

Reads each run's results.json and, for every check that passed or failed, the part of a time the harness's own
observation adds (what EMULATION_FACTOR widens; the kernel's timers are not widened):
- prompt segments: how long after the event that causes it ("at +X s" of a check whose window was PROMPT_S)
  a segment was seen;
- timer durations: how far past the expected value a duration measured by the wire or by sock_diag ended
  (measured - expected*(1 + wheel slack) - 2 jiffies: what LOAD_S and the poll term cover).
Prints their quantiles per run and the factor by which the host's maximum must grow to cover the guest's, for each
kind; the largest is the factor the model needs (a run under emulation sets SOCKCONF_EMULATED=tcg).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fixtures.tolerance import JIFFY_S, PROMPT_S, WHEEL_SLACK  # noqa: E402  (run on the host: factor 1)

AT = re.compile(r"at \+(\d+\.\d+) s")
MEASURED = re.compile(r"^(\d+\.\d+) s")


def observations(run_dir: Path) -> dict[str, list[float]]:
    results = json.loads((run_dir / "results.json").read_text())
    factor = float((results.get("run", {}).get("execution") or {}).get("timing_factor") or 1.0)
    prompt_s = PROMPT_S * factor  # the PROMPT_S the run used (its emulation factor recorded in run.execution)
    out: dict[str, list[float]] = {"prompt segment (s after its cause)": [], "timer overshoot (s)": []}
    for case in results["cases"]:
        for check in case.get("checks") or []:
            params = check.get("params") or {}
            if check.get("kind") == "segment" and params.get("deadline") is not None:
                start = params.get("not_before") if params.get("not_before") is not None else params.get("after")
                m = AT.search(str(check.get("seen", "")))
                if start is not None and m and abs(params["deadline"] - start - prompt_s) < 1e-3:
                    out["prompt segment (s after its cause)"].append(float(m.group(1)))
            elif check.get("kind") == "duration" and params.get("expected"):
                m = MEASURED.match(str(check.get("seen", "")))
                if m:
                    expected = float(params["expected"])
                    over = float(m.group(1)) - expected * (1 + WHEEL_SLACK) - 2 * JIFFY_S
                    out["timer overshoot (s)"].append(max(0.0, over))
    return out


def quantiles(values: list[float]) -> str:
    if not values:
        return "none"
    v = sorted(values)
    q = statistics.quantiles(v, n=100, method="inclusive") if len(v) > 1 else [v[0]] * 99
    return f"n={len(v)} median {v[len(v) // 2] * 1e3:.1f} ms, p99 {q[98] * 1e3:.1f} ms, max {v[-1] * 1e3:.1f} ms"


def _p99(values: list[float]) -> float:
    v = sorted(values)
    return v[max(0, int(len(v) * 0.99) - 1)]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    runs = [Path(a) for a in argv]
    seen = {run: observations(run) for run in runs}
    host = seen[runs[0]]
    for run in runs:
        print(f"{run}:")
        for kind, values in seen[run].items():
            print(f"  {kind}: {quantiles(values)}")
    for run in runs[1:]:
        for kind, values in seen[run].items():
            base = host[kind]
            if values and base and max(base) > 0:
                p99 = f"{_p99(values) / _p99(base):.1f}x" if _p99(base) > 0 else "n/a (host p99 is 0)"
                print(f"{run.name}: {kind}: guest / host: max {max(values) / max(base):.1f}x, p99 {p99}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
