"""Run one shell command in a virtme-ng guest booting a given kernel, with this host's root filesystem shared
read-only and one run directory shared read-write.

The Debian 12 snags (../shared/FIELD-NOTES.md, "Other kernels") are handled here:
- vng passes Rust-virtiofsd flags; Debian 12 has QEMU's C virtiofsd: a flag-translating shim
  (kernels/virtiofsd_shim.py) is installed as <cache>/bin/virtiofsd and put first on vng's PATH. It also keeps
  read-only exports read-only on the host side (the C daemon has no --readonly).
- udev coldplug loads ~20 modules useless here under TCG (kvm, crypto accelerators, cpufreq, input):
  `modprobe.blacklist=` on the kernel command line (BLACKLIST, measured in bench/bench_kernels.py).
- vng reopens /proc/self/fd/1 and 2: its output always goes through pipes that we read (never a file).
- HOME is read-only in the guest: HOME points into the run directory; pytest runs with -p no:cacheprovider.
- the guest's PATH lacks pyenv shims: the command uses this interpreter's full path (sys.executable).
- the guest mounts a tmpfs on /var/cache: the cache directory (unpacked kernels' modules) is exported
  read-only to the guest with --rodir when it lies there.

Boot is bounded: the command first prints a marker; if it is not seen within the boot timeout (or vng exits
before it), the guest is killed and booted once more, then NoBoot is raised with the console's tail. After the
marker, the guest's death (vng exiting without the command's exit-status marker, or the run timeout) is GuestDied.
Every process is started in a new session and ended by its process group: vng, qemu and the virtiofsd daemons.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from kernels.cache import cache_dir
from kernels.errors import GuestDied, HostTools, NoBoot
from kernels.spec import Kernel

REPO = Path(__file__).resolve().parent.parent
C_VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
UP = "@@SOCKCONF-GUEST-UP@@"
RC = "@@SOCKCONF-GUEST-RC@@"
RO_FAIL = "@@SOCKCONF-GUEST-RW-ROOT@@"
ROOT_PROBE = "/.sockconf-guest-probe"  # touched in the guest; must fail on a read-only root
# Modules udev coldplug loads in a TCG guest of a Debian cloud kernel, none of which the suite uses (seen in
# /proc/modules after a trivial boot): KVM inside the guest, CPU-accelerated crypto and CRC (each registers
# and self-tests its algorithms, slow under emulation), cpufreq, input and firmware-config drivers.
BLACKLIST = (
    "kvm", "kvm_amd", "kvm_intel", "irqbypass",
    "aesni_intel", "crypto_simd", "cryptd", "ghash_clmulni_intel", "polyval_clmulni", "polyval_generic",
    "crc32_pclmul", "crc32c_intel", "crct10dif_pclmul", "sha1_ssse3", "sha256_ssse3", "sha512_ssse3",
    "sha512_generic", "sha3_generic", "aria_aesni_avx_x86_64", "sm4_aesni_avx_x86_64", "camellia_aesni_avx_x86_64",
    "powernow_k8", "acpi_cpufreq", "amd_pstate", "intel_pstate", "pcspkr", "evdev", "serio_raw", "button",
    "qemu_fw_cfg", "i2c_i801", "i2c_smbus", "lpc_ich", "joydev", "sg", "rapl", "intel_rapl_msr",
    "intel_rapl_common", "ghash_generic",
)
APT_PACKAGES = ("qemu-system-x86", "busybox-static", "kmod", "udev")


@dataclass
class GuestResult:
    returncode: int
    release: str
    version: str
    accel: str  # "tcg" (emulated) or "kvm"
    boot_s: float  # vng start -> the command's first line (the marker)
    command_s: float  # the marker -> vng exited
    wall_s: float
    attempts: int
    console: str  # path of the console log (all of vng's output)
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class Options:
    cpus: int = 2
    memory: str = "2G"
    kvm: str = "auto"  # auto | yes | no
    boot_timeout_s: float = 0.0  # 0: 300 s under TCG, 120 s under KVM
    run_timeout_s: float = 6 * 3600.0
    nice: int = int(os.environ.get("SOCKCONF_GUEST_NICE", "0") or 0)  # >0: nice -n N ionice -c3 for every qemu
    blacklist: tuple[str, ...] = BLACKLIST
    relay: IO[str] | None = None  # where the command's output is copied live (default sys.stdout)


def _which_vng() -> str | None:
    beside = Path(sys.executable).parent / "vng"
    return str(beside) if beside.exists() else shutil.which("vng")


def check_host_tools() -> str:
    """vng and what it runs; HostTools naming what to install. Returns vng's path."""
    vng = _which_vng()
    lacking = []
    if vng is None:
        lacking.append("vng (pip: virtme-ng)")
    for tool, pkg in (("qemu-system-x86_64", "qemu-system-x86"), ("busybox", "busybox-static"),
                      ("depmod", "kmod"), ("udevadm", "udev")):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists() \
                and not Path(f"/bin/{tool}").exists():
            lacking.append(f"{tool} (apt: {pkg})")
    if not os.access(C_VIRTIOFSD, os.X_OK):
        lacking.append(f"{C_VIRTIOFSD} (apt: qemu-system-common)")
    if lacking:
        raise HostTools(f"a guest run needs {', '.join(lacking)}; install: apt-get install "
                        f"{' '.join(APT_PACKAGES)}; pip install virtme-ng")
    return str(vng)


