"""Anonymous, throwaway network namespaces held open by a file descriptor.

A namespace is created by unshare(CLONE_NEWNET) on a short-lived helper thread and kept alive only by an fd
of that thread's /proc/thread-self/ns/net. It has no name, so it cannot collide with another pytest-xdist
worker, and it disappears with its last fd, even after SIGKILL.

setns() is per thread: ``with ns.inside():`` moves the *calling thread* into the namespace and back. Sockets
created inside stay there whatever thread uses them later. Everything that follows the calling thread's
namespace (/proc/sys/net, /proc/thread-self/net, interface-name lookups, child processes) must run inside.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

CLONE_NEWNET = 0x40000000
SO_NETNS_COOKIE = 71

if TYPE_CHECKING:  # imported where a link is built (pyroute2 takes ~0.25 s to import; a run's controller needs none)
    from pyroute2 import IPRoute

_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


class NamespaceError(RuntimeError):
    """A namespace operation failed."""


class SysctlAbsentError(FileNotFoundError):
    """A sysctl does not exist in network namespaces on the running kernel (too old, or not per-netns)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} does not exist in a network namespace on kernel {os.uname().release}")
        self.name = name


class HostNamespaceError(NamespaceError):
    """Something was about to happen in the host's network namespace."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def _run_on_thread(fn: Callable[[], T]) -> T:
    """Run fn on a fresh thread (so unshare/setns never touch the caller) and return its result."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="sockconf-netns")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def socket_netns_cookie(sock: socket.socket) -> int:
    """The cookie of the network namespace a socket lives in (stable, never reused, unlike inodes)."""
    return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little")


