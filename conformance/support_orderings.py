"""Helpers for the shutdown area.

- `signal_blocked(signum)`: see whether a syscall raised a signal (SIGPIPE) although Python ignores it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

ETH_P_ALL = 0x0003


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
