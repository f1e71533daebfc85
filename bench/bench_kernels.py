"""Benchmark the other-kernels runner: boot overhead, per-kernel wall time of a selection, the emulation timing
factor, and what the udev blacklist buys. Boots guests one at a time.

    python bench/bench_kernels.py [--kernels debian:6.1 debian:6.12] [--reps 1]     boot overhead, trivial command
    python bench/bench_kernels.py --selection "conformance -m 'not slow' -n 2"      + per-kernel wall time of it
    python bench/bench_kernels.py --timing                                            + host vs guest event lateness
    python bench/bench_kernels.py --blacklist-ab                                      + boot with/without blacklist

On a shared machine, run it with SOCKCONF_GUEST_NICE=19 (every qemu under nice -n 19 ionice -c3). Boot overhead is
vng start -> the guest command's first line; "command" is the rest (including the guest's power-off, ~1 s).
Target (issue 9): the default selection <= 10 min per kernel under emulation on this machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kernels import guest  # noqa: E402
from kernels.run import prepare, pytest_command  # noqa: E402

TARGET_SELECTION_S = 600.0


def _boot(kernel, command: str, opts: guest.Options) -> guest.GuestResult:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(prefix="sockconf-bench-") as tmp:
        return guest.run(kernel, command, Path(tmp), opts)


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def trivial(kernels, reps: int, opts: guest.Options) -> None:  # type: ignore[no-untyped-def]
    print(f"{'kernel':32} {'accel':5} {'boot s':>8} {'command s':>9} {'wall s':>8}")
    for k in kernels:
        for _ in range(reps):
            r = _boot(k, "true", opts)
            print(f"{r.release:32} {r.accel:5} {r.boot_s:8.1f} {r.command_s:9.1f} {r.wall_s:8.1f}")


def blacklist_ab(kernel, reps: int, opts: guest.Options) -> None:  # type: ignore[no-untyped-def]
    rows: dict[str, list[float]] = {"blacklist": [], "none": []}
    for _ in range(reps):  # alternate, so that the machine's load hits both alike
        for name, bl in (("blacklist", guest.BLACKLIST), ("none", ())):
            o = guest.Options(**{**opts.__dict__, "blacklist": bl})
            rows[name].append(_boot(kernel, "true", o).boot_s)
    for name, values in rows.items():
        print(f"boot overhead {kernel.release} {name:9}: median {_med(values):5.1f} s  {values}")


def probe_host() -> dict:
    out = subprocess.run([sys.executable, "-m", "kernels.timing_probe"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def probe_guest(kernel, opts: guest.Options) -> dict:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(prefix="sockconf-bench-") as tmp:
        out = Path(tmp) / "probe.json"
        cmd = f"{shlex.quote(sys.executable)} -m kernels.timing_probe > {shlex.quote(str(out))}"
        r = guest.run(kernel, cmd, Path(tmp), opts)
        if r.returncode != 0:
            raise SystemExit(f"timing probe failed in {kernel.spec} (exit {r.returncode})")
        return json.loads(out.read_text())


def timing(kernels, opts: guest.Options) -> None:  # type: ignore[no-untyped-def]
    host = probe_host()
    rows = [("host " + host["kernel"], host)] + [(f"{k.spec} {k.release}", probe_guest(k, opts)) for k in kernels]
    print(f"{'where':44} {'cpu loop ms':>11} {'FIN med/max ms':>15} {'RST med/max ms':>15} "
          f"{'FW2 1s late med/max ms':>23}")
    for name, d in rows:
        print(f"{name:44} {_med(d['cpu_loop_ms']):11.0f} "
              f"{_med(d['prompt_fin_ms']):7.2f}/{max(d['prompt_fin_ms']):<7.2f} "
              f"{_med(d['prompt_rst_ms']):7.2f}/{max(d['prompt_rst_ms']):<7.2f} "
              f"{_med(d['orphan_fw2_late_ms']):11.0f}/{max(d['orphan_fw2_late_ms']):<11.0f}")
    for name, d in rows[1:]:
        cpu = _med(d["cpu_loop_ms"]) / _med(host["cpu_loop_ms"])
        fw2 = max(d["orphan_fw2_late_ms"]) / max(1.0, max(host["orphan_fw2_late_ms"]))
        prompt = max(d["prompt_fin_ms"] + d["prompt_rst_ms"]) / max(host["prompt_fin_ms"] + host["prompt_rst_ms"])
        print(f"factor {name}: cpu x{cpu:.1f}, 1 s timer lateness x{fw2:.1f}, prompt events x{prompt:.0f} (max)")
    print(json.dumps({name: d for name, d in rows}))


def selection(kernels, args: list[str], opts: guest.Options) -> int:  # type: ignore[no-untyped-def]
    worst = 0
    print(f"{'kernel':32} {'boot s':>7} {'pytest s':>9} {'wall s':>8} exit  run dir")
    for k in kernels:
        run_dir = Path(tempfile.mkdtemp(prefix=f"sockconf-bench-{k.release}-"))
        t0 = time.monotonic()
        r = guest.run(k, pytest_command(args, run_dir), run_dir, opts)
        wall = time.monotonic() - t0
        flag = "" if wall <= TARGET_SELECTION_S else f"  over the {TARGET_SELECTION_S:.0f} s target"
        print(f"{r.release:32} {r.boot_s:7.1f} {r.command_s:9.1f} {wall:8.1f} {r.returncode:4}  {run_dir}{flag}")
        worst = max(worst, r.returncode)
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", nargs="+", default=["debian:6.1", "debian:6.12"])
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--selection", default=None, help="pytest arguments (one string) to time on each kernel")
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--blacklist-ab", action="store_true")
    ap.add_argument("--kvm", choices=("auto", "yes", "no"), default="auto")
    args = ap.parse_args()
    kernels = [prepare(s, log=lambda m: print(m, file=sys.stderr)) for s in args.kernels]
    opts = guest.Options(kvm=args.kvm, relay=open("/dev/null", "w"))  # noqa: SIM115
    trivial(kernels, args.reps, opts)
    if args.blacklist_ab:
        blacklist_ab(kernels[0], max(2, args.reps), opts)
    if args.timing:
        timing(kernels, opts)
    if args.selection:
        return selection(kernels, shlex.split(args.selection), opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