def current_netns_cookie() -> int:
    """The cookie of the calling thread's network namespace."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        return socket_netns_cookie(probe)


def _cookie_of_fd(fd: int) -> int:
    def probe() -> int:
        _setns(fd)
        return current_netns_cookie()

    return _run_on_thread(probe)


class HostGuard:
    """Knows the cookies of the namespaces the suite must never use: the one this process started in and
    the initial namespace (pid 1's). Computed once per process."""

    _forbidden: frozenset[int] | None = None
    _lock = threading.Lock()

    @classmethod
    def forbidden(cls) -> frozenset[int]:
        with cls._lock:
            if cls._forbidden is None:
                cookies = {cookie_of_path("/proc/self/ns/net")}
                with contextlib.suppress(OSError):
                    cookies.add(cookie_of_path("/proc/1/ns/net"))
                cls._forbidden = frozenset(cookies)
            return cls._forbidden

    @classmethod
    def check_socket(cls, sock: socket.socket, expected_cookie: int | None = None) -> int:
        """Return the socket's netns cookie; raise HostNamespaceError if it is a host namespace's."""
        cookie = socket_netns_cookie(sock)
        if cookie in cls.forbidden():
            raise HostNamespaceError(
                f"refusing socket fd {sock.fileno()}: it lives in the host network namespace "
                f"(netns cookie {cookie}); sockconf only uses namespaces it created"
            )
        if expected_cookie is not None and cookie != expected_cookie:
            raise HostNamespaceError(
                f"socket fd {sock.fileno()} lives in netns cookie {cookie}, expected {expected_cookie}"
            )
        return cookie


def check_fd(fd: int, expected_cookie: int) -> None:
    """The same guard for a socket held by a library (pyroute2's netlink sockets) by its descriptor."""
    with socket.socket(fileno=os.dup(fd)) as sock:
        HostGuard.check_socket(sock, expected_cookie)


def cookie_of_path(path: str) -> int:
    """The cookie of the network namespace behind a path (/proc/PID/ns/net, /proc/PID/fd/N, ...)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _cookie_of_fd(fd)
    finally:
        os.close(fd)


class Namespace:
    """One anonymous network namespace. Close it (or use it as a context manager) to let it vanish."""

    def __init__(self, name: str) -> None:
        self.name = name

        def create() -> tuple[int, int]:
            """unshare() on a throwaway thread, which then reads its new namespace's cookie (one thread, not two)."""
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                return fd, current_netns_cookie()
            except BaseException:
                os.close(fd)
                raise

        self.fd: int | None
        self.fd, self.cookie = _run_on_thread(create)
        if self.cookie in HostGuard.forbidden():  # cannot happen unless unshare silently failed
            self.close()
            raise HostNamespaceError("unshare(CLONE_NEWNET) did not create a new namespace")

    def __repr__(self) -> str:
        return f"<Namespace {self.name} cookie={self.cookie}>"

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    @property
    def path(self) -> str:
        """A path other processes can open to join this namespace (valid while this process lives)."""
        return f"/proc/{os.getpid()}/fd/{self._fd()}"

    def _fd(self) -> int:
        if self.fd is None:
            raise NamespaceError(f"namespace {self.name} is closed")
        return self.fd

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """Move the calling thread into this namespace for the duration of the block."""
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(self._fd())
            try:
                yield
            finally:
                _setns(back)
        finally:
            os.close(back)

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        with self.inside():
            return fn(*args, **kwargs)

    def socket(self, family: int, type_: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
        """A socket created inside this namespace, checked by netns cookie before it is returned."""
        with self.inside():
            sock = socket.socket(family, type_, proto)
        try:
            HostGuard.check_socket(sock, expected_cookie=self.cookie)
        except BaseException:
            sock.close()
            raise
        return sock

    @contextlib.contextmanager
    def iproute(self) -> Iterator[IPRoute]:
        """A pyroute2 IPRoute whose netlink socket lives in this namespace (checked by cookie)."""
        from pyroute2 import IPRoute

        with self.inside(), IPRoute() as ipr:
            check_fd(ipr.fileno(), self.cookie)
            yield ipr

    def run(self, argv: list[str], check: bool = True, input: str | None = None) -> str:
        """Run a command inside the namespace (the child inherits the calling thread's namespace)."""
        with self.inside():
            proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise NamespaceError(f"{' '.join(argv)} in {self.name}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    # --- per-namespace sysctls -------------------------------------------------------------------

    @staticmethod
    def sysctl_path(name: str) -> str:
        if not name.startswith("net.") or ".." in name or "/" in name:
            raise ValueError(f"{name!r} is not a network sysctl name (net.*)")
        return "/proc/sys/" + name.replace(".", "/")

    def sysctl_get(self, name: str) -> str:
        path = self.sysctl_path(name)
        with self.inside(), open(path) as f:
            return " ".join(f.read().split())

    def sysctl_set(self, name: str, value: str | int) -> None:
        path = self.sysctl_path(name)
        with self.inside():
            try:
                f = open(path, "w")  # noqa: SIM115 (the open itself is what may fail)
            except FileNotFoundError:
                raise SysctlAbsentError(name) from None
            with f:
                f.write(f"{value}\n")

    def read_proc_net(self, name: str) -> str:
        """/proc/net/`name` as this namespace shows it (read through /proc/thread-self, inside)."""
        if "/" in name or name.startswith("."):
            raise ValueError(f"{name!r} is not a /proc/net file name")
        with self.inside(), open(f"/proc/thread-self/net/{name}") as f:
            return f.read()

    def nstat(self) -> dict[str, int]:
        """TcpExt/IpExt/Tcp counters of this namespace (the calling thread must not matter: read inside)."""
        counters: dict[str, int] = {}
        for name in ("netstat", "snmp"):
            lines = self.read_proc_net(name).splitlines()
            for head, vals in zip(lines[::2], lines[1::2], strict=False):
                prefix, keys = head.split(":", 1)
                _, values = vals.split(":", 1)
                pairs = zip([prefix + key for key in keys.split()], values.split(), strict=False)
                try:  # every counter is an integer (one parse per line: ~5 reads per case)
                    counters.update((key, int(val)) for key, val in pairs)
                except ValueError:
                    for key, val in zip(keys.split(), values.split(), strict=False):
                        with contextlib.suppress(ValueError):
                            counters[prefix + key] = int(val)
        return counters