def install_shim() -> Path:
    """<cache>/bin/virtiofsd: the shim with this interpreter as its shebang (rewritten only when it changed)."""
    bin_dir = cache_dir() / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "ro-view").mkdir(exist_ok=True)
    src = (Path(__file__).parent / "virtiofsd_shim.py").read_text()
    text = f"#!{sys.executable}\n{src}"
    target = bin_dir / "virtiofsd"
    if not target.exists() or target.read_text() != text:
        tmp = bin_dir / f".virtiofsd.{os.getpid()}"
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(target)
    return bin_dir


def nice_prefix(nice: int) -> list[str]:
    return ["nice", "-n", str(nice), "ionice", "-c3"] if nice > 0 else []


def kvm_usable(opts: Options) -> tuple[bool, str]:
    """Whether qemu can run a guest CPU with KVM here, by trying (-cpu host, stopped at start: a broken KVM
    aborts at once, a working one idles until we end it). Cached per host kernel and qemu version."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no accessible /dev/kvm"
    qemu = shutil.which("qemu-system-x86_64") or "qemu-system-x86_64"
    ver = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    key = f"{os.uname().release} | {ver}"
    probe_file = cache_dir() / "kvm-probe.json"
    try:
        known = json.loads(probe_file.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return bool(known[key]["usable"]), str(known[key]["why"])
    argv = [*nice_prefix(opts.nice), qemu, "-machine", "q35,accel=kvm", "-cpu", "host", "-nodefaults",
            "-display", "none", "-no-reboot", "-m", "64", "-S", "-serial", "none", "-monitor", "none"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=3)
        usable, why = False, (err.strip().splitlines() or [f"qemu exited {proc.returncode}"])[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        usable, why = True, "qemu -accel kvm -cpu host ran"
    known[key] = {"usable": usable, "why": why}
    probe_file.write_text(json.dumps(known, indent=1))
    return usable, why


# The first nft run of a boot loads nf_tables and the modules of the expressions the drop rules use (modprobe),
# and reads nft and its libraries from the host's file system: ~2 s under TCG, later runs 0.3-0.9 s. A
# case's first drop rule then came after a 1 s keepalive idle time (the dead-peer case, first in line as the
# longest). So the guest runs one such rule set in a throwaway network namespace before the command; a failure
# here is left to the cases to report.
NFT_WARM_UP = (
    "printf '%s\\n' 'table inet sockconf_warm_up {' 'chain pre {' "
    "'type filter hook prerouting priority -300; policy accept;' "
    "'meta l4proto tcp tcp flags & (syn|ack) == syn|ack ip ttl 64 limit rate 1/hour burst 1 packets counter drop' "
    "'meta l4proto tcp tcp ackseq 1 ip6 hoplimit 64 counter drop' '}' '}' "
    "| unshare --net nft -f - >/dev/null 2>&1 || true"
)


# Every capture socket asks for packet timestamps (SO_TIMESTAMPNS), which enables the static key
# netstamp_needed_key while one exists; with no other user in the guest, each case switched it on and off, and
# every switch live-patches kernel text (text_poke_bp(): an int3 on each branch site first). Under TCG with 2 vCPUs
# a 6.12.117 guest died of such an int3 twice, in netif_rx_internal+0x1e and ip_local_deliver_finish+0x26 (both
# sites of that key: net_timestamp_check(), skb_clear_delivery_time()), "Oops: int3 ... Fatal exception in
# interrupt". A socket holding timestamps on for the whole run keeps the key enabled: no patching after the first.
HOLD_TIMESTAMPS = (
    "python3 -c 'import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
    "s.setsockopt(socket.SOL_SOCKET, 35, 1); time.sleep(10 ** 9)' &"  # 35: SO_TIMESTAMPNS (netns/capture.py)
)


# The same for netfilter: nf_hook()'s fast path is a static key per (family, hook), nf_hooks_needed, enabled while
# any namespace has a hook there. Each case with a drop rule creates and deletes an inet table with a prerouting
# chain (netns/faults.py), each scripted peer one with an output chain (fixtures/scripted.py), so with no other
# user every such case patched kernel text twice. A 6.12.117 guest (2 vCPUs, TCG, default selection at 2 workers)
# died of an `Oops: int3` in ip6_xmit+0x2fd, 86 cases in: a `jmp` at its NF_HOOK(NFPROTO_IPV6, NF_INET_LOCAL_OUT)
# site, the output hook's key. A namespace holding a chain on every inet hook for the whole run keeps those keys
# enabled: patched once.
NF_HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
HOLD_NF_HOOKS = (
    "unshare --net sh -c " + shlex.quote(
        "printf '%s\\n' 'table inet sockconf_hold {' "
        + " ".join(f"'chain {hook} {{ type filter hook {hook} priority 0; policy accept; }}'" for hook in NF_HOOKS)
        + " '}' | nft -f - && exec sleep 1000000000") + " >/dev/null 2>&1 &"
)


def guest_script(command: str, run_dir: Path, accel: str, env: dict[str, str] | None = None) -> str:
    """The shell script the guest runs: the boot marker (with uname), the environment, a check that the host's
    root filesystem (the repository) is read-only, the nft warm-up, the timestamp and netfilter hook holders, the
    command, and
    its exit status marker."""
    home = run_dir / "guest" / "home"
    exports = {
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        # Read the host's .pyc files where they are (a PYTHONPYCACHEPREFIX would hide them and make every guest
        # recompile scapy & co. under emulation), never write any: the repository is read-only here.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",  # the command's output is relayed line by line as it comes
        "SOCKCONF_GUEST": "1",
        "SOCKCONF_GUEST_ACCEL": accel,
        **({"SOCKCONF_EMULATED": "tcg"} if accel == "tcg" else {}),
        **(env or {}),
    }
    lines = [
        "#!/bin/sh",
        f'printf "%s %s\\t%s\\n" {UP} "$(uname -r)" "$(uname -v)"',
        *(f"export {k}={shlex.quote(v)}" for k, v in exports.items()),
        f"mkdir -p {shlex.quote(str(home))}",
        f"cd {shlex.quote(str(REPO))} || exit 97",
        # The guest must never write to the host: its root (the host's root fs) has to be read-only.
        # Probe "/" itself: vng puts a guest-private overlay on /tmp, /home, /var, ... so a repository
        # under one of those looks writable although no write would reach the host.
        f"if touch {ROOT_PROBE} 2>/dev/null; then rm -f {ROOT_PROBE}; echo {RO_FAIL}; exit 98; fi",
        NFT_WARM_UP,
        HOLD_TIMESTAMPS,
        HOLD_NF_HOOKS,
        command,
        "rc=$?",
        f'echo "{RC} $rc"',
        "exit $rc",
    ]
    return "\n".join(lines) + "\n"


KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\]")


class _Attempt:
    """One vng process: its output read on two threads, the marker and exit status found in it."""

    def __init__(self, argv: list[str], env: dict[str, str], console: Path, relay: IO[str]) -> None:
        self.console = open(console, "w")  # noqa: SIM115  (closed in finish())
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self.up = threading.Event()
        self.up_at = 0.0
        self.uname = ("", "")
        self.rc: int | None = None
        self.rw_root = False
        self.relay = relay
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True, text=True,
                                     errors="replace", bufsize=1)
        self.readers = [threading.Thread(target=self._read, args=(s, n), daemon=True)
                        for s, n in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for t in self.readers:
            t.start()

    def _read(self, stream: IO[str], name: str) -> None:
        for line in stream:
            now = time.monotonic()
            line = line.rstrip("\r\n")
            with self.lock:
                self.console.write(f"{now - self.started:9.3f} {name} {line}\n")
                self.console.flush()
                self.tail.append(line)
            if line.startswith(UP):
                self.up_at = now
                rest = line[len(UP):].strip()
                rel, _, ver = rest.partition("\t")
                self.uname = (rel.strip(), ver.strip())
                self.up.set()
            elif line.startswith(RC):
                try:
                    self.rc = int(line[len(RC):].strip())
                except ValueError:
                    self.rc = 255
            elif line.startswith(RO_FAIL):
                self.rw_root = True
            elif self.up.is_set() and not KERNEL_LINE.match(line) and not line.startswith("virtme"):
                self.relay.write(line + "\n")
                self.relay.flush()

    def kill(self) -> None:
        """End vng, qemu and the virtiofsd daemons: all are in the session vng leads."""
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        self.reap_group()

    def reap_group(self) -> None:
        """After vng exited: whatever is left of its process group (a virtiofsd that did not see qemu go)."""
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            time.sleep(0.5)

    def finish(self) -> None:
        for t in self.readers:
            t.join(timeout=5)
        with self.lock:
            self.console.close()

    def tail_text(self, n: int = 40) -> str:
        with self.lock:
            return "\n".join(list(self.tail)[-n:])


def vng_argv(vng: str, kernel: Kernel, run_dir: Path, script: Path, accel: str, opts: Options) -> list[str]:
    argv = [*nice_prefix(opts.nice), vng, "--run", str(kernel.image), "--verbose",
            "--cpus", str(opts.cpus), "--memory", opts.memory, "--name", "sockconf-guest",
            "--rwdir", str(run_dir)]
    cache = cache_dir()
    if cache == Path("/var/cache") or Path("/var/cache") in cache.parents:
        argv += ["--rodir", str(cache)]
    if accel == "tcg":
        argv.append("--disable-kvm")
    if opts.blacklist:
        argv += ["--append", "modprobe.blacklist=" + ",".join(opts.blacklist)]
    argv += ["--exec", f"sh {shlex.quote(str(script))}"]
    return argv


# The repository's Python, compiled on the host before boot. The guest reads .pyc files and never writes them (its
# root is read-only), so without them every guest process (pytest's controller and each worker) compiles every
# module it imports, under emulation. A fresh clone has none: pip installs the project editable, uncompiled.
PACKAGES = ("conformance", "fixtures", "netns", "reports", "kernels", "conftest.py")


def precompile(repo: Path = REPO) -> list[str]:
    """Compile the repository's modules on the host (where .pyc files are missing or stale); return what could not
    be compiled (a read-only checkout: the guest then compiles them itself, slower)."""
    import compileall  # only the runner needs it

    failed = []
    for name in PACKAGES:
        path = repo / name
        ok = compileall.compile_file(path, quiet=2) if path.is_file() else \
            compileall.compile_dir(path, quiet=2, workers=1)
        if not ok:
            failed.append(name)
    return failed


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """A SIGTERM to this process interrupts it like Ctrl-C while a guest runs, so that the guest (vng, qemu,
    virtiofsd: a session of their own) is ended, not left behind by a runner that was simply terminated (CI
    cancelling a job, `kill PID`). Only the main thread can set a handler; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(kernel: Kernel, command: str, run_dir: Path, opts: Options | None = None,
        env: dict[str, str] | None = None) -> GuestResult:
    """Boot `kernel`, run `command` (shell) in the repository directory, return its exit status and the facts."""
    with _sigterm_interrupts():
        return _run(kernel, command, run_dir, opts or Options(), env)


