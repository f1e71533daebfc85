"""Compare two or more runs: configuration first, then behaviour.

Configuration = kernel release and version, congestion control, the --sysctl overrides, and the sysctls in
force (values that differ, and sysctls present in some runs only).  Behaviour = for every case id, the
outcome and the behaviour fingerprint computed by the plugin (timing noise is not part of it).  A case
without a fingerprint in some run is compared by outcome only, and the output says so.

Behaviour is the same when every case is present in every run with equal outcomes and fingerprints; only
then is the exit status 0.  Configuration differences are always printed but never change the exit status
on their own: "configuration differs; behaviour identical" is a valid, successful answer.

A run that did not complete (``run.status`` interrupted or incomplete, see ``reports/status.py``) gets a
warning line, and only the cases every run finished are compared: a case missing from such a run (or whose
evidence it lost) is "not finished in run X", listed and counted apart from the differences, and the verdict
says "partial comparison: ...; partial: N cases not compared".  The exit status is then 1 if the cases compared
differ (or a case is missing from a run that did complete), else 0.  A run directory whose results.json was
never written (a killed run) is compared from its case files, rebuilt in memory; nothing is written.
"""

from __future__ import annotations

import difflib
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from . import ladder, status
from .fmt import esc, slug
from .load import OUTCOMES, Case, ResultsError, Run
from .page import badge, meta_list, page, table
from .rebuild import inspect, load_rebuilt

ABSENT = "(absent)"


@dataclass
class CaseDiff:
    id: str
    cases: list[Case | None]  # one per run, None when the run lacks the case
    reasons: list[str] = field(default_factory=list)  # outcome / fingerprint / missing / not finished in X


@dataclass
class Comparison:
    runs: list[Run]
    names: list[str]
    config: list[tuple[str, list[str]]]  # (what, value per run) for what differs; sysctl values included
    sysctls_partial: list[tuple[str, list[str]]]  # sysctls present in some runs only
    differing: list[CaseDiff]  # common cases whose outcome or fingerprint differ
    partial: list[CaseDiff]  # cases present in only some runs
    outcome_only: list[str]  # common cases compared without a fingerprint
    common: int
    not_finished: list[CaseDiff] = field(default_factory=list)  # absent only from runs that did not finish them

    @property
    def config_same(self) -> bool:
        return not self.config and not self.sysctls_partial

    @property
    def behaviour_same(self) -> bool:
        """The cases compared behave the same (cases some run did not finish are not compared)."""
        return not self.differing and not self.partial

    @property
    def is_partial(self) -> bool:
        """Some run did not complete (or lost evidence): only the cases every run finished were compared."""
        return bool(self.not_finished) or any(status.attention(r) for r in self.runs)

    def incomplete_runs(self) -> list[tuple[str, Run]]:
        return [(n, r) for n, r in zip(self.names, self.runs, strict=True) if status.attention(r)]

    def verdict(self) -> str:
        config = "configuration identical" if self.config_same else "configuration differs"
        every = "finished in every run" if self.is_partial else "in every run"
        if self.behaviour_same:
            text = f"{config}; behaviour identical ({plural(self.common, 'case')} {every})"
        else:
            parts = []
            if self.differing:
                parts.append(f"{len(self.differing)} of {plural(self.common, 'common case')} differ")
            if self.partial:
                parts.append(f"{plural(len(self.partial), 'case')} missing from some runs")
            text = f"{config}; behaviour differs: {', '.join(parts)}"
        if self.is_partial:
            return f"partial comparison: {text}; partial: {plural(len(self.not_finished), 'case')} not compared"
        return text

    def warnings(self) -> list[str]:
        """One line per run that did not complete or lost evidence."""
        return [f"run {n} ({r.label}) {status.summary(r)}; only the cases every run finished are compared"
                + (f" [{r.note}]" if r.note else "")
                for n, r in self.incomplete_runs()]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def run_names(runs: Sequence[Run]) -> list[str]:
    letters = string.ascii_uppercase
    return [letters[i] if i < len(letters) else f"R{i + 1}" for i in range(len(runs))]


