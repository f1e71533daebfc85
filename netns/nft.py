"""nftables inside a test namespace, through libnftables: the library the `nft` command is a thin front end of
(libnftables(3)), called in this process with ctypes instead of running the command.

Why not the command: a case that drops segments or silences a scripted peer runs one to three nft scripts, and
each `nft` run cost ~11 ms of CPU on the host (start-up: exec, dynamic linking, its tables) and 0.3-0.9 s in an
emulated guest. The library parses and sends the same script the same way; only the process start is gone.

Where a script applies: libnftables talks to the kernel over a netlink socket it opens itself, in the network
namespace of the thread that opens it. Every call here creates its context, runs the script and frees the
context with the calling thread inside the test namespace (Namespace.inside(), which also refuses the host's), so
the socket is opened in that namespace whichever of those steps opens it, and is closed before the thread leaves.
"""

from __future__ import annotations

import ctypes
import threading

from netns.namespace import Namespace, NamespaceError, current_netns_cookie

LIBRARY = "libnftables.so.1"  # Debian package libnftables1 (a dependency of nftables)
# libnftables.h: enum nft_output_flags (the command's --handle, --json and --echo)
OUTPUT_HANDLE = 1 << 3
OUTPUT_JSON = 1 << 4
OUTPUT_ECHO = 1 << 5
CTX_DEFAULT = 0

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


class NftError(NamespaceError):
    """libnftables refused a script (its error text is the message), or could not be loaded."""


def _library() -> ctypes.CDLL:
    global _lib
    with _lock:
        if _lib is None:
            try:
                lib = ctypes.CDLL(LIBRARY)
            except OSError as exc:
                raise NftError(f"{LIBRARY} not found ({exc}): install the Debian package nftables") from None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.restype = None
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_output_set_flags.restype = None
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
                getattr(lib, name).restype = ctypes.c_int
                getattr(lib, name).argtypes = [ctypes.c_void_p]
            for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
                getattr(lib, name).restype = ctypes.c_char_p
                getattr(lib, name).argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            _lib = lib
        return _lib


def available() -> bool:
    try:
        _library()
    except NftError:
        return False
    return True


def run(ns: Namespace, script: str, *, echo: bool = False, handles: bool = False, json: bool = False) -> str:
    """Run an nft script in `ns` (what `nft [--echo] [--handle] [-j] -f -` does) and return its output."""
    lib = _library()
    flags = (OUTPUT_ECHO if echo else 0) | (OUTPUT_HANDLE if handles else 0) | (OUTPUT_JSON if json else 0)
    with ns.inside():
        if current_netns_cookie() != ns.cookie:  # inside() moved this thread: a library's socket follows it
            raise NamespaceError(f"nft: the calling thread is not in namespace {ns.name}")
        ctx = lib.nft_ctx_new(CTX_DEFAULT)
        if not ctx:
            raise NftError("nft: nft_ctx_new() failed")
        try:
            lib.nft_ctx_output_set_flags(ctx, flags)
            if lib.nft_ctx_buffer_output(ctx) or lib.nft_ctx_buffer_error(ctx):
                raise NftError("nft: cannot buffer libnftables' output")
            status = lib.nft_run_cmd_from_buffer(ctx, script.encode())
            out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
            err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        finally:
            lib.nft_ctx_free(ctx)
    if status != 0:
        raise NftError(f"nft in {ns.name}: {err.strip() or f'status {status}'}")
    return out
