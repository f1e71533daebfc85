"""Small helpers for the shutdown and orderings areas, written so that they can move into fixtures/ later.

- `pinned_probes` (autouse fixture) / `pin_probes(lab)`: a workaround for a harness bug. pyroute2 0.9 keeps
  its netlink socket *per thread* (NetlinkSocketBase.socket is a threading.local, created lazily in the
  namespace of the thread that first uses it). StateProbe creates its DiagSocket inside the test namespace
  from the test's thread, but the Sampler's background thread gets a second socket, created in the *host*
  namespace, where the test's sockets do not exist: every background sample reads "gone", and the state
  timeline alternates between the real state and a false CLOSED (so expect_states_seen can match a CLOSED
  that never happened, and short states are only seen when the test itself polls). The fix: all queries of a
  probe run on one worker thread whose netlink socket was created inside the probe's namespace. The proper
  fix in fixtures/states.py is the same idea, or `with ns.inside():` around each query in StateProbe.
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
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from pyroute2 import DiagSocket

from fixtures.endpoint import Syscall
from fixtures.lab import IFNAMES, SERVER_PORT, Lab
from fixtures.wire import Segment
from netns.namespace import Namespace

ETH_P_ALL = 0x0003


class NamespacedDiag:
    """A drop-in for StateProbe._diag: every query runs on one worker thread whose netlink socket was
    created inside `ns` (and is closed by that same thread, so pyroute2 leaves nothing open)."""

    def __init__(self, ns: Namespace, original: DiagSocket) -> None:
        self.original = original
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"diag-{ns.name}")
        self.diag: DiagSocket = self.pool.submit(self._open, ns).result()

    @staticmethod
    def _open(ns: Namespace) -> DiagSocket:
        with ns.inside():
            diag = DiagSocket()
            diag.bind()
            diag.get_sock_stats(family=socket.AF_INET)  # this thread's netlink socket is made here
        return diag

    def get_sock_stats(self, **kwargs: object) -> tuple:
        return self.pool.submit(self.diag.get_sock_stats, **kwargs).result()

    def close(self) -> None:
        try:
            self.pool.submit(self.diag.close).result()
        finally:
            self.pool.shutdown()
            self.original.close()


def pin_probes(lab: Lab) -> None:
    """Make every thread's sock_diag queries go to the test namespaces (see the module docstring)."""
    for side, probe in lab.probes.items():
        if not isinstance(probe._diag, NamespacedDiag):
            probe._diag = NamespacedDiag(lab.namespaces[side], probe._diag)


@pytest.fixture(autouse=True)
def pinned_probes(lab: Lab) -> Lab:
    """Autouse in this area's modules: it runs before `pair` connects, so the sampler never reads the host."""
    pin_probes(lab)
    return lab


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
