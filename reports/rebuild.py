"""Rebuild ``results.json`` from the evidence a killed or crashed run left behind.

At its start the controller writes ``RUN_DIR/run.json`` (the results' ``run`` object with ``"status":
"running"`` and ``"selected"``); each finished case leaves ``RUN_DIR/cases/<case>.json`` (written to a
``.tmp`` file, then renamed); ``results.json`` is written only at the end.  When the run was killed (or the
machine crashed) there is no ``results.json``: :func:`rebuild` makes one from ``run.json`` and the case files,
marked ``"status": "incomplete"``, with ``"finished"`` = the readable case files and every case file it
could not use listed in ``run.lost`` with the reason (truncated, malformed, a ``.tmp`` never renamed into
place), so no evidence disappears silently.  Claims are not decided (``"claims": null``): that needs the
conformance package, which the reports never import.  Without ``run.json`` it rebuilds what it can (label =
the directory name) and says the run header was lost.

An intact ``results.json`` is never replaced, whatever its status.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import SCHEMA, SCHEMAS
from .load import OUTCOMES, RESULTS_FILE, ResultsError, Run, _validate_case, load_run, read_json, validate

RUN_FILE = "run.json"
CASES_DIR = "cases"
BROKEN_SUFFIX = ".broken"
CLAIMS_NOTE = ("Claims were not decided in a rebuilt run: deciding them needs the conformance package, which "
               "the reports do not import.")

_ID = re.compile(r'"id"\s*:\s*("(?:[^"\\]|\\.)*")')


def inspect(run_dir: str | Path) -> tuple[Run | None, str | None]:
    """``(the run as written, None)``, or ``(None, why)`` when its results.json must be rebuilt from the run's
    evidence (``run.json``, ``cases/``): never written, cut short while being written, or still saying running.

    Raises :class:`ResultsError` as :func:`load_run` does, and when ``results.json`` belongs to an earlier run
    than the one ``run.json`` says was running (which case files belong to which run is then unknown)."""
    run_dir = Path(run_dir)
    results, header = run_dir / RESULTS_FILE, run_dir / RUN_FILE
    if not (run_dir.is_dir() and (header.is_file() or (run_dir / CASES_DIR).is_dir())):
        return load_run(run_dir), None  # nothing to rebuild from
    if not results.exists():
        return None, "results.json was never written"
    try:
        run = load_run(run_dir)
    except ResultsError:
        _, problem = read_json(results)
        if problem:
            return None, f"results.json is unusable ({problem}): the run stopped while writing it"
        raise  # readable JSON, but not a results document the reports read: say so, rebuild nothing
    if run.status == "running":
        return None, "results.json says the run was still running"
    head, _ = read_json(header) if header.is_file() else (None, None)
    if isinstance(head, dict) and head.get("status") == "running" and _other_run(head, run.meta):
        new = f"{head.get('id')} (started {head.get('started')})"
        raise ResultsError(
            f"{results}: is from run {run.meta.get('id')} (started {run.meta.get('started')}), but {RUN_FILE} says "
            f"run {new} started after it and never finished; move results.json away to rebuild that run"
        )
    return run, None


def _other_run(head: dict[str, Any], meta: dict[str, Any]) -> bool:
    """run.json describes another run than results.json (the run id is the directory name by default, so a
    reused directory keeps it: the start time tells them apart)."""
    if head.get("id") and meta.get("id") and head["id"] != meta["id"]:
        return True
    started, finished_run = _epoch(head.get("started")), _epoch(meta.get("started"))
    return started is not None and finished_run is not None and started > finished_run + 1


def needs_rebuild(run_dir: str | Path) -> str | None:
    """Why ``run_dir``'s results.json must be rebuilt, or None when it need not (or there is nothing to rebuild
    from).  Raises :class:`ResultsError` as :func:`inspect` does."""
    run_dir = Path(run_dir)
    if not (run_dir.is_dir() and ((run_dir / RUN_FILE).is_file() or (run_dir / CASES_DIR).is_dir())):
        return None
    return inspect(run_dir)[1]


def rebuild(run_dir: str | Path) -> Path:
    """Write ``run_dir/results.json`` rebuilt from ``run.json`` and ``cases/*.json``; return its path.

    Refuses (:class:`ResultsError`) to replace an intact results.json; an unreadable one (the run stopped
    while writing it) is kept beside the new one as ``results.json.broken``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir}: no such run directory")
    results = run_dir / RESULTS_FILE
    why = needs_rebuild(run_dir)
    if results.exists() and why is None:
        raise ResultsError(f"{results}: already written by the run; not overwritten")
    data = rebuilt_results(run_dir, why)
    tmp = run_dir / f".{RESULTS_FILE}.tmp"
    try:
        if results.exists():
            results.replace(run_dir / (RESULTS_FILE + BROKEN_SUFFIX))
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        tmp.replace(results)
    except OSError as exc:
        raise ResultsError(f"{results}: cannot write: {exc.strerror or exc}") from None
    return results


def load_rebuilt(run_dir: str | Path, why: str | None = None) -> Run:
    """The rebuilt run, validated, without writing anything (for commands that only read, like compare)."""
    run_dir = Path(run_dir)
    data = rebuilt_results(run_dir, why)
    validate(data, f"{run_dir} (rebuilt from {RUN_FILE} and {CASES_DIR}/)")
    return Run(dir=run_dir, data=data, note=f"rebuilt in memory from {RUN_FILE} and {CASES_DIR}/ ({why})"
               if why else f"rebuilt in memory from {RUN_FILE} and {CASES_DIR}/")


def rebuilt_results(run_dir: Path, why: str | None = None) -> dict[str, Any]:
    """The results document of a run that never wrote its own: status incomplete, claims null."""
    header, cases_dir = run_dir / RUN_FILE, run_dir / CASES_DIR
    if not header.is_file() and not cases_dir.is_dir():
        raise ResultsError(f"{run_dir}: no {RESULTS_FILE}, and no {RUN_FILE} or {CASES_DIR}/ to rebuild it from")
    head, header_lost = _header(header)
    cases, lost, last_written = _cases(run_dir, cases_dir)
    schema = head.pop("schema", None) or SCHEMA
    if schema not in SCHEMAS:
        readable = " or ".join(repr(s) for s in SCHEMAS)
        raise ResultsError(f"{header}: schema is {schema!r}, this version of reports reads {readable}")
    run = head or {"id": run_dir.name, "label": run_dir.name}
    run.setdefault("label", run_dir.name)
    if not run.get("started"):
        t0s = [c["t0"] for c in cases if isinstance(c.get("t0"), (int, float))]
        if t0s:
            run["started"] = datetime.fromtimestamp(min(t0s), UTC).isoformat()
    started = _epoch(run.get("started"))
    rebuilt = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "reason": why or ""}
    if started is not None and last_written is not None and run.get("duration_s") is None:
        run["duration_s"] = round(max(0.0, last_written - started), 3)
        rebuilt["duration"] = "until the last case file was written"
    notes = [f"Rebuilt from the evidence in {RUN_FILE} and {CASES_DIR}/ after the run was killed or crashed"
             + (f" ({why})" if why else "") + "."]
    if header_lost:
        notes.append(f"The run header was lost ({header_lost}): the kernel, sysctls, packages and the number of "
                     "selected cases are unknown.")
    notes.append(CLAIMS_NOTE)
    run.update(
        status="incomplete",
        selected=run.get("selected") if isinstance(run.get("selected"), int) else None,
        finished=len(cases),
        lost=lost,
        note=" ".join(notes),
        rebuilt=rebuilt,
    )
    run.pop("signal", None)
    if header_lost:
        run["header_lost"] = header_lost
    totals = {o: 0 for o in OUTCOMES}
    for case in cases:
        totals[case["outcome"]] += 1
    return {"schema": schema, "run": run, "totals": totals, "claims": None,
            "cases": sorted(cases, key=lambda c: c["id"])}


def _header(path: Path) -> tuple[dict[str, Any], str]:
    """run.json's object, or ({}, why it is lost)."""
    if not path.is_file():
        return {}, f"{RUN_FILE} is missing"
    head, problem = read_json(path)
    if problem:
        return {}, f"{RUN_FILE}: {problem}"
    if not isinstance(head, dict):
        return {}, f"{RUN_FILE}: not a JSON object"
    return head, ""


def _cases(run_dir: Path, cases_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float | None]:
    """The readable case files; every other case file (and every left-over .tmp) as a ``lost`` entry; the
    time the last case file was written."""
    cases: list[dict[str, Any]] = []
    lost: list[dict[str, Any]] = []
    if not cases_dir.is_dir():
        return cases, lost, None
    by_id: dict[str, str] = {}
    stems: set[str] = set()
    files = sorted(cases_dir.glob("*.json"))
    last = max((p.stat().st_mtime for p in files), default=None)
    for path in files:
        rel = path.relative_to(run_dir).as_posix()
        doc, problem = read_json(path)
        if problem is None:
            problem = _case_problem(doc)
        if problem is None and doc["id"] in by_id:
            problem = f"duplicate case id: {by_id[doc['id']]} has the same"
        if problem is not None:
            lost.append({"case": _case_name(path, doc), "file": rel, "reason": problem})
            continue
        by_id[doc["id"]] = rel
        stems.add(path.stem)
        cases.append(doc)
    for path in sorted(cases_dir.glob("*.tmp")):
        if path.stem in stems:
            continue  # the case file it was becoming is there
        doc, problem = read_json(path)
        if isinstance(doc, dict) and doc.get("id") in by_id:
            continue  # a case file with its id is there
        state = f"; {problem}" if problem else "; complete JSON, but not confirmed by the rename"
        lost.append({"case": _case_name(path, doc), "file": path.relative_to(run_dir).as_posix(),
                     "reason": "left-over temporary file: the case's evidence was being written when the run "
                               f"stopped and never renamed into place{state}"})
    return cases, lost, last


def _case_problem(doc: Any) -> str | None:
    """Why a parsed case file cannot be used, or None."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    if not isinstance(doc.get("id"), str) or not doc["id"]:
        return "no case id"
    if doc.get("outcome") is None:
        return "no outcome"
    try:
        _validate_case(copy.deepcopy(doc), "case")
    except ResultsError as exc:
        return str(exc).removeprefix("case: ").removeprefix(f"case ({doc['id']}): ")
    return None


def _case_name(path: Path, doc: Any) -> str:
    """The case's id, from the document or, when it is cut off, from its text; else the file name."""
    if isinstance(doc, dict) and isinstance(doc.get("id"), str) and doc["id"]:
        return doc["id"]
    try:
        match = _ID.search(path.read_text(encoding="utf-8", errors="replace")[:4096])
        if match:
            found = json.loads(match.group(1))
            if isinstance(found, str) and found:
                return found
    except (OSError, json.JSONDecodeError):
        pass
    return path.name


def _epoch(text: Any) -> float | None:
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo else None
