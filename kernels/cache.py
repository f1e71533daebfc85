"""Where the runner keeps what it fetches and builds: $SOCKCONF_CACHE, else /var/cache/sockconf.

Layout:
    kernels/debian/<package>_<version>/   an unpacked linux-image package: boot/, lib/modules/<release> (depmod-ed),
                                          sockconf-kernel.json (what it is); made in a temp dir, renamed when done
    kernels/layouts/<key>/                boot/vmlinuz-<release> + lib/modules/<release> for a user-given image or
                                          build tree (symlinks into it, modules.dep made here, never in the tree)
    bin/virtiofsd                          the flag-translating shim (kernels/virtiofsd_shim.py), first on vng's PATH
    bin/ro-view/                           empty mount point for the shim's read-only views (private namespaces)
    kvm-probe.json                         whether /dev/kvm ran a guest CPU, per host kernel and qemu version

The guest mounts a tmpfs on /var/cache, so the runner exports this directory to the guest read-only
(vng --rodir) when it lies below /var/cache: that is how the guest finds the modules of a cached kernel.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT = Path("/var/cache/sockconf")
ENV = "SOCKCONF_CACHE"


def cache_dir() -> Path:
    path = Path(os.environ.get(ENV) or DEFAULT).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def locked(name: str = "kernels") -> Iterator[None]:
    """An exclusive lock on the cache for fetching/unpacking (runs of a matrix may start side by side)."""
    path = cache_dir() / f".{name}.lock"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