def compare(runs: Sequence[Run]) -> Comparison:
    runs = list(runs)
    names = run_names(runs)
    config, partial_sysctls = _config(runs)
    maps = [r.case_map() for r in runs]
    lost = [{str(item["case"]) for item in r.lost} for r in runs]
    all_ids = sorted({i for m in maps for i in m}, key=lambda i: (i.split("/", 1)[0], i))
    differing, partial, outcome_only, not_finished = [], [], [], []
    common = 0
    for cid in all_ids:
        cases = [m.get(cid) for m in maps]
        present = [c for c in cases if c is not None]
        if len(present) < len(cases):
            missing = [i for i, c in enumerate(cases) if c is None]
            if all(not runs[i].complete or cid in lost[i] for i in missing):
                # not a difference: the runs lacking it did not get to finish it (or lost its evidence)
                why = [f"{'evidence lost' if cid in lost[i] else 'not finished'} in run {names[i]}" for i in missing]
                not_finished.append(CaseDiff(cid, cases, why))
            else:
                partial.append(CaseDiff(cid, cases, ["missing"]))
            continue
        common += 1
        reasons = []
        if len({c["outcome"] for c in present}) > 1:
            reasons.append("outcome")
        if all(c["fingerprint"] for c in present):
            if len({c["fingerprint"] for c in present}) > 1:
                reasons.append("fingerprint")
        else:
            outcome_only.append(cid)
        if reasons:
            differing.append(CaseDiff(cid, cases, reasons))
    return Comparison(runs, names, config, partial_sysctls, differing, partial, outcome_only, common, not_finished)


def _config(runs: list[Run]) -> tuple[list[tuple[str, list[str]]], list[tuple[str, list[str]]]]:
    def overrides(r: Run) -> str:
        return " ".join(f"{k}={v}" for k, v in r.meta.get("sysctl_overrides", {}).items()) or "(none)"

    rows: list[tuple[str, list[str]]] = [
        ("kernel release", [r.kernel_release or "?" for r in runs]),
        ("kernel version", [str(r.meta.get("kernel", {}).get("version") or "?") for r in runs]),
        ("congestion control", [str(r.meta.get("congestion_control") or "?") for r in runs]),
        ("--sysctl overrides", [overrides(r) for r in runs]),
    ]
    config = [row for row in rows if len(set(row[1])) > 1]
    partial = []
    names = sorted({n for r in runs for n in r.meta.get("sysctls", {})})
    for name in names:
        values = [_sysctl_value(r, name) for r in runs]
        if len({" ".join(v.split()) for v in values}) <= 1:
            continue
        (partial if ABSENT in values else config).append((name, values))
    return config, partial


def _sysctl_value(run: Run, name: str) -> str:
    info = run.meta.get("sysctls", {}).get(name)
    if not isinstance(info, dict):
        return ABSENT
    value = str(info.get("value", ""))
    return f"{value} (given)" if info.get("given") else value


