"""Helpers for the close/SO_LINGER areas (test_linger.py, test_close_data.py):

- `small_window_pair(lab)`: a pair whose server advertises a small receive buffer, to reach a zero window fast.
- `fill(endpoint)`: write until the send buffer is full (non-blocking), return the bytes accepted.
- `Holder`: a child process, started from a thread inside the client namespace, that holds a dup of an
  endpoint's descriptor (so the socket is closed by the child's exit or kill, not by close()).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

from fixtures.endpoint import Endpoint
from fixtures.lab import Lab

CHUNK = 16384


def small_window_pair(lab: Lab, rcvbuf: int = 4096) -> Lab:
    """listen() with a small SO_RCVBUF (inherited by the accepted socket), connect(), accept()."""
    lab.listen()
    lab.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf, label=f"SO_RCVBUF {rcvbuf}")
    lab.client = lab.connect_client()
    lab.server = lab.accept()
    lab.wire.allow("client", "A", why="data beyond the small receive buffer is dropped by the receiver and sent "
                                      "again (the small-window set-up)")
    return lab


def fill(ep: Endpoint, settle_s: float = 0.05) -> int:
    """Write until send() would block (the peer's window and our send buffer are full); the socket is left
    blocking. Returns the bytes the kernel accepted. Waits `settle_s` between attempts so that what the
    peer's window admits has left before we conclude the buffer is full."""
    def send_until_full() -> int:
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
        return total

    return ep.log.record(ep.name, "send", "until EAGAIN", send_until_full)


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
