"""python -m kernels: the suite on another kernel.

    python -m kernels run   --kernel SPEC [--results-dir DIR] [guest options] -- <pytest args>
    python -m kernels exec  --kernel SPEC [--dir DIR] [guest options] -- <shell command>
    python -m kernels check --kernel SPEC      resolve (fetch, unpack) and check the config; no boot
    python -m kernels codes                    the exit codes

SPEC: host | debian:<series> | PATH (vmlinuz/bzImage) | PATH:MODULES | TREE (kernel build tree).
Guest options: --kvm auto|yes|no (default auto: KVM if it can run a guest here, else TCG emulation),
--cpus N (2), --memory SIZE (2G), --boot-timeout S (300 under TCG, 120 under KVM), --run-timeout S (21600),
--nice N (run qemu under nice -n N ionice -c3; default $SOCKCONF_GUEST_NICE or 0).

Exit: `run` returns the guest pytest's exit code (0-5); `exec` the command's; the runner's own failures are
10-15 (kernels/errors.py), 4 for a bad command line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from kernels import guest
from kernels.errors import CODES, KernelsError
from kernels.run import USAGE_ERROR, UsageError, prepare
from kernels.run import run as run_suite


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"kernels: {message}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def _guest_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kvm", choices=("auto", "yes", "no"), default="auto")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--memory", default="2G")
    p.add_argument("--boot-timeout", type=float, default=0.0, metavar="S")
    p.add_argument("--run-timeout", type=float, default=6 * 3600.0, metavar="S")
    p.add_argument("--nice", type=int, default=guest.Options().nice, metavar="N")


def _opts(args: argparse.Namespace) -> guest.Options:
    return guest.Options(cpus=args.cpus, memory=args.memory, kvm=args.kvm, boot_timeout_s=args.boot_timeout,
                         run_timeout_s=args.run_timeout, nice=args.nice)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rest: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    ap = _Parser(prog="python -m kernels", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    p_run = sub.add_parser("run", help="run pytest (the args after --) on that kernel")
    p_run.add_argument("--kernel", required=True, metavar="SPEC")
    p_run.add_argument("--results-dir", type=Path, default=None, metavar="DIR")
    _guest_opts(p_run)
    p_exec = sub.add_parser("exec", help="run a shell command (after --) in a guest")
    p_exec.add_argument("--kernel", required=True, metavar="SPEC")
    p_exec.add_argument("--dir", type=Path, default=None, help="the guest's writable directory (default: a temp dir)")
    _guest_opts(p_exec)
    p_check = sub.add_parser("check", help="resolve the spec and check the kernel's config, without booting")
    p_check.add_argument("--kernel", required=True, metavar="SPEC")
    sub.add_parser("codes", help="print the exit codes")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "codes":
            for code, what in sorted(CODES.items()):
                print(f"{code}  {what}")
            print(f"{USAGE_ERROR}   bad command line (as pytest's usage error)")
            print("0-5 from `run`: the guest pytest's own exit code")
            return 0
        if args.cmd == "check":
            kernel = prepare(args.kernel)
            print(f"kernels: {kernel.release}: image {kernel.image}, modules {kernel.modules}, config ok")
            return 0
        if args.cmd == "run":
            return run_suite(args.kernel, rest, args.results_dir, _opts(args))
        if not rest:
            raise UsageError("exec needs a command after --")
        kernel = prepare(args.kernel, log=lambda m: print(m, file=sys.stderr))
        if kernel.kind == "host":
            raise UsageError("exec runs in a guest: give a kernel other than host")
        work = args.dir.resolve() if args.dir else Path(tempfile.mkdtemp(prefix="sockconf-guest-"))
        work.mkdir(parents=True, exist_ok=True)
        result = guest.run(kernel, " ".join(rest), work, _opts(args))
        print(f"kernels: guest {result.release} ({result.accel}): boot {result.boot_s:.1f} s, command "
              f"{result.command_s:.1f} s, exit {result.returncode}; {work}/guest/", file=sys.stderr)
        return result.returncode
    except KernelsError as exc:
        print(f"kernels: {exc}", file=sys.stderr)
        if exc.detail:
            print(f"--- console tail ---\n{exc.detail}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("kernels: interrupted", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