def fingerprint_diff(a: Case, b: Case, limit: int = 12) -> list[str]:
    """Changed lines between two fingerprint texts, ``-`` for ``a`` and ``+`` for ``b``."""
    lines = difflib.unified_diff(
        str(a["fingerprint_text"] or "").splitlines(), str(b["fingerprint_text"] or "").splitlines(), n=0,
        lineterm="",
    )
    out = [ln for ln in lines if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return out if len(out) <= limit else [*out[:limit], f"… {len(out) - limit} more changed lines"]


def _cell(case: Case | None) -> str:
    if case is None:
        return "—"
    fp = str(case["fingerprint"] or "")[:8] or "no-fp"
    return f"{case['outcome']} {fp}"


def _columns(rows: list[list[str]], out: TextIO, indent: str = "  ", max_first: int = 64) -> None:
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    widths[0] = min(widths[0], max_first)
    for r in rows:
        first = r[0] if len(r[0]) <= widths[0] else _shorten(r[0], widths[0])
        cells = [first.ljust(widths[0])] + [c.ljust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        out.write(indent + "  ".join(cells).rstrip() + "\n")


def _shorten(text: str, width: int) -> str:
    """Cut the middle, keeping both ends: case ids differ in their area and in their [params]."""
    keep = width - 1
    return text[: keep - keep // 2] + "…" + text[len(text) - keep // 2 :]


def print_text(cmp: Comparison, out: TextIO) -> None:
    names = cmp.names
    out.write("runs:\n")
    _columns(
        [[n, r.label, r.kernel_release, str(r.dir), status.short(r), _totals_text(r)]
         for n, r in zip(names, cmp.runs, strict=True)],
        out,
    )
    for line in cmp.warnings():
        out.write(f"warning: {line}\n")
    out.write("\nconfiguration:\n")
    if cmp.config_same:
        out.write("  identical (kernel, congestion control, --sysctl overrides, sysctls in force)\n")
    if cmp.config:
        _columns([["", *names], *([what, *vals] for what, vals in cmp.config)], out)
    if cmp.sysctls_partial:
        out.write("  sysctls present in only some runs:\n")
        _columns([["", *names], *([what, *vals] for what, vals in cmp.sysctls_partial)], out)

    out.write("\nbehaviour:\n")
    if not cmp.differing:
        where = "finished in" if cmp.is_partial else "present in"
        out.write(f"  all {cmp.common} cases {where} every run have the same outcome and fingerprint\n")
    else:
        out.write("  cases whose outcome or fingerprint differ (outcome + fingerprint prefix):\n")
        _columns([["case", *names, "differs in"],
                  *([d.id, *map(_cell, d.cases), ", ".join(d.reasons)] for d in cmp.differing)], out)
        for d in cmp.differing:
            base = d.cases[0]
            for name, other in zip(names[1:], d.cases[1:], strict=True):
                if base is None or other is None or base["fingerprint"] == other["fingerprint"]:
                    continue
                lines = fingerprint_diff(base, other)
                if lines:
                    out.write(f"  {d.id}: fingerprint {names[0]} → {name}\n")
                    out.writelines(f"      {ln}\n" for ln in lines)
    if cmp.partial:
        out.write("  cases present in only some runs:\n")
        _columns([["case", *names], *([d.id, *map(_cell, d.cases)] for d in cmp.partial)], out)
    if cmp.not_finished:
        out.write(f"  not compared: {_not_finished_text(cmp)}:\n")
        _columns([["case", *names, "why"],
                  *([d.id, *map(_cell, d.cases), ", ".join(d.reasons)] for d in cmp.not_finished)], out)
    if cmp.outcome_only:
        out.write(f"  note: {_outcome_only_note(cmp)}\n")
    out.write(f"\nverdict: {cmp.verdict()}\n")


def _not_finished_text(cmp: Comparison) -> str:
    """``175 cases not finished in run B``, per run (a case can be missing from several)."""
    counts = []
    for i, name in enumerate(cmp.names):
        n = sum(d.cases[i] is None for d in cmp.not_finished)
        lost = sum(f"evidence lost in run {name}" in d.reasons for d in cmp.not_finished)
        if n:
            counts.append(f"{n} not finished in run {name}" + (f", {lost} of them with evidence lost" if lost else ""))
    return f"{plural(len(cmp.not_finished), 'case')} ({'; '.join(counts)})"


def _outcome_only_note(cmp: Comparison) -> str:
    shown = ", ".join(cmp.outcome_only[:8]) + (" …" if len(cmp.outcome_only) > 8 else "")
    lack = "lacks" if len(cmp.outcome_only) == 1 else "lack"
    return (f"{plural(len(cmp.outcome_only), 'case')} {lack} a fingerprint in some run, so compared by outcome "
            f"only: {shown}")


def _totals_text(run: Run) -> str:
    return " ".join(f"{run.totals[o]} {o}" for o in OUTCOMES if run.totals[o]) or "no cases"


def render_diff(cmp: Comparison) -> str:
    names = cmp.names
    runs_rows = [
        (f"<b>{n}</b>", esc(r.label), esc(r.kernel_release), f"<code>{esc(r.dir)}</code>",
         f"<code>{esc(r.meta.get('id', ''))}</code>",
         f'<b class="st-{esc(r.status)}">{esc(status.short(r))}</b>' if status.attention(r) else esc(r.status),
         esc(_totals_text(r)))
        for n, r in zip(names, cmp.runs, strict=True)
    ]
    cls = "o-passed" if cmp.behaviour_same else "o-failed"
    warnings = "".join(f'<div class="runstatus st-{esc(r.status)}" role="alert"><p class="st-line">warning: '
                       f"{esc(line)}</p></div>"
                       for (_, r), line in zip(cmp.incomplete_runs(), cmp.warnings(), strict=True))
    body = [
        f"<header><h1>sockconf compare — {esc(' vs '.join(r.label for r in cmp.runs))}</h1>",
        f'<p><span class="badge {cls}" style="font-size:15px">{esc(cmp.verdict())}</span></p>',
        warnings,
        table(["", "label", "kernel", "directory", "run id", "status", "totals"], runs_rows),
        "</header><h2>Configuration</h2>",
    ]
    if cmp.config_same:
        body.append("<p>Identical: kernel, congestion control, --sysctl overrides and every sysctl in force.</p>")
    body.append(table(["", *names], ([f"<code>{esc(w)}</code>", *map(esc, v)] for w, v in cmp.config)))
    if cmp.sysctls_partial:
        body.append("<h3>Sysctls present in only some runs</h3>")
        body.append(table(["", *names], ([f"<code>{esc(w)}</code>", *map(esc, v)] for w, v in cmp.sysctls_partial)))
    body.append("<h2>Behaviour</h2>")
    if cmp.outcome_only:
        body.append(f"<p class='muted'>{_outcome_only_note(cmp)}</p>")
    if len(cmp.runs) > 2:
        body.append(_matrix(cmp))
    if not cmp.behaviour_same:
        rows = [(f'<a href="#{slug(d.id)}">{esc(d.id)}</a>', *map(_badge_or_dash, d.cases), esc(", ".join(d.reasons)))
                for d in cmp.differing + cmp.partial]
        body.append(table(["case", *names, "differs in"], rows))
    else:
        every = "finished in every run" if cmp.is_partial else "in every run"
        body.append(f"<p>All {cmp.common} cases {every} have the same outcome and fingerprint.</p>")
    if cmp.not_finished:
        rows = [(esc(d.id), *map(_badge_or_dash, d.cases), esc(", ".join(d.reasons))) for d in cmp.not_finished]
        body.append(f"<details open><summary><b>Not compared</b>: {esc(_not_finished_text(cmp))}</summary>"
                    f"{table(['case', *names, 'why'], rows)}</details>")
    body += [_case_diff(cmp, d) for d in cmp.differing + cmp.partial]
    return page("sockconf compare", body, wide=True)


def _badge_or_dash(case: Case | None) -> str:
    return badge(case["outcome"]) if case else '<span class="muted">absent</span>'


def _matrix(cmp: Comparison) -> str:
    """Cases × runs for more than two runs: outcome per run, ≠ where the fingerprint differs from run A."""
    maps = [r.case_map() for r in cmp.runs]
    ids = sorted({i for m in maps for i in m}, key=lambda i: (i.split("/", 1)[0], i))
    diff_ids = {d.id for d in cmp.differing + cmp.partial}
    unfinished = {d.id: d for d in cmp.not_finished}
    head = "".join(f"<th>{esc(n)}</th>" for n in cmp.names)
    rows = []
    for cid in ids:
        cases = [m.get(cid) for m in maps]
        first = cases[0]
        cells = []
        for case in cases:
            if case is None:
                word = "not finished" if cid in unfinished else "absent"
                cells.append(f'<td class="cell o-none">{word}</td>')
                continue
            mark = ""
            if first is not None and case is not first:
                if not (case["fingerprint"] and first["fingerprint"]):
                    mark = " (no fingerprint)"
                elif case["fingerprint"] != first["fingerprint"]:
                    mark = f" ≠{cmp.names[0]}"
            cells.append(f'<td class="cell o-{case["outcome"]}">{esc(case["outcome"])}{mark}</td>')
        name = f'<a href="#{slug(cid)}">{esc(cid)}</a>' if cid in diff_ids else esc(cid)
        rows.append(f"<tr><td>{name}</td>{''.join(cells)}</tr>")
    return (f'<h3>Cases × runs</h3><table class="matrix"><thead><tr><th>case</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _case_diff(cmp: Comparison, d: CaseDiff) -> str:
    cols = []
    for name, case in zip(cmp.names, d.cases, strict=True):
        if case is None:
            cols.append(f"<div><h3>{esc(name)}</h3><p class='muted'>not in this run</p></div>")
            continue
        svg, _ = ladder.render(case)
        cols.append(
            f"<div><h3>{esc(name)}: {badge(case['outcome'])}</h3>"
            + (f"<pre class='message'>{esc(case['message'])}</pre>" if case["message"] else "")
            + (f'<div class="ladderbox">{svg}</div>' if svg else "<p class='muted'>no observations</p>")
            + "</div>"
        )
    base = d.cases[0]
    diffs = []
    for name, other in zip(cmp.names[1:], d.cases[1:], strict=True):
        if base is not None and other is not None and base["fingerprint"] != other["fingerprint"]:
            lines = "\n".join(
                f'<span class="diffline-{"add" if ln.startswith("+") else "del"}">{esc(ln)}</span>'
                for ln in fingerprint_diff(base, other)
            )
            diffs.append(f"<h3>fingerprint {esc(cmp.names[0])} → {esc(name)}</h3><pre>{lines}</pre>")
    title = next(c for c in d.cases if c is not None)["title"]
    info = meta_list([("differs in", esc(", ".join(d.reasons)))])
    return (
        f'<details class="case" id="{slug(d.id)}" open><summary>{esc(d.id)} '
        f'<span class="mono">{esc(title)}</span></summary>{info}{"".join(diffs)}'
        f'<div class="cols side">{"".join(cols)}</div></details>'
    )


def _load(run_dir: Path) -> Run:
    """A run as written, or, when it was killed before writing results.json, rebuilt in memory."""
    run, why = inspect(run_dir)
    return run if run is not None else load_rebuilt(run_dir, why)


def run_compare(dirs: Sequence[Path], output: str | None, out: TextIO | None = None) -> int:
    """The ``compare`` command: load, print, optionally write the HTML diff; return the exit status."""
    out = out or sys.stdout
    runs = [_load(d) for d in dirs]
    cmp = compare(runs)
    print_text(cmp, out)
    if output:
        path = Path(output)
        try:
            path.write_text(render_diff(cmp), encoding="utf-8")
        except OSError as exc:
            raise ResultsError(f"{path}: cannot write: {exc.strerror or exc}") from None
        out.write(f"diff: {path}\n")
    return 0 if cmp.behaviour_same else 1
