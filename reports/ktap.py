"""KTAP (the kernel's Test Anything Protocol, version 1, as kselftest prints it) for kernel CI: one result line per
case, so kselftest-style runners, parsers (kunit_parser, LAVA, KernelCI) and dashboards can read a run.

    KTAP version 1
    # sockconf run 20261125T151600Z-4f2a
    # kernel: 6.1.0-31-cloud-amd64 (#1 SMP PREEMPT_DYNAMIC Debian 6.1.128-1 (2025-02-07))
    # label: 6.1.0-31-cloud-amd64
    # execution: guest, tcg (emulated; timing windows x6)
    # profiles: short-fin-timeout; tuning: net.ipv4.tcp_fin_timeout=5
    # run status: complete
    # complete: all 4 selected cases finished
    1..4
    ok 1 close/fin-handshake[ipv4]
    # expected [RA] seq 1, seen [FA] seq 101
    # checks: 7, 1 failed
    not ok 2 close/unread-data[ipv4]
    ok 3 reuse/timewait-reuseport[ipv4] # SKIP SO_REUSEPORT TIME_WAIT reuse needs kernel >= 7.0
    ok 4 shutdown/half-close[ipv4] # SKIP xfail: known: the peer's late data is answered with RST on 6.x
    # Totals: pass:1 fail:1 xfail:1 xpass:0 skip:1 error:0

The description of a result line is the case id (``area/slug[params]``), the same on every kernel; cases are
numbered in case id order, so two runs of the same selection number them alike.  Outcomes: passed ``ok``; failed
``not ok`` after up to ``DIAGNOSTIC_LINES`` diagnostic lines (the failure message, then the failed checks);
error ``not ok ... # ERROR <first line>`` after the same diagnostic lines; skipped ``ok ... # SKIP <reason>``;
xfailed ``ok ... # SKIP xfail: <reason>`` (kunit_parser and most TAP readers know SKIP, not XFAIL); xpassed
``not ok`` with the diagnostic ``# xpassed: expected to fail, passed`` (the suite runs with xfail_strict).

How the run ended is carried as in the JUnit XML: a run that did not complete gets a result line ``not ok N
run-status # ERROR <how it ended>``, and every case whose evidence was lost one ``not ok N <case> # ERROR evidence
lost: <reason>``, so a runner that reads only result lines still sees both; the plan counts them.  The last line
is kselftest's totals line (``# Totals: pass:.. fail:.. xfail:.. xpass:.. skip:.. error:..``), the extra lines
counted as errors.
"""

from __future__ import annotations

from . import status
from .junit import checks_text
from .load import OUTCOMES, Case, Run

DIAGNOSTIC_LINES = 6  # per failed or errored case: the first lines of its message and failed checks
MAX_LINE = 300  # characters of one diagnostic line or directive reason
RUN_STATUS_ID = "run-status"


def render_ktap(run: Run) -> str:
    """The run as KTAP version 1 text (ends with a newline)."""
    meta = run.meta
    kernel = meta.get("kernel", {})
    lines = ["KTAP version 1", f"# sockconf run {_one_line(meta.get('id') or run.dir.name)}"]
    version = f" ({kernel['version']})" if kernel.get("version") else ""
    lines.append(f"# kernel: {_one_line((run.kernel_release or '?') + version)}")
    lines.append(f"# label: {_one_line(run.label)}")
    lines.append(f"# execution: {execution_text(meta)}")
    lines.append(f"# {configuration_text(meta)}")
    lines.append(f"# run status: {run.status}")
    lines.append(f"# {_one_line(status.summary(run))}")
    results: list[tuple[bool, str, str, list[str]]] = []  # (ok, description, directive, diagnostic lines)
    if not run.complete:
        results.append((False, RUN_STATUS_ID, f"ERROR {_one_line(status.summary(run))}",
                        [_one_line(meta["note"])] if meta.get("note") else []))
    for item in run.lost:
        results.append((False, description(str(item["case"])),
                        f"ERROR evidence lost: {_one_line(str(item['reason']))}",
                        [f"file: {_one_line(str(item['file']))}"] if item.get("file") else []))
    results += [_result(case) for case in sorted(run.cases, key=lambda c: c["id"])]
    lines.append(f"1..{len(results)}")
    for number, (ok, desc, directive, diagnostics) in enumerate(results, 1):
        lines += [f"# {d}" if d else "#" for d in diagnostics]
        lines.append(f"{'ok' if ok else 'not ok'} {number} {desc}" + (f" # {directive}" if directive else ""))
    counts = totals(run)
    lines.append("# Totals: " + " ".join(f"{k}:{counts[k]}" for k in ("pass", "fail", "xfail", "xpass", "skip",
                                                                      "error")))
    return "\n".join(lines) + "\n"


