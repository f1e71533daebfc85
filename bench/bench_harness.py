"""Harness benchmarks (issue 2 targets). Run as root: `python3 bench/bench_harness.py [--skip-suite]`.

Prints:
- topology setup time (median, p95 over --setups runs) and first-connect time;
- capture loss for 10 k and 50 k segment bursts (a real TCP bulk transfer with a 100-byte MSS, so every
  segment is small and offloads are off), and the kernel's own drop counter for the capture socket;
- clock agreement: syscall timestamps vs packet timestamps (connect -> SYN, close -> FIN), and a state
  read over sock_diag vs the packet that caused it (RST into TIME_WAIT -> socket gone);
- the overhead of an empty test through the `pair` fixture (pytest in a subprocess, vs a bare test);
- the wall time of the default conformance run (-m "not slow") at -n 1 and -n auto.
Targets: setup <= 30 ms median, first connect < 1 ms, 0 lost at 50 k, clocks agree within 5 ms.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
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
            rst = lab.wire.expect("server", "R", within=1)
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


def _pytest_time(path: Path, expr: str, run_dir: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", str(path), "-q", "-k", expr, "-p", "fixtures.plugin",
                           "-p", "no:xdist", "--rootdir", str(path.parent), "--results-dir", str(run_dir),
                           "--no-report"], cwd=path.parent, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"empty-test bench failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t


def bench_empty_test(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "test_empty.py"
        path.write_text(EMPTY.format(n=n, n2=2 * n))
        pair = _pytest_time(path, "empty_pair", Path(tmp) / "a")
        bare = _pytest_time(path, "bare", Path(tmp) / "b")
    per = (pair - bare) / (2 * n) * 1e3
    print(f"empty test through the pair fixture: {per:.1f} ms overhead per test "
          f"({2 * n} tests: {pair:.2f} s vs {bare:.2f} s bare, evidence and pcap included)")


def bench_suite(workers: str) -> None:
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-m", "pytest", "conformance", "-q", "-m", "not slow", "-n", workers,
                               "--results-dir", tmp, "--no-report"], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t
    tail = [line for line in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    print(f"conformance (not slow) at -n {workers}: {wall:.1f} s wall; {tail[-1] if tail else proc.stdout[-300:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setups", type=int, default=60)
    parser.add_argument("--skip-suite", action="store_true", help="do not time the conformance run")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_harness needs root (it creates network namespaces)")
    print(f"sockconf harness bench on {os.uname().release}, {os.cpu_count()} cpus")
    bench_setup(args.setups)
    for n in (10_000, 50_000):
        bench_capture(n)
    bench_clocks(30)
    bench_empty_test(20)
    if not args.skip_suite:
        bench_suite("1")
        bench_suite("auto")


if __name__ == "__main__":
    main()
