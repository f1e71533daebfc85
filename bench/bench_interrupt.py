"""How long an interrupted run takes to end. Run as root:

    python3 bench/bench_interrupt.py [--runs 3] [--hogs 0] [--signal INT|TERM]

Starts a run of two cases that block for an hour (`pytest -p fixtures.plugin -n W`, W = 0 and 2), sends the
controller the signal once both cases are inside their namespaces (as a CI runner's `kill -INT` does: to the
controller only) and times how long the run takes to end. With --hogs N, N busy processes (started here and
ended by pid) load the CPUs meanwhile, as a loaded CI machine would. Prints, per worker count, the median and
the longest time from the signal to the end, and whether each run ended interrupted (results.json). Exits 0
when every run ended interrupted, 1 otherwise, 2 when it cannot run (not root).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BLOCKING = textwrap.dedent('''
    import os, time
    from fixtures.references import reference

    @reference("RFC 9293")
    def test_blocks(pair):
        open(os.environ["BENCH_MARK"] + "." + os.environ.get("PYTEST_XDIST_WORKER", "main"), "w").close()
        time.sleep(3600)
''')
START_TIMEOUT_S, END_TIMEOUT_S = 120.0, 300.0


def _busy() -> None:
    while True:
        pass


def one_run(workers: str, signum: signal.Signals, where: Path) -> tuple[float, str]:
    """Seconds from the signal to the run's end, and the run's status as results.json says."""
    where.mkdir()
    (where / "test_blocks.py").write_text(BLOCKING)
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_MARK": str(where / "inside"),
           "SOCKCONF_HUNG_MARGIN_S": "7200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(where / "test_blocks.py"), "-p", "fixtures.plugin", "--rootdir",
         str(where), "--results-dir", str(where / "run"), "--no-report", "-n", workers], cwd=where, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + START_TIMEOUT_S
        while len(list(where.glob("inside.*"))) < (1 if workers == "0" else int(workers)):
            if time.time() > deadline or proc.poll() is not None:
                return float("nan"), "did not start"
            time.sleep(0.05)
        sent = time.perf_counter()
        proc.send_signal(signum)
        proc.wait(timeout=END_TIMEOUT_S)
        took = time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        status = json.loads((where / "run" / "results.json").read_text())["run"]["status"]
    except (OSError, ValueError, KeyError):
        status = "no results.json"
    return took, status


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per worker count (default 3)")
    ap.add_argument("--hogs", type=int, default=0, help="busy processes loading the CPUs meanwhile (default 0)")
    ap.add_argument("--signal", choices=("INT", "TERM"), default="INT", help="signal to send (default INT)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_interrupt: the cases need root (network namespaces): run it as root", file=sys.stderr)
        return 2
    signum = signal.Signals["SIG" + args.signal]
    hogs = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    ok = True
    try:
        with tempfile.TemporaryDirectory(prefix="bench-interrupt-") as tmp:
            for workers in ("0", "2"):
                times = []
                for i in range(args.runs):
                    took, status = one_run(workers, signum, Path(tmp) / f"w{workers}-{i}")
                    print(f"-n {workers} run {i + 1}: {signum.name} -> ended in {took:.1f} s, {status}", flush=True)
                    ok &= status == "interrupted"
                    times.append(took)
                print(f"-n {workers}: median {statistics.median(times):.1f} s, longest {max(times):.1f} s "
                      f"({args.hogs} CPU hogs)", flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.join()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
