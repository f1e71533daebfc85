"""How late timing-relevant events are seen on this kernel/machine: run on the host and inside a guest, the ratio
is the emulation timing factor the tolerance model needs.

    python3 -m kernels.timing_probe [--reps N]     (root: it works in a fresh network namespace of its own)

Prints one JSON object:
- prompt_fin_ms: close() on one end -> the peer's recv() returns EOF (a FIN, no timer), per repetition;
- prompt_rst_ms: close() with SO_LINGER {1,0} -> the peer's recv() fails ECONNRESET (an RST, no timer);
- orphan_fw2_late_ms: an orphaned FIN_WAIT2 with tcp_fin_timeout=1: (close -> the socket gone from
  /proc/net/tcp{,6}, polled every 2 ms) - 1000 ms;
- cpu_loop_ms: a fixed pure-Python loop (CPU speed, for reference).
Only loopback inside the probe's own namespace is used.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import socket
import struct
import sys
import threading
import time

CLONE_NEWNET = 0x40000000


def _own_netns() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) (needs root)")
    # bring lo up: SIOCSIFFLAGS on "lo"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = struct.pack("16sH14x", b"lo", 0x1 | 0x40)  # IFF_UP | IFF_RUNNING
    import fcntl

    fcntl.ioctl(s, 0x8914, ifr)
    s.close()
    with open("/proc/sys/net/ipv4/tcp_fin_timeout", "w") as f:
        f.write("1")


def _pair() -> tuple[socket.socket, socket.socket, int]:
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    cli = socket.create_connection(lst.getsockname())
    srv, _ = lst.accept()
    lst.close()
    return cli, srv, cli.getsockname()[1]


def _peer_sees(srv: socket.socket, done: list[float]) -> None:
    with contextlib.suppress(ConnectionResetError):
        srv.recv(1)
    done.append(time.time())


def prompt(linger_rst: bool) -> float:
    cli, srv, _ = _pair()
    done: list[float] = []
    t = threading.Thread(target=_peer_sees, args=(srv, done))
    t.start()
    time.sleep(0.05)  # the reader is blocked in recv()
    if linger_rst:
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    t0 = time.time()
    cli.close()
    t.join()
    srv.close()
    return (done[0] - t0) * 1000


def _in_fin_wait2(port: int) -> bool:
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if int(parts[1].split(":")[1], 16) == port and parts[3] == "05":
                return True
    return False


def orphan_fin_wait2_late() -> float:
    cli, srv, port = _pair()
    t0 = time.time()
    cli.close()  # the server never closes: the client ends orphaned in FIN_WAIT2
    deadline = t0 + 10
    seen = False
    while time.time() < deadline:
        there = _in_fin_wait2(port)
        seen = seen or there
        if seen and not there:
            break
        time.sleep(0.002)
    gone = time.time()
    srv.close()
    return (gone - t0 - 1.0) * 1000


def cpu_loop() -> float:
    t0 = time.perf_counter()
    x = 0
    for i in range(300_000):
        x += i * i % 7
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--fw2-reps", type=int, default=3)
    args = ap.parse_args()
    _own_netns()
    out = {
        "kernel": os.uname().release,
        "emulated": os.environ.get("SOCKCONF_EMULATED", ""),
        "cpu_loop_ms": [round(cpu_loop(), 1) for _ in range(3)],
        "prompt_fin_ms": [round(prompt(False), 2) for _ in range(args.reps)],
        "prompt_rst_ms": [round(prompt(True), 2) for _ in range(args.reps)],
        "orphan_fw2_late_ms": [round(orphan_fin_wait2_late(), 1) for _ in range(args.fw2_reps)],
    }
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
