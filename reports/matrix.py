"""The matrix: one report over run directories, each one kernel × profile (``python -m reports matrix``).

The comparison is ``reports/compare.py``'s, unchanged (:func:`reports.compare.compare`): the same cases compared,
the same verdict and exit status (0 same behaviour, 1 differs or fingerprint versions differ, 2 bad input), the
same handling of skips (a case skipped by configuration is not a difference) and of runs that did not complete
(warned, only the cases every run finished compared).  What the matrix adds is the layout:

- configuration rows first, one column per run: the run directory, kernel release and version, execution
  (``run.execution``: host, or a guest under KVM or emulated), profiles, tuning, congestion control, harness
  commit, fingerprint version, run status, totals; then every sysctl in force whose value differs.  A row whose
  values differ is highlighted.
- then cases × runs: each cell the case's outcome in that run, linking to the case in that run's report
  (``RUNDIR/index.html#<slug>``, relative to the matrix file); a cell whose outcome or fingerprint differs from
  the first run's (the first run having the case, when the first lacks it) is highlighted and marked ``≠A``, with
  compare's sentences saying what changed as its tooltip.  Cases skipped by configuration, not finished by a run
  that did not complete, or absent are shown as such, not highlighted (absent from a complete run is a
  difference and is).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from . import status
from .compare import (
    CaseDiff,
    Comparison,
    _harness_commit,
    _load,
    _profiles,
    _totals_text,
    compare,
    fingerprint_version,
    print_text,
)
from .fmt import esc, slug
from .ktap import execution_text
from .load import Case, ResultsError, Run
from .page import OUTCOME_MARK, page, table

INDEX = "index.html"

CSS = """
table.matrix td.cell.differs{outline:3px solid #c62828;outline-offset:-3px;font-weight:700}
table.matrix td.cell.cfgskip{background:repeating-linear-gradient(135deg,#eceff1 0 6px,#fff 6px 12px);color:#555}
table.matrix td.cell.none{color:#999;background:#fff}
table.matrix tr.differs>td:first-child{border-left:5px solid #c62828;font-weight:600}
table.config tr.differs td{background:#fff3e0}table.config tr.differs td:first-child{border-left:5px solid #e65100}
table.config td{max-width:28em;overflow-wrap:anywhere}
tr[hidden]{display:none}
"""

SCRIPT = """
(function(){var box=document.getElementById('m-only');if(!box){return;}
function apply(){Array.prototype.forEach.call(document.querySelectorAll('#cases-runs tbody tr'),function(tr){
tr.hidden=box.checked&&!tr.classList.contains('differs');});}
box.addEventListener('change',apply);apply();})();
"""


def config_rows(runs: Sequence[Run], cmp: Comparison, links: Sequence[str | None]) -> list[tuple[str, list[str], bool]]:
    """(what, cell HTML per run, differs) for the configuration part: fixed rows, then the sysctls compare found
    differing (in force in every run, then present in some only)."""
    def row(what: str, values: list[str], html: list[str] | None = None) -> tuple[str, list[str], bool]:
        return what, html or [esc(v) for v in values], len(set(values)) > 1

    def overrides(r: Run) -> str:
        return " ".join(f"{k}={v}" for k, v in (r.meta.get("sysctl_overrides") or {}).items()) or "(none)"

    dirs = [r.dir.name for r in runs]
    dir_html = [f'<a href="{esc(link)}">{esc(d)}</a>' if link else f"{esc(d)} <span class='muted'>(no report)</span>"
                for d, link in zip(dirs, links, strict=True)]
    statuses = [status.short(r) for r in runs]
    status_html = [f'<b class="st-{esc(r.status)}" title="{esc(status.summary(r))}">{esc(s)}</b>'
                   if status.attention(r) else esc(s) for r, s in zip(runs, statuses, strict=True)]
    rows = [
        ("run directory", dir_html, False),  # always differs: never highlighted
        row("label", [r.label for r in runs]),
        row("kernel release", [r.kernel_release or "?" for r in runs]),
        row("kernel version", [str(r.meta.get("kernel", {}).get("version") or "?") for r in runs]),
        row("execution", [execution_text(r.meta) for r in runs]),
        row("profiles", [_profiles(r) for r in runs]),
        row("tuning (--profile, --sysctl)", [overrides(r) for r in runs]),
        row("congestion control", [str(r.meta.get("congestion_control") or "?") for r in runs]),
        row("harness commit", [_harness_commit(r) for r in runs]),
        row("fingerprint version", [f"v{fingerprint_version(r)}" for r in runs]),
        row("run status", statuses, status_html),
        row("totals", [_totals_text(r) for r in runs]),
    ]
    fixed = {"kernel release", "kernel version", "congestion control", "harness commit", "fingerprint version",
             "profiles", "tuning (--profile, --sysctl)"}
    rows += [row(what, values) for what, values in cmp.config if what not in fixed]
    rows += [row(what, values) for what, values in cmp.sysctls_partial]
    return rows


@dataclass
class Matrix:
    """compare's :class:`Comparison` indexed for the cells: each run's cases by id, each case's difference."""

    cmp: Comparison
    maps: list[dict[str, Case]] = field(default_factory=list)
    diffs: dict[str, CaseDiff] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.maps = [r.case_map() for r in self.cmp.runs]
        c = self.cmp
        self.diffs = {d.id: d for d in c.differing + c.partial + c.not_finished + c.config_skipped}

    def ids(self) -> list[str]:
        return sorted({i for m in self.maps for i in m}, key=lambda i: (i.split("/", 1)[0], i))

    def case(self, cid: str, i: int) -> Case | None:
        return self.maps[i].get(cid)

    def base(self, cid: str) -> int | None:
        """The run a row's cells are compared with: the first run having the case and not skipping it because of
        its configuration."""
        diff = self.diffs.get(cid)
        for i, case in enumerate(m.get(cid) for m in self.maps):
            if case is None:
                continue
            if diff is not None and case["outcome"] == "skipped" \
                    and f"skipped in {self.cmp.names[i]} (configuration)" in diff.reasons:
                continue
            return i
        return None

    def cell(self, cid: str, i: int) -> tuple[str, str]:
        """(kind, tooltip) of run ``i``'s cell for case ``cid``; kind: ``differs``, ``same``, ``cfgskip``,
        ``notfinished``, ``absent`` (missing from a run, not a difference) or ``missing`` (absent from a complete
        run: a difference)."""
        cmp, diff, case, name = self.cmp, self.diffs.get(cid), self.case(cid, i), self.cmp.names[i]
        if case is None:
            if diff is not None and diff in cmp.not_finished:
                return "notfinished", ", ".join(r for r in diff.reasons if r.endswith(f"run {name}")) or "not finished"
            if diff is not None and diff in cmp.partial:
                return "missing", f"missing from run {name}, which completed"
            return "absent", "not in this run"
        if diff is None or diff in cmp.not_finished:
            return "same", ""
        if case["outcome"] == "skipped" and f"skipped in {name} (configuration)" in diff.reasons:
            return "cfgskip", f"skipped in {name} because of its configuration: not a behaviour difference"
        if diff in cmp.config_skipped:
            return "same", ""
        base = self.base(cid)
        if base is None or base == i:
            return "same", ""
        other = self.case(cid, base)
        assert other is not None
        if other["outcome"] != case["outcome"] or (other["fingerprint"] and case["fingerprint"]
                                                   and other["fingerprint"] != case["fingerprint"]):
            said = [s for ch in diff.changes if ch.other == name for s in (ch.sentences or ch.raw)]
            return "differs", "; ".join(said[:6]) or f"differs from run {cmp.names[base]}"
        return "same", ""


def index_links(runs: Sequence[Run], output: Path) -> list[str | None]:
    """Each run's index.html relative to the matrix file's directory (None when the run has no report)."""
    start = output.resolve().parent
    out: list[str | None] = []
    for r in runs:
        index = r.dir.resolve() / INDEX
        out.append(Path(os.path.relpath(index, start)).as_posix() if index.is_file() else None)
    return out


def render_matrix(cmp: Comparison, output: Path) -> str:
    runs, names = cmp.runs, cmp.names
    links = index_links(runs, output)
    heads = [f"{n}: {r.dir.name}" for n, r in zip(names, runs, strict=True)]
    cls = "o-passed" if cmp.behaviour_same else "o-failed"
    body = [f"<style>{CSS}</style>",
            f"<header><h1>sockconf matrix — {len(runs)} runs</h1>",
            f'<p><span class="badge {cls}" style="font-size:15px">{esc(cmp.verdict())}</span></p>']
    body += [f'<div class="runstatus st-{esc(r.status)}" role="alert"><p class="st-line">warning: {esc(line)}</p>'
             "</div>" for (_, r), line in zip(cmp.incomplete_runs(), cmp.warnings(), strict=True)]
    body += [f"<p class='muted'>warning: run {esc(n)} ({esc(r.dir)}) has no {INDEX}: its cells link nowhere "
             f"(<code>python -m reports render {esc(r.dir)}</code> writes it)</p>"
             for n, r, link in zip(names, runs, links, strict=True) if link is None]
    body.append("</header><h2 id='configuration'>Configuration</h2>")
    crow = config_rows(runs, cmp, links)
    body.append(table(["", *heads], ([f"<code>{esc(what)}</code>", *cells] for what, cells, _ in crow),
                      cls="config", row_cls=["differs" if d else "" for _, _, d in crow]))
    body.append("<h2 id='behaviour'>Cases × runs</h2>")
    if cmp.versions_differ:
        versions = ", ".join(f"{n} v{v}" for n, v in zip(names, cmp.versions, strict=True))
        body.append(f"<p><b>Behaviour not compared</b>: the fingerprints come from different algorithm versions "
                    f"({esc(versions)}); outcomes are shown, nothing is highlighted.</p>")
    n_diff = len(cmp.differing) + len(cmp.partial)
    m = Matrix(cmp)
    body.append(f"<p>{n_diff} of {len(m.ids())} cases differ among the runs (outcome or behaviour "
                f"fingerprint, compared with run {esc(names[0])}, or with the first run having the case). "
                "Highlighted: a cell that differs. Each cell links to the case in that run's report."
                "</p><p class='noprint'><label><input type='checkbox' id='m-only'> differing cases only</label></p>")
    body.append(_cases_table(m, heads, links))
    body.append(f"<script>{SCRIPT}</script>")
    return page(f"sockconf matrix ({len(runs)} runs)", body, wide=True)


def _cases_table(m: Matrix, heads: list[str], links: Sequence[str | None]) -> str:
    rows = []
    names = m.cmp.names
    for cid in m.ids():
        cells, row_differs = [], False
        for i, name in enumerate(names):
            kind, tip = m.cell(cid, i)
            case = m.case(cid, i)
            row_differs |= kind in ("differs", "missing")
            if case is None:
                word = {"notfinished": "not finished", "missing": "missing"}.get(kind, "absent")
                extra = " differs" if kind == "missing" else ""
                cells.append(f'<td class="cell none{extra}" title="{esc(tip)}">{word}</td>')
                continue
            outcome = case["outcome"]
            text = esc(OUTCOME_MARK.get(outcome, outcome))
            if kind == "differs":
                base = m.base(cid)
                text += f" ≠{esc(names[base] if base is not None else names[0])}"
            elif kind == "cfgskip":
                text += " (configuration)"
            link = links[i]
            inner = f'<a href="{esc(link)}#{slug(cid)}">{text}</a>' if link else text
            extra = {"differs": " differs", "cfgskip": " cfgskip"}.get(kind, "")
            title = f' title="{esc(tip)}"' if tip else ""
            cells.append(f'<td class="cell o-{esc(outcome)}{extra}" data-run="{esc(name)}"{title}>{inner}</td>')
        tr = ' class="differs"' if row_differs else ""
        rows.append(f'<tr{tr} id="m-{slug(cid)}"><td>{esc(cid)}</td>{"".join(cells)}</tr>')
    head = "".join(f"<th>{esc(h)}</th>" for h in heads)
    return (f'<table class="matrix" id="cases-runs"><thead><tr><th>case</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def print_runs(cmp: Comparison, out: TextIO) -> None:
    out.write(f"matrix of {len(cmp.runs)} runs:\n")
    for n, r in zip(cmp.names, cmp.runs, strict=True):
        out.write(f"  {n}  {r.dir}  kernel {r.kernel_release or '?'}  {execution_text(r.meta)}  "
                  f"profiles {_profiles(r)}  {status.short(r)}\n")
    out.write("\n")


def run_matrix(dirs: Sequence[Path], output: str | Path | None, out: TextIO | None = None) -> int:
    """The ``matrix`` command: load the runs (a killed run is rebuilt in memory), print compare's text, write the
    matrix HTML (default ./matrix.html); return compare's exit status."""
    out = out or sys.stdout
    if not dirs:
        raise ResultsError("matrix needs at least one run directory")
    resolved = [Path(d).resolve() for d in dirs]
    if len(set(resolved)) < len(resolved):
        raise ResultsError("matrix: a run directory is given twice")
    runs = [_load(Path(d)) for d in dirs]
    cmp = compare(runs)
    path = Path(output) if output else Path("matrix.html")
    print_runs(cmp, out)
    print_text(cmp, out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_matrix(cmp, path), encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"{path}: cannot write: {exc.strerror or exc}") from None
    out.write(f"matrix: {path}\n")
    return 0 if cmp.behaviour_same else 1
