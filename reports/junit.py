"""JUnit XML for CI systems, in the shape pytest's ``--junitxml`` produces (xunit2 plus per-case
properties): one ``<testsuite>`` per run with the kernel and sysctl overrides as suite properties, one
``<testcase>`` per case with its references, expectations, claim, number of checks and fingerprint as
``<property>`` elements.  A failed (or errored) case's failure text ends with its checks: how many, and each
failed one (what, expected, seen, why).  xfailed cases are reported as skipped and xpassed as passed, as pytest
does.

How the run ended is carried too: suite properties ``run_status`` (complete | interrupted | incomplete), ``selected``,
``finished`` (and ``signal``, ``lost``); a run that did not complete gets one ``<testcase>`` ``sockconf.run`` / ``run
status`` with an ``<error>`` saying so, and every case whose evidence was lost one ``<testcase>`` (classname
``sockconf.lost``) with an ``<error>`` giving the reason, so a CI that reads only test outcomes still sees both."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET

from . import status
from .load import Case, Run


def render_junit(run: Run) -> bytes:
    meta = run.meta
    totals = run.totals
    suites = ET.Element("testsuites")
    extra_errors = len(run.lost) + (0 if run.complete else 1)
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"sockconf {run.label}",
        tests=str(len(run.cases) + extra_errors),
        failures=str(totals["failed"]),
        errors=str(totals["error"] + extra_errors),
        skipped=str(totals["skipped"] + totals["xfailed"]),
        time=f"{float(meta.get('duration_s') or 0):.3f}",
        timestamp=str(meta.get("started", "")),
        hostname=str(meta.get("machine", {}).get("hostname") or socket.gethostname()),
    )
    props = ET.SubElement(suite, "properties")
    kernel = meta.get("kernel", {})
    suite_props = [
        ("run_id", meta.get("id")),
        ("label", run.label),
        ("kernel_release", kernel.get("release")),
        ("kernel_version", kernel.get("version")),
        ("congestion_control", meta.get("congestion_control")),
        ("run_status", run.status),
        ("selected", run.selected),
        ("finished", run.finished),
        ("signal", meta.get("signal")),
        ("lost", len(run.lost) or None),
    ]
    suite_props += [(f"sysctl_override:{k}", v) for k, v in meta.get("sysctl_overrides", {}).items()]
    for name, value in suite_props:
        if value is not None:
            ET.SubElement(props, "property", name=name, value=str(value))
    if not run.complete:
        tc = ET.SubElement(suite, "testcase", classname="sockconf.run", name="run status", time="0.000")
        text = status.summary(run)
        if meta.get("note"):
            text += f"\n\n{meta['note']}"
        ET.SubElement(tc, "error", message=status.summary(run), type=f"sockconf.{run.status}").text = text
    for item in run.lost:
        tc = ET.SubElement(suite, "testcase", classname="sockconf.lost", name=str(item["case"]), time="0.000")
        where = f"{item['file']}: " if item.get("file") else ""
        ET.SubElement(tc, "error", message=f"evidence lost: {item['reason']}",
                      type="sockconf.lost-evidence").text = f"{where}{item['reason']}"
    for case in run.cases:
        _testcase(suite, case)
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)


def _classname(case: Case) -> str:
    nodeid = str(case.get("nodeid") or "")
    if "::" in nodeid:
        return nodeid.split("::", 1)[0].removesuffix(".py").replace("/", ".")
    return f"sockconf.{case['area']}"


def _testcase(suite: ET.Element, case: Case) -> None:
    tc = ET.SubElement(
        suite, "testcase", classname=_classname(case), name=case["id"], time=f"{float(case['duration_s']):.3f}"
    )
    props = ET.SubElement(tc, "properties")
    for ref in case["references"]:
        value = str(ref.get("text") or "")
        if ref.get("url"):
            value = f"{value} <{ref['url']}>" if value else str(ref["url"])
        ET.SubElement(props, "property", name="reference", value=value)
    extra = [("title", case["title"]), ("kernel_expectation", case["kernel_expectation"]),
             ("fingerprint", case["fingerprint"]), ("pcap", case["pcap"])]
    extra += [("kernel_expectation", _expectation_text(e)) for e in case["kernel_expectations"]]
    claim = case["claim"]
    if claim:
        extra += [("claim", claim.get("quote")), ("claim_verdict", claim.get("verdict"))]
    if case["checks"]:
        extra.append(("checks", len(case["checks"])))
    for name, value in extra:
        if value:
            ET.SubElement(props, "property", name=name, value=str(value))
    outcome, message = case["outcome"], str(case["message"] or "")
    failed = [c for c in case["checks"] if c["ok"] is False]
    first_line = message.splitlines()[0] if message else (failed[0]["what"] if failed else outcome)
    if outcome in ("failed", "error") and case["checks"]:
        message = "\n\n".join(filter(None, [message, checks_text(case["checks"])]))
    if outcome == "failed":
        ET.SubElement(tc, "failure", message=first_line).text = message
    elif outcome == "error":
        ET.SubElement(tc, "error", message=first_line).text = message
    elif outcome in ("skipped", "xfailed"):
        ET.SubElement(tc, "skipped", type="pytest.xfail" if outcome == "xfailed" else "pytest.skip",
                      message=first_line)
    if case["ss"] and outcome in ("failed", "error"):
        ET.SubElement(tc, "system-out").text = case["ss"]


def _expectation_text(e: dict) -> str:
    text = f"{e['name']}: {e['value']}" if e["name"] else str(e["value"])
    if e["key"]:
        text += f" ({e['key']})"
    return f"{text} [{e['commit']}]" if e["commit"] else text


def checks_text(checks: list[dict]) -> str:
    """``checks: 7, 1 failed`` and one line per failed check, for a failure message."""
    failed = [c for c in checks if c["ok"] is False]
    lines = [f"checks: {len(checks)}, {len(failed)} failed"]
    for c in failed:
        line = f"✗ {c['what']}: expected {c['expected']}, seen {c['seen']}"
        lines.append(f"{line} (why: {c['why']})" if c["why"] else line)
    return "\n".join(lines)