def totals(run: Run) -> dict[str, int]:
    """kselftest's counters: ``pass fail xfail xpass skip error``; the run-status and lost-evidence lines are
    errors."""
    by = {o: 0 for o in OUTCOMES}
    for case in run.cases:
        by[case["outcome"]] += 1
    extra = len(run.lost) + (0 if run.complete else 1)
    return {"pass": by["passed"], "fail": by["failed"], "xfail": by["xfailed"], "xpass": by["xpassed"],
            "skip": by["skipped"], "error": by["error"] + extra}


def description(case_id: str) -> str:
    """A result line's description: the case id on one line, without ``#`` (KTAP forbids it there)."""
    return _one_line(case_id).replace("#", "%23") or "?"


def execution_text(meta: dict) -> str:
    """``host``, ``guest, kvm``, ``guest, tcg (emulated; timing windows x6)``; ``not recorded`` for older runs."""
    ex = meta.get("execution")
    if not isinstance(ex, dict):
        return "not recorded"
    text = f"guest, {ex.get('accel') or '?'}" if ex.get("guest") else "host"
    if ex.get("emulated"):
        factor = ex.get("timing_factor")
        text += f" (emulated; timing windows x{factor:g})" if isinstance(factor, (int, float)) else " (emulated)"
    return text


def configuration_text(meta: dict) -> str:
    """``profiles: a, b; tuning: NAME=VALUE ...`` (``(none)`` for either when absent)."""
    configuration = meta.get("configuration")
    profiles = configuration.get("profiles") if isinstance(configuration, dict) else None
    overrides = meta.get("sysctl_overrides") or {}
    tuning = " ".join(f"{k}={v}" for k, v in overrides.items()) or "(none)"
    return _one_line(f"profiles: {', '.join(map(str, profiles)) if profiles else '(none)'}; tuning: {tuning}")


def _result(case: Case) -> tuple[bool, str, str, list[str]]:
    outcome, desc = case["outcome"], description(case["id"])
    message = str(case["message"] or "").strip()
    reason = _one_line(message.split("\n", 1)[0].removeprefix("Skipped: ").removeprefix("XFAIL ")) if message \
        else ""
    if outcome == "passed":
        return True, desc, "", []
    if outcome == "skipped":
        return True, desc, f"SKIP {reason or 'no reason given'}", []
    if outcome == "xfailed":
        return True, desc, f"SKIP xfail: {reason or 'expected to fail'}", []
    if outcome == "xpassed":
        return False, desc, "", ["xpassed: expected to fail, passed" + (f" ({reason})" if reason else "")]
    diagnostics = failure_lines(case)
    if outcome == "error":
        return False, desc, f"ERROR {diagnostics[0] if diagnostics else 'error'}", diagnostics
    return False, desc, "", diagnostics


def failure_lines(case: Case, limit: int = DIAGNOSTIC_LINES) -> list[str]:
    """The first lines of a failure: its message, then its checks (how many, each failed one); the last line says
    how many more there were."""
    text = "\n\n".join(filter(None, [str(case["message"] or "").strip(), checks_text(case["checks"])
                                     if case["checks"] else ""]))
    lines = [_one_line(ln) for ln in text.splitlines() if ln.strip()]
    if len(lines) > limit:
        lines = [*lines[: limit - 1], f"... {len(lines) - limit + 1} more lines in the report"]
    return lines


def _one_line(text: object) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"
