"""The run report: one self-contained ``index.html`` for a run directory.

Sections: header (how the run ended, in words and prominent when it did not complete or lost evidence, with
the lost evidence listed; kernel, label, date, totals, runtime, sysctls that differ from the kernel defaults),
a filterable conformance matrix (areas × cases × family), the article's claims (from the run's ``claims``,
each joined to the cases that decide it; or, for schema 1, from each case's ``claim``), the harness's latest
self-check when the run carries one (``run.selfcheck``: "Self-check (proof of sensitivity)"), and one
collapsible section per case with its description, references, verdict and the kernel expectations it
applied, what it checked (expected vs seen) and the segments the strict wire mode allowed, its observations,
ladder diagram, segment table (unexpected and harness-crafted segments marked), state timeline, durations
against their tolerance, syscall log, ``ss`` snapshot (failures only) and pcap link.
When the run has grid cases, the closing-state × incoming-segment grid follows the matrix (``reports/grid.py``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from . import grid, ladder, status
from .fmt import esc, fmt_runtime, fmt_t, segment_label, slug
from .load import BAD_OUTCOMES, CLAIM_VERDICTS, OUTCOMES, Case, Run, duration_span, non_default_sysctls, row_key
from .page import OUTCOME_MARK, badge, meta_list, page, table

NO_FAMILY = "n/a"

Claim = dict[str, Any]
ClaimRefs = dict[str, list[tuple[Claim, dict[str, Any]]]]  # case id -> (claim, its evidence from that case)


def family_of(case: Case) -> str:
    return str(case["family"]) if case["family"] else NO_FAMILY


def sorted_cases(cases: Iterable[Case]) -> list[Case]:
    """Cases in matrix order: by area, then row, then family."""
    return sorted(cases, key=lambda c: (c["area"], row_key(c), family_of(c)))


def render_run(run: Run) -> str:
    """The complete report for ``run``."""
    cases = sorted_cases(run.cases)
    label = run.label
    run_claims = run.data.get("claims")
    refs: ClaimRefs = defaultdict(list)
    for claim in run_claims or []:
        for ev in claim["evidence"]:
            refs[str(ev["case"])].append((claim, ev))
    body = [
        header(run),
        _filters(cases),
        '<h2 id="matrix">Conformance matrix</h2>',
        matrix(cases),
        grid.section(run),
        (claims_not_decided(run) if run_claims is None and run.meta.get("rebuilt")
         else claims(cases) if run_claims is None else run_claims_section(run_claims, run.case_map())),
        selfcheck_section(run.meta.get("selfcheck")),
        '<h2 id="cases">Cases</h2>',
        ('<p class="noprint"><button type="button" data-open="1">expand all</button> '
        '<button type="button" data-open="0">collapse all</button> '
        '<span class="muted">Failed cases are expanded; click a case or a matrix cell to open it.</span></p>'),
        *(case_section(run, c, refs.get(c["id"], [])) for c in cases),
    ]
    title = f"sockconf — {label}" + ("" if run.complete else f" ({run.status.upper()})")
    return page(title, body)


def header(run: Run) -> str:
    meta = run.meta
    kernel = meta.get("kernel", {})
    machine = meta.get("machine", {})
    packages = ", ".join(f"{k} {v}" for k, v in meta.get("packages", {}).items())
    totals = run.totals
    total = sum(totals.values())
    badges = "".join(
        f'<span class="badge o-{o}{"" if totals[o] else " zero"}">{totals[o]} {o}</span>' for o in OUTCOMES
    )
    items = [
        ("kernel", f"<b>{esc(kernel.get('release', '?'))}</b> <span class='muted'>{esc(kernel.get('version'))}</span>"),
        ("label", esc(run.label)),
        ("run status", _status_text(run)),
        ("started", esc(meta.get("started", "?"))),
        ("runtime", esc(fmt_runtime(float(meta.get("duration_s") or 0)))
         + _runtime_note(meta)),
        ("totals", f'<span class="totals">{badges}</span> <span class="muted">{total} cases</span>'),
        *([("not testable here", esc(f"{meta['untestable']} skipped: the running kernel cannot show the behaviour "
                                         "(absent or global sysctl, or a version the case does not model)"))]
          if meta.get("untestable") else []),
        ("congestion control", esc(meta.get("congestion_control", "?"))),
        ("machine", esc(" · ".join(f"{k} {v}" for k, v in machine.items()))),
        ("python / packages", esc(f"{meta.get('python', '?')} · {packages}")),
        ("command", f"<code>{esc(' '.join(map(str, meta.get('command', []))))}</code>"),
        ("run id", f"<code>{esc(meta.get('id', '?'))}</code>"),
    ]
    return (
        f"<header><h1>sockconf conformance report — {esc(run.label)}</h1>{run_status_banner(run)}"
        f"{meta_list(items)}<h3>Sysctls that differ from the kernel defaults</h3>{sysctl_table(run)}</header>"
    )


def _runtime_note(meta: dict[str, Any]) -> str:
    rebuilt = meta.get("rebuilt")
    how = rebuilt.get("duration") if isinstance(rebuilt, dict) else None
    return f" <span class='muted'>({esc(how)})</span>" if how else ""


def _status_text(run: Run) -> str:
    text = esc(status.summary(run))
    return f'<b class="st-{esc(run.status)}">{text}</b>' if status.attention(run) else text


def run_status_banner(run: Run) -> str:
    """How the run ended, prominent when it did not complete or lost evidence: the status in words, the
    note (a rebuilt run's), and every case whose evidence was lost, with the reason."""
    if not status.attention(run):
        return ""
    parts = [f'<div class="runstatus st-{esc(run.status)}" role="alert"><p class="st-line">'
             f"{esc(status.summary(run))}</p>"]
    if not run.complete:
        parts.append("<p>The results below cover only the cases that finished; the others are not in this "
                     "report.</p>")
    if run.meta.get("note"):
        parts.append(f"<p>{esc(run.meta['note'])}</p>")
    if run.lost:
        rows = [(f"<code>{esc(item['case'])}</code>",
                 f"<code>{esc(item['file'])}</code>" if item.get("file") else "", esc(item["reason"]))
                for item in run.lost]
        parts.append(f"<p><b>Lost evidence</b> ({len(run.lost)}):</p>")
        parts.append(table(["case", "file", "reason"], rows, cls="lost"))
    parts.append("</div>")
    return "".join(parts)


def selfcheck_section(result: object) -> str:
    """The harness's latest self-check, as the plugin embedded it in ``run.selfcheck``: per tuning, the cases
    expected to differ, those that did, false and missed differences, how the tuned run went, the verdict."""
    if not isinstance(result, dict):
        return ""

    def ids(value: object) -> str:
        items = [str(v) for v in value] if isinstance(value, list) else []
        if not items:
            return '<span class="muted">none</span>'
        listed = "<br>".join(f"<code>{esc(i)}</code>" for i in items)
        return listed if len(items) <= 3 else f"<details><summary>{len(items)} cases</summary>{listed}</details>"

    def word(value: object, good: str) -> str:
        text = str(value or "?")
        return f'<span class="badge {"o-passed" if text == good else "o-failed"}">{esc(text)}</span>'

    rows = [(esc(row.get("tuning", "?")), ids(row.get("expected")), ids(row.get("differed")), ids(row.get("false")),
             ids(row.get("missed")), word(row.get("tuned_run"), "passed"), word(row.get("verdict"), "ok"))
            for row in result.get("rows") or [] if isinstance(row, dict)]
    return ('<h2 id="selfcheck">Self-check (proof of sensitivity)</h2>'
            + meta_list([("verdict", word(result.get("verdict"), "pass")), ("when", esc(result.get("when", "?")))])
            + '<p class="muted">The harness\'s latest self-check: an A/A pair must differ nowhere, and each tuning '
            "must change exactly the cases it lists (false: differed but not expected; missed: expected but did "
            "not differ), with its tuned run passing.</p>"
            + (table(["tuning", "expected to differ", "differed", "false", "missed", "tuned run", "verdict"], rows,
                     cls="selfcheck") or '<p class="muted">no rows</p>'))


def claims_not_decided(run: Run) -> str:
    """A rebuilt run has no claims: deciding them needs the conformance package."""
    from .rebuild import CLAIMS_NOTE

    return f'<h2 id="claims">The article\'s claims</h2><p class="muted">{esc(CLAIMS_NOTE)}</p>'


def sysctl_table(run: Run) -> str:
    rows = [
        (f"<code>{esc(n)}</code>", f"<code>{esc(v)}</code>", f"<code>{esc(d)}</code>",
         '<span class="given">given with --sysctl</span>' if g else "")
        for n, v, d, g in non_default_sysctls(run)
    ]
    overrides = run.meta.get("sysctl_overrides", {})
    note = ""
    if overrides:
        note = "<p class='muted'>--sysctl, in order: " + ", ".join(
            f"<code>{esc(k)}={esc(v)}</code>" for k, v in overrides.items()
        ) + "</p>"
    if not rows:
        return "<p>All recorded sysctls are at their kernel defaults.</p>" + note
    return table(["sysctl", "in force", "kernel default", ""], rows) + note


def _filters(cases: list[Case]) -> str:
    areas = sorted({c["area"] for c in cases})
    families = sorted({family_of(c) for c in cases})

    def opts(values: list[str]) -> str:
        return "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)

    return (
        '<div class="filters noprint"><label><input type="checkbox" id="f-failed"> failed only</label>'
        f'<label>area <select id="f-area"><option value="">all</option>{opts(areas)}</select></label>'
        f'<label>family <select id="f-family"><option value="">all</option>{opts(families)}</select></label>'
        '<span id="f-count" class="muted"></span>'
        '<a href="#matrix">matrix</a><a href="#claims">claims</a><a href="#cases">cases</a></div>'
    )


def matrix(cases: list[Case], href: str = "#") -> str:
    """Rows are cases without their family (grouped by area), columns the families."""
    families = sorted({family_of(c) for c in cases})
    rows: dict[tuple[str, str], dict[str, Case]] = defaultdict(dict)
    for case in cases:
        rows[(case["area"], row_key(case))][family_of(case)] = case
    head = "".join(f'<th data-col="{esc(f)}">{esc(f)}</th>' for f in families)
    out = [f'<table class="matrix" id="matrix-table"><thead><tr><th>area</th><th>case</th>{head}</tr></thead><tbody>']
    for (area, key), by_family in rows.items():
        title = next(iter(by_family.values()))["title"]
        cells = []
        for fam in families:
            c = by_family.get(fam)
            if c is None:
                cells.append(f'<td class="cell o-none" data-col="{esc(fam)}">·</td>')
            else:
                o = c["outcome"]
                cells.append(
                    f'<td class="cell o-{o}" data-col="{esc(fam)}" data-o="{o}" title="{esc(c["id"])}">'
                    f'<a href="{href}{slug(c["id"])}">{esc(OUTCOME_MARK.get(o, o))}</a></td>'
                )
        out.append(
            f'<tr data-area="{esc(area)}"><td class="area">{esc(area)}</td>'
            f'<td>{esc(title)}<br><span class="mono muted">{esc(key)}</span></td>{"".join(cells)}</tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


def claims(cases: list[Case]) -> str:
    """Schema 1: the claims section built from the cases' own ``claim`` fields."""
    rows = []
    for c in cases:
        claim = c["claim"]
        if not claim:
            continue
        verdict = str(claim.get("verdict", "?"))
        rows.append((
            f"<blockquote>{esc(claim.get('quote'))}</blockquote>",
            f'<span class="badge v-{esc(verdict)}">{esc(verdict)}</span>',
            esc(claim.get("evidence")),
            f'<a href="#{slug(c["id"])}">{esc(c["id"])}</a> {badge(c["outcome"])}',
        ))
    body = table(["claim", "verdict", "evidence", "case"], rows) or "<p>No case in this run checks a claim.</p>"
    return f'<h2 id="claims">The article\'s claims</h2>{body}'


def claim_anchor(claim: Claim) -> str:
    """The HTML id of a claim in the claims section (the loader gives every claim an id)."""
    return "claim-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", str(claim["id"])).strip("-")


def _verdict_badge(verdict: object) -> str:
    v = str(verdict or "undecided")
    cls = f"v-{v}" if v in CLAIM_VERDICTS else "v-undecided"
    return f'<span class="badge {cls}">{esc(v)}</span>'


def _evidence_verdict(value: object) -> str:
    """A case's part in a claim: it confirms it, contradicts it, or decides nothing."""
    if value is True:
        return '<span class="badge v-confirmed">confirms</span>'
    if value is False:
        return '<span class="badge v-contradicted">contradicts</span>'
    return '<span class="badge v-undecided">decides nothing</span>'


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def run_claims_section(run_claims: list[Claim], cases: dict[str, Case]) -> str:
    """Schema 2: the run's claims, each with what it asserts, its verdict, and the evidence of every
    case that decides it, joined to that case (link, outcome in this run, the observed value)."""
    out = ['<h2 id="claims">The article\'s claims</h2>']
    if not run_claims:
        out.append("<p>No case in this run checks a claim.</p>")
        return "".join(out)
    counts = {v: sum(str(c["verdict"]) == v for c in run_claims) for v in CLAIM_VERDICTS}
    out.append(f"<p class='muted'>{len(run_claims)} claims: "
               + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + "</p>")
    for claim in run_claims:
        verdict_word = str(claim["verdict"])
        items = [("verdict", _verdict_badge(verdict_word))]
        if claim["asserts"]:
            items.append(("asserts", esc(claim["asserts"])))
        if claim["observation"]:
            items.append(("observation", f"<code>{esc(claim['observation'])}</code>"))
        if claim["note"]:
            items.append(("note", esc(claim["note"])))
        if claim.get("cases"):
            items.append(("decided by", " ".join(f"<code>{esc(c)}</code>" for c in claim["cases"])))
        rows = []
        for ev in claim["evidence"]:
            case = cases.get(str(ev["case"]))
            if case is None:
                where = f'<code>{esc(ev["case"])}</code> <span class="muted">(not in this run)</span>'
                outcome = badge(str(ev["outcome"])) if ev["outcome"] else ""
                observed = esc(ev["text"]) or (f"<code>{esc(_json(ev['value']))}</code>"
                                              if ev["value"] is not None else "")
            else:
                where = (f'<a href="#{slug(case["id"])}">{esc(case["id"])}</a>'
                         f'<br><span class="muted">{esc(case["title"])}</span>')
                outcome = badge(case["outcome"])
                observed = _observed_text(claim, ev, case)
            rows.append((where, outcome, observed, _evidence_verdict(ev["verdict"])))
        evidence = (table(["case", "outcome", "observed", "this case"], rows) if rows
                    else "<p class='muted'>No case in this run decides this claim.</p>")
        cls = f"v-{verdict_word}" if verdict_word in CLAIM_VERDICTS else "v-undecided"
        title = f'<code class="muted">{esc(claim["id"])}</code>'
        out.append(f'<div class="claim {cls}" id="{claim_anchor(claim)}">'
                   f"<blockquote>{esc(claim['quote'])}</blockquote>{title}{meta_list(items)}{evidence}</div>")
    return "".join(out)


def _observed_text(claim: Claim, ev: dict[str, Any], case: Case) -> str:
    """What the case observed (the evidence's ``observed``, else the case's own observation text), then the
    claim's sentence about it (``text``); the raw value when there is neither."""
    obs = case["observations"].get(str(claim["observation"])) or {}
    own = str(ev.get("observed") or obs.get("text") or "")
    parts = [esc(own)] if own else []
    if ev["text"] and ev["text"] != own:
        parts.append(f'<span class="muted">{esc(ev["text"])}</span>' if own else esc(ev["text"]))
    if parts:
        return "<br>".join(parts)
    value = ev["value"] if ev["value"] is not None else obs.get("value")
    return f"<code>{esc(_json(value))}</code>" if value is not None else '<span class="muted">not observed</span>'


def case_section(run: Run, case: Case, claim_refs: list[tuple[Claim, dict[str, Any]]] | None = None) -> str:
    o = case["outcome"]
    svg, omitted = ladder.render(case)
    failed_checks = sum(c["ok"] is False for c in case["checks"])
    ck = f" · {failed_checks} of {len(case['checks'])} checks failed" if failed_checks else ""
    parts = [
        (f'<details class="case" id="{slug(case["id"])}" data-area="{esc(case["area"])}" '
        f'data-col="{esc(family_of(case))}" data-o="{o}"{" open" if o in BAD_OUTCOMES else ""}>'
        f'<summary>{badge(o)} {esc(case["title"])}<span class="mono">{esc(case["id"])} · '
        f"{esc(fmt_t(float(case['duration_s'])))}{esc(ck)}</span></summary>"),
        f"<p>{esc(case['description'])}</p>" if case["description"] else "",
        references(case),
        verdict(case),
        checked(case),
        observations(case),
        claim_backrefs(claim_refs or []),
    ]
    if svg:
        parts.append(f'<h3>Ladder</h3><div class="ladderbox">{svg}</div>')
        parts.append(_omitted_note(case, omitted))
    parts.append(segments_section(case, omitted["segments"] > 0 or not svg))
    parts += [
        durations_table(case),
        measured_table(case),
        _titled("State timeline", states_table(case)),
        _titled("Syscalls", syscalls_table(case)),
        nstat_and_sysctls(case),
    ]
    if case.get("notes"):
        parts.append(_titled("Notes", "".join(f"<p>{esc(n)}</p>" for n in case["notes"])))
    if case["ss"] and o in BAD_OUTCOMES:
        parts.append(f"<h3><code>ss -tanoi</code> at the end of the case</h3><pre>{esc(case['ss'])}</pre>")
    parts.append(pcap_link(run, case))
    if case["fingerprint_text"]:
        parts.append(
            f"<details><summary>behaviour fingerprint <code>{esc(str(case['fingerprint'])[:12])}</code>"
            f"</summary><pre>{esc(case['fingerprint_text'])}</pre></details>"
        )
    parts.append("</details>")
    return "".join(parts)


def _omitted_note(case: Case, omitted: dict[str, int]) -> str:
    """What the ladder left out, and where to find it."""
    notes = []
    if omitted["segments"] or omitted["state"] or omitted["call"]:
        notes.append(f"{omitted['segments']} of {len(case['segments'])} segments, {omitted['state']} state changes "
                     f"and {omitted['call']} syscalls in the middle are not drawn; all segments are listed below "
                     "and in the pcap")
    return "".join(f"<p class='muted'>{esc(n)}.</p>" for n in notes)


def segments_section(case: Case, needed: bool) -> str:
    """Every segment in a folded table, when the ladder does not show them all (``needed``) or some are
    unexpected or crafted by the harness (marked); open when the strict wire mode flagged one as unexpected."""
    segs = case["segments"]
    unexpected = set(case["unexpected"])
    crafted = sum(s.get("origin", "kernel") != "kernel" for s in segs)
    if not segs or not (needed or unexpected or crafted):
        return ""
    extra = []
    if unexpected:
        extra.append(f'<span class="tag unx">{len(unexpected)} unexpected</span>')
    if crafted:
        extra.append(f'<span class="tag crafted">{crafted} injected/replayed by the harness</span>')
    return (f'<details class="segments"{" open" if unexpected else ""}><summary>all {len(segs)} segments '
            f'{" ".join(extra)}</summary>{segments_table(case)}</details>')


def _titled(title: str, content: str) -> str:
    return f"<h3>{esc(title)}</h3>{content}" if content else ""


def references(case: Case) -> str:
    items = []
    for ref in case["references"]:
        text = esc(ref.get("text") or ref.get("url"))
        url = ref.get("url")
        items.append(f'<li><a href="{esc(url)}">{text}</a></li>' if url else f"<li>{text}</li>")
    return f'<ul class="refs">{"".join(items)}</ul>' if items else ""


def verdict(case: Case) -> str:
    o = case["outcome"]
    expectation = case["kernel_expectation"]
    line = f"<p><b>Verdict:</b> {badge(o)}"
    if expectation and not case["kernel_expectations"]:
        line += f" <span class='muted'>expectation applied: <code>{esc(expectation)}</code></span>"
    line += "</p>"
    if case["kernel_expectations"]:
        items = []
        for e in case["kernel_expectations"]:
            commit = f" <span class='muted'>commit</span> <code>{esc(e['commit'])}</code>" if e["commit"] else ""
            key = f" <span class='muted'>— {esc(e['key'])}</span>" if e["key"] else ""
            items.append(f"<li>{esc(e['name'])}: <code>{esc(e['value'])}</code>{key}{commit}</li>")
        line += f"<p class='ckline'>Kernel expectations applied:</p><ul class='refs kexp'>{''.join(items)}</ul>"
    if case["message"]:
        cls = ' class="message"' if o in BAD_OUTCOMES else ""
        line += f"<pre{cls}>{esc(case['message'])}</pre>"
    return line


def segments_table(case: Case) -> str:
    """One row per segment; unexpected ones (strict wire mode) and ones the harness crafted are marked."""
    unexpected = set(case["unexpected"])
    marked = bool(unexpected) or any(s.get("origin", "kernel") != "kernel" for s in case["segments"])
    rows, classes = [], []
    for i, s in enumerate(case["segments"]):
        origin = str(s.get("origin") or "kernel")
        marks = []
        if i in unexpected:
            marks.append('<span class="tag unx">✗ unexpected</span>')
        if origin != "kernel":
            marks.append(f'<span class="tag crafted">{esc(origin)} by the harness</span>')
        rows.append((str(i), fmt_t(s["t"]), esc(s.get("sender")), f"<code>{esc(segment_label(s))}</code>",
                     esc(s.get("win", "")), esc(",".join(map(str, s.get("options") or []))),
                     *((" ".join(marks),) if marked else ())))
        classes.append(" ".join([*(["unx"] if i in unexpected else []), *(["crafted"] if origin != "kernel" else [])]))
    headers = ["#", "t", "sender", "segment", "win", "options", *([""] if marked else [])]
    return table(headers, rows, cls="segs", row_cls=classes)


def checked(case: Case) -> str:
    """What the case asserted, in order, expected vs seen; then what the strict wire mode allowed."""
    checks, allowed = case["checks"], case["allowed"]
    if not checks and not allowed:
        return ""
    out = ["<h3>Checked</h3>"]
    if checks:
        failed = sum(c["ok"] is False for c in checks)
        summary = f"{len(checks)} check{'s' if len(checks) != 1 else ''}"
        summary += f", <span class='bad'>{failed} failed</span>" if failed else ", all passed"
        out.append(f"<p class='ckline muted'>{summary}</p>")
        rows, classes = [], []
        for c in checks:
            ok = c["ok"]
            cls, mark = ("ok", "✓") if ok is True else ("bad", "✗") if ok is False else ("unknown", "?")
            what = esc(c["what"])
            if c["params"]:  # opaque to the report: a tooltip, for whoever debugs the check
                what = f'<span title="{esc(_json(c["params"]))}">{what}</span>'
            if c["why"]:
                what += f"<br><span class='muted'>why: {esc(c['why'])}</span>"
            t = fmt_t(float(c["t"])) if isinstance(c["t"], (int, float)) else ""
            rows.append((mark, what, f"<code>{esc(c['expected'])}</code>",
                         f"<code>{esc(c['seen'])}</code>", esc(c["kind"]), t))
            classes.append(cls)
        out.append(table(["", "what", "expected", "seen", "kind", "at"], rows, cls="checks", row_cls=classes))
    if allowed:
        rows = []
        for a in allowed:
            code = f'<code title="{esc(_json(a["params"]))}">' if a["params"] else "<code>"
            count = esc(a["count"]) if a["count"] is not None else '<span class="muted">n/a</span>'
            rows.append((esc(a["sender"]), f"{code}{esc(a['pattern'])}</code>", count, esc(a["why"])))
        out.append("<p class='ckline muted'>Segments allowed besides the expected ones (strict wire mode):</p>")
        out.append(table(["sender", "pattern", "matched", "why allowed"], rows, cls="allowed"))
    return "".join(out)


def observations(case: Case) -> str:
    items = [
        (str(key), f'<span title="{esc(_json(obs.get("value")))}">{esc(obs.get("text") or _json(obs.get("value")))}'
                   "</span>")
        for key, obs in case["observations"].items()
    ]
    return _titled("Observed", meta_list(items)) if items else ""


def measured_table(case: Case) -> str:
    """Values the case measured and recorded as evidence (counters, errnos, readbacks)."""
    rows = [
        (fmt_t(float(m["t"])) if isinstance(m["t"], (int, float)) else "", esc(m["name"]),
         f"<code>{esc(_json(m['value']))}</code>")
        for m in case["measured"]
    ]
    return _titled("Measured values", _folded(table(["t", "name", "value"], rows), len(rows), "measured values"))


def claim_backrefs(refs: list[tuple[Claim, dict[str, Any]]]) -> str:
    """The claims this case is evidence for, linking back to the claims section."""
    if not refs:
        return ""
    items = []
    for claim, ev in refs:
        quote = claim["quote"] or claim["id"]
        items.append(f'<li><a href="#{claim_anchor(claim)}">{esc(quote)}</a> '
                     f'{_verdict_badge(claim["verdict"])} — this case {_evidence_verdict(ev["verdict"])}</li>')
    return f"<h3>Evidence for the article's claims</h3><ul class='refs'>{''.join(items)}</ul>"


def states_table(case: Case) -> str:
    states = sorted(case["states"], key=lambda s: s["t"])
    queues = any("rqueue" in s or "wqueue" in s for s in states)
    rows = [
        (fmt_t(s["t"]), esc(s.get("side")), f"<b>{esc(s.get('state'))}</b>", esc(s.get("timer", "")),
         esc(s.get("expires_ms", "")), esc(s.get("retrans", "")),
         *((esc(s.get("rqueue", "")), esc(s.get("wqueue", ""))) if queues else ()))
        for s in states
    ]
    headers = ["t", "side", "state", "timer", "expires (ms)", "retrans", *(("recv-q", "send-q") if queues else ())]
    return _folded(table(headers, rows), len(rows), "state rows")


def _folded(content: str, count: int, what: str, limit: int = 30) -> str:
    """Long tables start folded."""
    if count <= limit:
        return content
    return f"<details><summary>{count} {esc(what)}</summary>{content}</details>"


def syscalls_table(case: Case) -> str:
    rows = [
        (fmt_t(s["t"]), esc(s.get("side")), f"<code>{esc(s.get('call'))}({esc(s.get('args', ''))})</code>",
         esc(s.get("result", "")), f"<b>{esc(s['errno'])}</b>" if s.get("errno") else "",
         fmt_t(s["t_end"] - s["t"]) if isinstance(s.get("t_end"), (int, float)) else "")
        for s in sorted(case["syscalls"], key=lambda s: s["t"])
    ]
    return _folded(table(["t", "side", "call", "result", "errno", "took"], rows), len(rows), "syscalls")


def durations_table(case: Case) -> str:
    rows = []
    for d in case["durations"]:
        ok = bool(d.get("ok"))
        rows.append((
            esc(d.get("name")),
            f'<span class="num">{_measured(d)}</span>',
            _secs(d.get("expected_s")),
            f"{_secs(d.get('low_s'))} … {_secs(d.get('high_s'))}",
            tolerance_bar(d),
            '<span class="badge o-passed">within</span>' if ok else '<span class="badge o-failed">outside</span>',
            esc(d.get("source", "")),
        ))
    return _titled("Measured vs expected durations",
                   table(["what", "measured", "expected", "tolerance", "", "", "source"], rows))


def _measured(d: dict) -> str:
    """The measured duration: one time, or the span the evidence gives when it is wider than a millisecond (a state
    change lies between two sock_diag reads)."""
    span = duration_span(d)
    if span is None or span[1] - span[0] < 0.001:
        return _secs(d.get("measured_s"))
    return f"{span[0]:.3f} … {span[1]:.3f} s"


def _secs(value: object) -> str:
    return f"{value:.3f} s" if isinstance(value, (int, float)) else "?"


def tolerance_bar(d: dict) -> str:
    """A small SVG: the tolerance band, the expected value (tick), the measured value (dot) and the span it is known
    to lie in (a bar through the dot)."""
    nums = [d.get(k) for k in ("measured_s", "expected_s", "low_s", "high_s")]
    span = duration_span(d)
    if span is None or not all(isinstance(v, (int, float)) for v in nums):
        return ""
    measured, expected, low, high = (float(v) for v in nums)  # type: ignore[arg-type]
    lo, hi = min(span[0], low, expected), max(span[1], high, expected)
    pad = (hi - lo) * 0.15 or max(abs(hi) * 0.05, 1e-6)
    lo, hi = lo - pad, hi + pad
    w = 160

    def x(v: float) -> float:
        return 4 + (v - lo) / (hi - lo) * (w - 8)

    cls = "ok" if d.get("ok") else "bad"
    return (
        f'<svg class="tol" width="{w}" height="16" viewBox="0 0 {w} 16" role="img" '
        f'aria-label="measured {measured:.3f}s, tolerance {low:.3f}…{high:.3f}s">'
        f'<line class="ax" x1="2" y1="8" x2="{w - 2}" y2="8"/>'
        f'<rect class="band" x="{x(low):.1f}" y="3" width="{max(1.0, x(high) - x(low)):.1f}" height="10"/>'
        f'<line class="exp" x1="{x(expected):.1f}" y1="1" x2="{x(expected):.1f}" y2="15"/>'
        f'<line class="span {cls}" x1="{x(span[0]):.1f}" y1="8" x2="{x(span[1]):.1f}" y2="8"/>'
        f'<circle class="{cls}" cx="{x(measured):.1f}" cy="8" r="4"/></svg>'
    )


def nstat_and_sysctls(case: Case) -> str:
    items = []
    for side, counters in case["nstat"].items():
        if counters:
            items.append((f"nstat {side}", "<code>" + esc(", ".join(f"{k}={v}" for k, v in counters.items()))
                          + "</code>"))
    if case["sysctls"]:
        items.append(("sysctls set by the case",
                      "<code>" + esc(", ".join(f"{k}={v}" for k, v in case["sysctls"].items())) + "</code>"))
    if case["markers"]:
        items.append(("markers", esc(", ".join(map(str, case["markers"])))))
    start, end = ladder.scenario_span(case)
    if start is not None or end is not None:
        text = f"{fmt_t(start) if start is not None else 'start'} → {fmt_t(end) if end is not None else 'end'}"
        items.append(("scenario", esc(text) + " <span class='muted'>(shaded in the ladder)</span>"))
    return meta_list(items) if items else ""


def pcap_link(run: Run, case: Case) -> str:
    pcap = case["pcap"]
    if not pcap:
        return "<p class='muted'>No pcap for this case.</p>"
    missing = "" if (run.dir / pcap).is_file() else " <span class='muted'>(file missing)</span>"
    return f'<p>Packet capture: <a href="{esc(pcap)}">{esc(pcap)}</a>{missing}</p>'
