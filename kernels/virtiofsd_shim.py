"""A `virtiofsd` that speaks the Rust daemon's flags and runs Debian 12's C virtiofsd (QEMU 7.2).

virtme-ng starts `virtiofsd --syslog --no-announce-submounts [--readonly] --socket-path S --shared-dir D
--sandbox none --cache C` and waits for `S.pid`. Debian 12's /usr/lib/qemu/virtiofsd is QEMU's C daemon: it takes
`--socket-path=S -o source=D -o cache=C -o sandbox=chroot`, has no read-only mode and writes its pid file under
/run/virtiofsd. Unshimmed, vng falls back to 9p (slow; cloud kernels lack 9p and do not boot).

This file is self-contained (stdlib only): kernels/guest.py copies it into the cache as `<cache>/bin/virtiofsd`
with the host interpreter as its shebang and puts that directory first on vng's PATH.

Read-only exports (`--readonly`, which vng passes for the host root because our `--help` advertises it) are
enforced here, not trusted to the guest: the C daemon runs in a private mount namespace in which the shared
directory is bind-mounted on itself and made read-only recursively (mount_setattr AT_RECURSIVE), so a guest
that remounts its root read-write still cannot write to the host. The host's mounts are not touched.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

C_VIRTIOFSD = os.environ.get("SOCKCONF_C_VIRTIOFSD", "/usr/lib/qemu/virtiofsd")
LOG_ENV = "SOCKCONF_VIRTIOFSD_LOG"  # if set, the C daemon's stderr is appended there (the runner sets it)
MNT_ENV = "SOCKCONF_VIRTIOFSD_MNT"  # where read-only views are mounted (default: ro-view beside this script)

HELP = """virtiofsd (sockconf shim over QEMU's C virtiofsd)
Options understood (Rust virtiofsd spelling):
  --shared-dir <dir>   --socket-path <path>   --cache <auto|always|never|metadata>
  --sandbox <namespace|chroot|none>   --readonly   --posix-acl   --xattr   --syslog
  --announce-submounts   --no-announce-submounts   --thread-pool-size <n>   --log-level <level>
  --fd <n> (not supported)   -V, --version   -h, --help
"""

_CACHE = {"auto": "auto", "always": "always", "never": "none", "none": "none", "metadata": "auto"}
_LOG_LEVEL = {"error": "err", "warn": "warn", "info": "info", "debug": "debug", "trace": "debug", "off": "err"}
_VALUE_FLAGS = ("--shared-dir", "--socket-path", "--cache", "--sandbox", "--thread-pool-size", "--log-level",
                "--socket-group", "--inode-file-handles", "--rlimit-nofile", "--xattrmap", "--modcaps")
_BOOL_FLAGS = ("--readonly", "--posix-acl", "--xattr", "--syslog", "--announce-submounts",
               "--no-announce-submounts", "--allow-direct-io", "--writeback", "--no-killpriv-v2",
               "--killpriv-v2", "--security-label", "--print-capabilities")


class ShimUsage(Exception):
    """A flag the shim cannot translate: exit 2 (vng then falls back to 9p and says so)."""


def parse_rust_flags(argv: list[str]) -> dict[str, object]:
    """Rust-virtiofsd argv (without argv[0]) -> {flag: value or True}. `--flag=value` and `--flag value` both work;
    `-o` style arguments (already C spelling) are kept in order under "-o"."""
    flags: dict[str, object] = {"-o": []}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name == "-o":
            if i + 1 >= len(argv):
                raise ShimUsage("-o needs a value")
            flags["-o"].append(argv[i + 1])  # type: ignore[union-attr]
            i += 2
            continue
        if name in _VALUE_FLAGS:
            if not eq:
                if i + 1 >= len(argv):
                    raise ShimUsage(f"{name} needs a value")
                value = argv[i + 1]
                i += 1
            flags[name] = value
        elif name in _BOOL_FLAGS and not eq:
            flags[name] = True
        else:
            raise ShimUsage(f"unsupported flag {arg!r}")
        i += 1
    return flags


def translate(argv: list[str], readonly_view: str | None = None) -> tuple[list[str], dict[str, object]]:
    """Rust flags -> (C virtiofsd argv without the program, parsed flags). With --readonly the exported source is
    `readonly_view` (where main() mounts the read-only view). The sandbox is always chroot: "none" does not exist
    in the C daemon (chroot into the source is its closest: no namespaces of its own)."""
    flags = parse_rust_flags(argv)
    if "--socket-path" not in flags or "--shared-dir" not in flags:
        raise ShimUsage("--socket-path and --shared-dir are required")
    cache = str(flags.get("--cache", "auto"))
    if cache not in _CACHE:
        raise ShimUsage(f"unknown cache mode {cache!r}")
    source = readonly_view if flags.get("--readonly") and readonly_view else flags["--shared-dir"]
    out = [f"--socket-path={flags['--socket-path']}", "-o", f"source={source}",
           "-o", f"cache={_CACHE[cache]}", "-o", "sandbox=chroot"]
    # --syslog is dropped: the C daemon dies on it when /dev/log is not reachable (after chroot); its stderr goes
    # where vng (or SOCKCONF_VIRTIOFSD_LOG) sends it.
    if flags.get("--announce-submounts"):
        out += ["-o", "announce_submounts"]
    if flags.get("--posix-acl"):
        out += ["-o", "xattr", "-o", "posix_acl"]
    elif flags.get("--xattr"):
        out += ["-o", "xattr"]
    if "--xattrmap" in flags:
        out += ["-o", f"xattrmap={flags['--xattrmap']}"]
    if "--thread-pool-size" in flags:
        out.append(f"--thread-pool-size={flags['--thread-pool-size']}")
    if "--log-level" in flags:
        level = str(flags["--log-level"])
        out += ["-o", f"log_level={_LOG_LEVEL.get(level, 'info')}"]
    if "--socket-group" in flags:
        out.append(f"--socket-group={flags['--socket-group']}")
    if "--modcaps" in flags:
        out += ["-o", f"modcaps={flags['--modcaps']}"]
    if "--rlimit-nofile" in flags:
        out.append(f"--rlimit-nofile={flags['--rlimit-nofile']}")
    for opt in flags["-o"]:  # type: ignore[union-attr]
        out += ["-o", str(opt)]
    return out, flags


# --- read-only export in a private mount namespace -----------------------------------------------------------

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # x86_64 (and every arch using the generic table)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def readonly_mountpoint() -> str:
    """An empty directory the read-only view is mounted on (inside the private namespace only; the same directory
    serves every daemon, each in its own namespace): beside this script, i.e. in sockconf's cache."""
    return os.environ.get(MNT_ENV) or os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "ro-view")


