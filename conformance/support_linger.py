"""Helpers for the close/SO_LINGER areas (test_linger.py, test_close_data.py) that the harness lacks.

Each is small on purpose, so that it can move into fixtures/ later:

- `probes_in_namespace(lab)`: a workaround for a harness bug. pyroute2 0.9 keeps one netlink socket per
  *thread* (AsyncCoreSocket.local is a threading.local), so the state sampler's background thread lazily opens
  its own NETLINK_SOCK_DIAG socket in the namespace that thread is in, i.e. the host's: every background
  sample reads the host's sockets (it records "gone" for the test's sockets, or a host socket that happens to
  share the ports). Running each query inside the probe's namespace makes every thread's socket a test one.
- `connect_nonblocking(lab)`: a client left in SYN_SENT (Lab.connect_client() blocks until connected).
- `small_window_pair(lab)`: a pair whose server advertises a small receive buffer, to reach a zero window fast.
- `fill(endpoint)`: write until the send buffer is full (non-blocking), return the bytes accepted.
- `dup_endpoint(lab, endpoint)`: a second descriptor (dup(2)) of the same socket, logged as its own endpoint.
- `Holder`: a child process, started from a thread inside the client namespace, that holds a dup of an
  endpoint's descriptor (so the socket is closed by the child's exit or kill, not by close()).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time

from fixtures.endpoint import Endpoint
from fixtures.lab import SERVER_PORT, Lab

CHUNK = 16384


def probes_in_namespace(lab: Lab) -> Lab:
    """Make every sock_diag query of `lab` run inside its namespace, whatever thread asks (see above)."""
    for side, probe in lab.probes.items():
        ns = lab.namespaces[side]
        plain = probe.sockets

        def sockets(plain=plain, ns=ns):  # type: ignore[no-untyped-def]
            with ns.inside():
                return plain()

        probe.sockets = sockets  # type: ignore[method-assign]
    return lab


def connect_nonblocking(lab: Lab, name: str = "client", port: int = SERVER_PORT) -> Endpoint:
    """Start a connect() on a non-blocking socket and return at once (EINPROGRESS): SYN_SENT."""
    sock = lab.socket("client")
    sock.bind((lab.family.client, 0))
    sock.setblocking(False)
    ep = lab.adopt(name, sock, "client")
    rc = lab.log.record(name, "connect", f"[{lab.family.server}]:{port} (O_NONBLOCK)",
                        lambda: sock.connect_ex((lab.family.server, port)))
    if rc != errno.EINPROGRESS:
        raise AssertionError(f"non-blocking connect() returned {errno.errorcode.get(rc, rc)}, not EINPROGRESS")
    lab.sampler.watch(name, lab.probes["client"], ep.port, port)
    return ep


def small_window_pair(lab: Lab, rcvbuf: int = 4096) -> Lab:
    """listen() with a small SO_RCVBUF (inherited by the accepted socket), connect(), accept()."""
    lab.listen()
    lab.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf, label=f"SO_RCVBUF {rcvbuf}")
    lab.client = lab.connect_client()
    lab.server = lab.accept()
    return lab


def fill(ep: Endpoint, settle_s: float = 0.05) -> int:
    """Write until send() would block (the peer's window and our send buffer are full); the socket is left
    blocking. Returns the bytes the kernel accepted. Waits `settle_s` between attempts so that what the
    peer's window admits has left before we conclude the buffer is full."""
    total = 0
    ep.sock.setblocking(False)
    try:
        for _ in range(2):
            while True:
                try:
                    total += ep.sock.send(b"d" * CHUNK)
                except BlockingIOError:
                    break
            time.sleep(settle_s)
    finally:
        ep.sock.setblocking(True)
    ep.log.record(ep.name, "send", f"until EAGAIN ({total} bytes)", lambda: total)
    return total


def dup_endpoint(lab: Lab, ep: Endpoint, name: str) -> Endpoint:
    """dup(2) the endpoint's descriptor: one socket, two descriptors, each closable on its own."""
    fd = lab.log.record(ep.name, "dup", f"fd {ep.fileno()}", lambda: os.dup(ep.fileno()))
    return lab.adopt(name, socket.socket(fileno=fd), "client")


class Holder:
    """A child process that holds a copy of `ep`'s descriptor and blocks reading stdin.

    It is started from a thread inside the endpoint's namespace (so anything it did would happen there; it
    makes no socket of its own). `exit()` lets it exit normally (closing stdin ends `read`), `kill()` sends
    SIGKILL; either way the kernel closes the inherited descriptor in do_exit(), with PF_EXITING set."""

    def __init__(self, lab: Lab, ep: Endpoint, side: str = "client") -> None:
        self.lab = lab
        self.name = f"{ep.name}(child)"
        fd = ep.fileno()
        with lab.namespaces[side].inside():
            self.proc = subprocess.Popen(["sh", "-c", "read _line"], stdin=subprocess.PIPE,
                                         pass_fds=[fd], close_fds=True)
        lab.log.record(self.name, "spawn", f"pid {self.proc.pid} holding fd {fd}", lambda: self.proc.pid)

    def exit(self) -> float:
        """Let the child exit; return the time (epoch) it was reaped."""
        def go() -> int:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            return self.proc.wait(timeout=10)
        self.lab.log.record(self.name, "exit", f"pid {self.proc.pid}", go)
        return time.time()

    def kill(self) -> float:
        """SIGKILL the child (by its pid); return the time (epoch) it was reaped."""
        def go() -> int:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)
        self.lab.log.record(self.name, "kill", f"SIGKILL pid {self.proc.pid}", go)
        return time.time()

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
