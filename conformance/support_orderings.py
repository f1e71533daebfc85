"""Small helpers for the shutdown and orderings areas, written so that they can move into fixtures/ later.

- `replay(lab, segment)`: send the exact captured frame of a segment again from its sender's namespace: the
  kernel's own TCP options (timestamps included) so that PAWS accepts it. It is a segment delayed in the
  network, which is how crossing FINs are made deterministic.
- `connect(lab, name)`: connect() an adopted, bound client socket to the listener, logged and watched.
- `signal_blocked(signum)`: see whether a syscall raised a signal (SIGPIPE) although Python ignores it.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fixtures.endpoint import Syscall
from fixtures.lab import IFNAMES, SERVER_PORT, Lab
from fixtures.wire import Segment

ETH_P_ALL = 0x0003


def replay(lab: Lab, segment: Segment) -> None:
    """Send the captured frame of `segment` again, from its sender's namespace over its veth (logged)."""
    lab.wire.segments()
    frames = [f for f in lab.wire.frames if f.ts == segment.ts]
    if len(frames) != 1:
        raise LookupError(f"no unique captured frame for segment {segment.index}")
    ns = lab.namespaces[segment.sender]
    sock = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        with ns.inside():
            sock.bind((IFNAMES[segment.sender], ETH_P_ALL))
        at = time.time()
        sock.send(frames[0].data)
        lab.log.calls.append(Syscall(at, time.time(), f"{segment.sender}(replayed)", "inject",
                                     f"[{segment.flags}] seq {segment.seq} ack {segment.ack} len {segment.length}"
                                     f" (a copy of the segment sent at {segment.ts - lab.t0:+.4f} s)", "0", None))
    finally:
        sock.close()


def connect(lab: Lab, name: str, port: int = SERVER_PORT) -> None:
    """connect() an adopted client-side endpoint (bound beforehand) to the listener, logged and watched."""
    ep = lab.endpoints[name]
    lab.log.record(name, "connect", f"[{lab.family.server}]:{port}",
                   lambda: ep.sock.connect((lab.family.server, port)))
    lab.sampler.watch(name, lab.probes["client"], ep.port, port)


@contextmanager
def signal_blocked(signum: int) -> Iterator[None]:
    """Block `signum` in the calling thread, so that a signal the kernel raises stays pending and can be
    checked with signal.sigpending() (kernel/signal.c sig_ignored(): a blocked signal is queued even when
    its disposition is SIG_IGN, as SIGPIPE's is in Python). A pending one is consumed before unblocking."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
    try:
        yield
    finally:
        if signum in signal.sigpending():
            signal.sigtimedwait({signum}, 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