def make_readonly_view(path: str, mountpoint: str) -> None:
    """In a new private mount namespace (this process only), bind `path` with every mount below it on `mountpoint`
    and make that whole tree read-only. The daemon's own files (its socket, its pid file under /run) stay
    writable: only the exported view is read-only."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    src, dst = os.fsencode(path), os.fsencode(mountpoint)
    _check(libc.mount(src, dst, None, MS_BIND | MS_REC, None), f"bind {path} on {mountpoint}")
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    ret = libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, dst, AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret == 0:
        return
    # Kernels before 5.12: remount every mount at or below the view read-only, one by one.
    prefix = mountpoint.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in points:
        if point == mountpoint or point.startswith(prefix):
            _check(libc.mount(None, os.fsencode(point), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None),
                   f"remount {point} read-only")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-V", "--version"):
        os.execv(C_VIRTIOFSD, [C_VIRTIOFSD, "--version"])
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(HELP)
        return 0
    view = readonly_mountpoint()
    try:
        c_args, flags = translate(argv, view)
    except ShimUsage as exc:
        sys.stderr.write(f"virtiofsd shim: {exc}\n")
        return 2
    sock = str(flags["--socket-path"])
    shared = os.path.realpath(str(flags["--shared-dir"]))
    log = os.environ.get(LOG_ENV)
    child = os.fork()
    if child == 0:
        try:
            if log:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(fd, 2)
            if flags.get("--readonly"):
                os.makedirs(view, exist_ok=True)
                make_readonly_view(shared, view)
            os.execv(C_VIRTIOFSD, [C_VIRTIOFSD, *c_args])
        except OSError as exc:
            os.write(2, f"virtiofsd shim: {exc}\n".encode())
        os._exit(127)
    # vng waits for "<socket>.pid" and then starts qemu, which connects at once: write it only when the socket
    # exists. vng SIGTERMs that pid at exit; the C daemon also exits when qemu disconnects.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            sys.stderr.write(f"virtiofsd shim: C virtiofsd exited at start (status {status})\n")
            return 1
        if os.path.exists(sock):
            tmp = f"{sock}.pid.tmp"
            with open(tmp, "w") as f:
                f.write(f"{child}\n")
            os.replace(tmp, f"{sock}.pid")
            return 0
        time.sleep(0.01)
    sys.stderr.write("virtiofsd shim: no socket after 5 s\n")
    os.kill(child, 15)
    return 1


if __name__ == "__main__":
    sys.exit(main())