def _run(kernel: Kernel, command: str, run_dir: Path, opts: Options, env: dict[str, str] | None) -> GuestResult:
    relay = opts.relay or sys.stdout
    vng = check_host_tools()
    bin_dir = install_shim()
    uncompiled = precompile()
    if uncompiled:
        print(f"kernels: could not compile {', '.join(uncompiled)} on the host: the guest compiles them, slower",
              file=sys.stderr)
    if opts.kvm == "no":
        accel, why = "tcg", "--kvm no"
    else:
        usable, why = kvm_usable(opts)
        if opts.kvm == "yes" and not usable:
            raise HostTools(f"--kvm yes: KVM cannot run a guest here ({why})")
        accel = "kvm" if usable else "tcg"
    boot_timeout = opts.boot_timeout_s or (120.0 if accel == "kvm" else 300.0)
    gdir = run_dir / "guest"
    gdir.mkdir(parents=True, exist_ok=True)
    script = gdir / "cmd.sh"
    script.write_text(guest_script(command, run_dir, accel, env))
    argv = vng_argv(vng, kernel, run_dir, script, accel, opts)
    venv = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "SOCKCONF_VIRTIOFSD_LOG": str(gdir / "virtiofsd.log")}
    (gdir / "vng-argv.json").write_text(json.dumps(argv, indent=1))
    t0 = time.monotonic()
    attempt: _Attempt | None = None
    for n in (1, 2):
        console = gdir / ("console.log" if n == 1 else "console-retry.log")
        attempt = _Attempt(argv, venv, console, relay)
        try:
            booted = _wait_up(attempt, boot_timeout)
        except BaseException:
            attempt.kill()
            attempt.finish()
            raise
        if booted:
            break
        attempt.kill()
        attempt.finish()
        if n == 2:
            raise NoBoot(f"{kernel.spec}: the guest did not reach the command within {boot_timeout:.0f} s, twice "
                         f"(console: {console})", detail=attempt.tail_text())
    assert attempt is not None
    try:
        remaining = max(1.0, opts.run_timeout_s - (time.monotonic() - attempt.up_at))
        try:
            vng_rc = attempt.proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            attempt.kill()
            attempt.finish()
            raise GuestDied(f"{kernel.spec}: the command ran past --run-timeout {opts.run_timeout_s:.0f} s; "
                            "the guest was stopped", detail=attempt.tail_text()) from None
    except BaseException:
        attempt.kill()
        attempt.finish()
        raise
    attempt.reap_group()
    attempt.finish()
    end = time.monotonic()
    if attempt.rw_root:
        raise GuestDied(f"{kernel.spec}: the host's root filesystem was writable in the guest: refusing to run")
    if attempt.rc is None:
        raise GuestDied(f"{kernel.spec}: the guest died while the command ran (vng exit {vng_rc}, no exit status "
                        "from the command)", detail=attempt.tail_text())
    result = GuestResult(
        returncode=attempt.rc, release=attempt.uname[0], version=attempt.uname[1], accel=accel,
        boot_s=round(attempt.up_at - attempt.started, 3), command_s=round(end - attempt.up_at, 3),
        wall_s=round(end - t0, 3), attempts=n, console=str(gdir / "console.log"),
        extra={"kvm_probe": why, "cpus": opts.cpus, "memory": opts.memory, "vng_exit": vng_rc,
               "blacklist": list(opts.blacklist), "kernel_spec": kernel.spec, "kernel_meta": kernel.meta},
    )
    (gdir / "guest.json").write_text(json.dumps(asdict(result), indent=1))
    return result


def _wait_up(attempt: _Attempt, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if attempt.up.wait(timeout=0.5):
            return True
        if attempt.proc.poll() is not None:
            attempt.finish()  # drain what it printed
            return attempt.up.is_set()
    return False
