"""Harness benchmarks (issue 2 and issue 11 targets). Run as root: `python3 bench/bench_harness.py [options]`.

Prints:
- topology setup time (median, p95 over --setups runs) and first-connect time;
- capture loss for 10 k and 50 k segment bursts (a real TCP bulk transfer with a 100-byte MSS, so every
  segment is small and offloads are off), and the kernel's own drop counter for the capture socket;
- clock agreement: syscall timestamps vs packet timestamps (connect -> SYN, close -> FIN), and a state
  read over sock_diag vs the packet that caused it (RST into TIME_WAIT -> socket gone);
- per-case overhead: empty cases through the `pair` fixture, each case's own duration (set-up, body, teardown:
  namespaces, veth, capture, evidence, pcap), median and p95, at --workers and at 1 worker, and the mean cost
  per case against bare tests;
- the suite: the full catalogue (slow cases included) and the default selection (-m "not slow") at --workers,
  each with its wall time, its longest case, wall / longest, the sum of case durations and its failures; then
  the same at 1 worker for reference (--skip-serial leaves those out, --skip-full the full catalogue,
  --skip-suite every suite run; --repeat N runs each suite measurement N times, for stability).
Targets: setup <= 30 ms median, first connect < 1 ms, 0 lost at 50 k, clocks agree within 5 ms; full catalogue
<= 1.3 x its longest case, default selection <= 30 s, 0 failures.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fixtures.lab import Lab  # noqa: E402
from fixtures.wire import Wire  # noqa: E402
from netns.addresses import IPV4  # noqa: E402
from netns.capture import Capture  # noqa: E402
from netns.topology import CLIENT_IF, Topology  # noqa: E402

TCP_MAXSEG = 2


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def covered_bytes(ranges: list[tuple[int, int]]) -> int:
    """Bytes of the stream covered by at least one captured segment (retransmissions count once)."""
    total, end = 0, 0
    for start, length in sorted(ranges):
        if start + length > end:
            total += start + length - max(start, end)
            end = start + length
    return total


def bench_setup(runs: int) -> None:
    setups, connects = [], []
    for _ in range(runs):
        t = time.perf_counter()
        topo = Topology()
        setups.append((time.perf_counter() - t) * 1e3)
        listener = topo.listen(IPV4)
        client = topo.client_ns.socket(IPV4.af)
        t = time.perf_counter()
        client.connect((IPV4.server, 8080))
        connects.append((time.perf_counter() - t) * 1e3)
        client.close()
        listener.close()
        topo.close()
    print(f"topology setup over {runs}: median {statistics.median(setups):.1f} ms, p95 {pct(setups, 95):.1f} ms, "
          f"max {max(setups):.1f} ms  (target median <= 30 ms)")
    print(f"first connect over {runs}: median {statistics.median(connects):.3f} ms, "
          f"max {max(connects):.3f} ms  (target < 1 ms)")


def bench_capture(segments: int) -> None:
    mss = 100  # the kernel takes 12 bytes of it for the timestamp option: 88-byte payloads
    payload = b"z" * (segments * (mss - 12))
    with Topology() as topo:
        cap = Capture(topo.client_ns, CLIENT_IF)
        listener = topo.listen(IPV4)
        client = topo.client_ns.socket(IPV4.af)
        client.setsockopt(socket.IPPROTO_TCP, TCP_MAXSEG, mss)
        client.connect((IPV4.server, 8080))
        server, _ = listener.accept()
        t = time.perf_counter()
        sender = threading.Thread(target=lambda: (server.sendall(payload), server.close()))
        sender.start()
        got = 0
        while chunk := client.recv(1 << 20):
            got += len(chunk)
        elapsed = time.perf_counter() - t
        sender.join()
        time.sleep(0.2)
        cap.stop()
        wire = Wire(cap)
        data = [s for s in wire.segments() if s.sender == "server" and s.length > 0]
        captured = covered_bytes([(s.seq, s.length) for s in data])
        client.close()
        listener.close()
    lost = len(payload) - captured
    print(f"capture, {segments} x {mss}-byte segments in {elapsed * 1e3:.0f} ms: {len(data)} data segments "
          f"captured, payload bytes missing {lost}, kernel capture drops {cap.kernel_drops}, "
          f"frames total {len(wire.frames)}  (target 0 lost)")


def bench_clocks(runs: int) -> None:
    syn, fin, gone = [], [], []
    for _ in range(runs):
        lab = Lab(IPV4)
        try:
            lab.connect()
            connect_call = lab.log.last("client", "connect")
            syn.append(abs(lab.wire.expect("client", "S", within=1, since=lab.t0).ts - connect_call.t) * 1e3)
            lab.client.close()
            close_call = lab.log.last("client", "close")
            fin.append(abs(lab.wire.expect("client", "FA", within=1).ts - close_call.t) * 1e3)
            lab.server.close()
            server_fin = lab.wire.expect("server", "FA", within=1)
            lab.wait_state("client", "TIME_WAIT", within=1)
            lab.inject("server", "R", seq=server_fin.raw_seq + 1)
            rst = lab.wire.expect("server", "R", within=1, origin="injected")
            gone.append((lab.wait_gone("client", within=1) - rst.ts) * 1e3)
        finally:
            lab.finish(None)
    for name, values in (("connect() -> SYN", syn), ("close() -> FIN", fin),
                         ("RST on the wire -> gone in sock_diag", gone)):
        print(f"clock agreement, {name} over {runs}: median {statistics.median(values):.3f} ms, "
              f"max {max(values):.3f} ms  (target within 5 ms)")


EMPTY = textwrap.dedent("""
    import pytest
    from fixtures.references import reference

    @pytest.mark.parametrize("i", range({n}))
    @reference("RFC 9293")
    def test_empty_pair(pair, i):
        pass

    @pytest.mark.parametrize("i", range({n2}))
    def test_bare(i):
        pass
