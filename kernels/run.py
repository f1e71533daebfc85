"""Run the suite's pytest on a kernel given by --kernel SPEC: on this host, or in a virtme-ng guest.

In a guest, pytest runs from the repository (read-only there: the host's root filesystem) with
`-p no:cacheprovider --results-dir <run dir> --label <guest uname -r>`; the run directory is the guest's only
writable host directory, so results.json, cases/, pcaps/ and index.html land on the host as a normal run
directory, plus guest/ (console log, vng command, guest.json: release, accel, boot overhead).
"""

from __future__ import annotations

import secrets
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from kernels import config as kconfig
from kernels import guest
from kernels.errors import GuestDied, KernelsError
from kernels.spec import Kernel, parse_spec, resolve

REPO = Path(__file__).resolve().parent.parent
USAGE_ERROR = 4  # as pytest's: bad command line, nothing run


class UsageError(KernelsError):
    code = USAGE_ERROR


def prepare(spec_text: str, log=print) -> Kernel:  # type: ignore[no-untyped-def]
    """Resolve the spec and, for a guest, check the kernel's config. Raises KernelsError."""
    kernel = resolve(parse_spec(spec_text))
    if kernel.kind != "host":
        cfg, where = kconfig.read_config(kernel.config, kernel.source_image or kernel.image, kernel.modules)
        kconfig.check(cfg, f"{kernel.spec} ({kernel.release}, config {where})", kernel.modules is not None)
    log(f"kernels: {kernel.describe()}")
    return kernel


def new_run_dir() -> Path:
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)
    return REPO / "reports" / "runs" / run_id


def check_run_dir(run_dir: Path) -> None:
    held = [n for n in ("run.json", "results.json", "cases") if (run_dir / n).exists()]
    if held:
        raise UsageError(f"--results-dir {run_dir} already holds a run ({', '.join(held)}); give a new or empty one")
    run_dir.mkdir(parents=True, exist_ok=True)


def pytest_command(pytest_args: list[str], run_dir: Path) -> str:
    for arg in pytest_args:
        if arg == "--results-dir" or arg.startswith("--results-dir="):
            raise UsageError("give --results-dir to `python -m kernels run`, not after `--`")
    label = [] if any(a == "--label" or a.startswith("--label=") for a in pytest_args) else \
        ["--label", '"$(uname -r)"']
    parts = [shlex.quote(sys.executable), "-m", "pytest", *map(shlex.quote, pytest_args), "-p", "no:cacheprovider",
             "--results-dir", shlex.quote(str(run_dir)), *label]
    return " ".join(parts)


def run_host(pytest_args: list[str], results_dir: Path | None) -> int:
    argv = [sys.executable, "-m", "pytest", *pytest_args]
    if results_dir is not None:
        argv += ["--results-dir", str(results_dir)]
    return subprocess.call(argv, cwd=REPO)


def rebuild_partial(run_dir: Path, log=print) -> None:  # type: ignore[no-untyped-def]
    """A guest that died left run.json and cases/*.json: rebuild results.json from them, marked incomplete
    (python -m reports render does that and renders the report)."""
    if not (run_dir / "run.json").exists():
        log(f"kernels: no run.json in {run_dir}: the suite had not started")
        return
    proc = subprocess.run([sys.executable, "-m", "reports", "render", str(run_dir)], cwd=REPO,
                          capture_output=True, text=True, check=False)
    for line in (proc.stdout + proc.stderr).strip().splitlines():
        log(f"kernels: {line}")


INTERRUPTED = 2  # pytest's own exit code for an interrupted run


def run(spec_text: str, pytest_args: list[str], results_dir: Path | None, opts: guest.Options) -> int:
    kernel = prepare(spec_text, log=lambda m: print(m, file=sys.stderr))
    if kernel.kind == "host":
        return run_host(pytest_args, results_dir)
    run_dir = (results_dir or new_run_dir()).resolve()
    check_run_dir(run_dir)
    command = pytest_command(pytest_args, run_dir)
    print(f"kernels: booting {kernel.release} ({'kvm' if opts.kvm == 'yes' else 'kvm ' + opts.kvm}), "
          f"run directory {run_dir}", file=sys.stderr)
    try:
        result = guest.run(kernel, command, run_dir, opts)
    except GuestDied:
        rebuild_partial(run_dir, log=lambda m: print(m, file=sys.stderr))
        raise
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (guest.run()): the guest is already stopped
        print(f"kernels: interrupted ({exc or 'Ctrl-C'}): the guest was stopped", file=sys.stderr)
        rebuild_partial(run_dir, log=lambda m: print(m, file=sys.stderr))
        return INTERRUPTED
    print(f"kernels: guest {result.release} ({result.accel}{', emulated' if result.accel == 'tcg' else ''}): "
          f"boot {result.boot_s:.1f} s, pytest {result.command_s:.1f} s, exit {result.returncode}"
          f"{f', {result.attempts} boots' if result.attempts > 1 else ''}", file=sys.stderr)
    return result.returncode