""")


def _pytest_run(path: Path, expr: str, run_dir: Path, workers: str) -> float:
    t = time.perf_counter()
    dist = ["-p", "no:xdist"] if workers == "1" else ["-n", workers]
    proc = subprocess.run([sys.executable, "-m", "pytest", str(path), "-q", "-k", expr, "-p", "fixtures.plugin",
                           *dist, "--rootdir", str(path.parent), "--results-dir", str(run_dir), "--no-report"],
                          cwd=path.parent, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"empty-test bench failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t


def _case_durations(run_dir: Path) -> list[float]:
    import json

    return [c["duration_s"] for c in json.loads((run_dir / "results.json").read_text())["cases"]]


def bench_empty_test(n: int, workers: list[str]) -> None:
    """Per-case overhead: each empty case's own duration (set-up + body + teardown of a lab), median and p95, and
    the wall time per case against as many bare tests."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "test_empty.py"
        path.write_text(EMPTY.format(n=n, n2=2 * n))
        for w in workers:
            pair = _pytest_run(path, "empty_pair", Path(tmp) / f"a{w}", w)
            bare = _pytest_run(path, "bare", Path(tmp) / f"b{w}", w)
            each = [d * 1e3 for d in _case_durations(Path(tmp) / f"a{w}")]
            print(f"per-case overhead at {w} worker(s), {2 * n} empty cases through `pair`: median "
                  f"{statistics.median(each):.1f} ms, p95 {pct(each, 95):.1f} ms each (set-up, body, teardown: "
                  "evidence and pcap included)")
            if w == "1":
                print(f"  {(pair - bare) / (2 * n) * 1e3:.1f} ms of wall time per case ({pair:.2f} s vs {bare:.2f} s "
                      f"for as many bare tests)")
            else:
                print(f"  the {w} workers' start-up (interpreter, imports, collection): {bare:.1f} s for "
                      f"{4 * n} bare tests")


@dataclass
class SuiteRun:
    name: str
    workers: str
    wall: float
    longest: float
    longest_id: str
    total: float
    counts: dict[str, int]

    @property
    def failures(self) -> int:
        return self.counts.get("failed", 0) + self.counts.get("error", 0)


def run_suite(name: str, marks: list[str], workers: str) -> SuiteRun:
    import json

    with tempfile.TemporaryDirectory() as tmp:
        dist = ["-p", "no:xdist"] if workers == "1" else ["-n", workers]
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "conformance", "-q", *marks, *dist, "--results-dir",
                               tmp, "--no-report"], cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t
        try:
            results = json.loads((Path(tmp) / "results.json").read_text())
        except (OSError, ValueError):
            raise SystemExit(f"{name} at {workers} worker(s) left no results:\n{proc.stdout[-2000:]}"
                             f"\n{proc.stderr[-2000:]}") from None
    cases = results["cases"]
    longest = max(cases, key=lambda c: c["duration_s"])
    counts: dict[str, int] = {}
    for c in cases:
        counts[c["outcome"]] = counts.get(c["outcome"], 0) + 1
    for c in cases:
        if c["outcome"] in ("failed", "error"):
            print(f"  {c['outcome']}: {c['id']}: {(c['message'] or '').splitlines()[0][:200]}")
    return SuiteRun(name, workers, wall, longest["duration_s"], longest["id"], sum(c["duration_s"] for c in cases),
                    counts)


def show(run: SuiteRun, target: str) -> None:
    counts = ", ".join(f"{n} {k}" for k, n in sorted(run.counts.items()))
    print(f"{run.name} at {run.workers} worker(s): {run.wall:.1f} s wall; longest case {run.longest:.1f} s "
          f"({run.longest_id}); wall / longest {run.wall / run.longest:.2f}; sum of case durations {run.total:.0f} s; "
          f"{counts}  ({target})")


def bench_suites(workers: str, full: bool, serial: bool, repeat: int) -> None:
    plans = [("full catalogue", [], "target <= 1.3 x the longest case, 0 failures")] if full else []
    plans.append(("default selection (not slow)", ["-m", "not slow"], "target <= 30 s, 0 failures"))
    for w in [workers] + (["1"] if serial else []):
        for name, marks, target in plans:
            runs = [run_suite(name, marks, w) for _ in range(repeat)]
            for run in runs:
                show(run, target if w == workers else "reference")
            if repeat > 1:
                walls = [r.wall for r in runs]
                print(f"  {name} at {w}: {repeat} runs, wall median {statistics.median(walls):.1f} s, max "
                      f"{max(walls):.1f} s, failures {sum(r.failures for r in runs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setups", type=int, default=60)
    parser.add_argument("--workers", default="auto", help="pytest-xdist workers for the suite runs (default auto: "
                        "sockconf's choice, fixtures/ordering.py; the Makefile passes its WORKERS)")
    parser.add_argument("--skip-suite", action="store_true", help="do not time conformance runs")
    parser.add_argument("--skip-full", action="store_true", help="do not time the full catalogue (slow cases)")
    parser.add_argument("--skip-serial", action="store_true", help="no 1-worker reference runs of the suite")
    parser.add_argument("--suite-only", action="store_true", help="only the per-case overhead and the suite runs")
    parser.add_argument("--repeat", type=int, default=1, help="run each suite measurement N times")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_harness needs root (it creates network namespaces)")
    print(f"sockconf harness bench on {os.uname().release}, {os.cpu_count()} cpus")
    if not args.suite_only:
        bench_setup(args.setups)
        for n in (10_000, 50_000):
            bench_capture(n)
        bench_clocks(30)
    bench_empty_test(20, [args.workers, "1"])
    if not args.skip_suite:
        bench_suites(args.workers, not args.skip_full, not args.skip_serial, args.repeat)


if __name__ == "__main__":
    main()
