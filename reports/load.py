"""Load and validate a run directory's ``results.json``.

Any problem with the input raises :class:`ResultsError` whose message is one clear line, meant to be
printed as-is by the CLI.  Both ``sockconf/results/1`` and ``sockconf/results/2`` are read; optional fields
missing from a case (including every field schema 1 lacks) are filled with empty defaults here, so the
renderers never have to guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import SCHEMAS

RESULTS_FILE = "results.json"
OUTCOMES = ("passed", "failed", "error", "xpassed", "xfailed", "skipped")
BAD_OUTCOMES = frozenset({"failed", "error", "xpassed"})
SIDES = ("client", "server", "peer")
ORIGINS = ("kernel", "injected", "replayed")
CLAIM_VERDICTS = ("confirmed", "contradicted", "undecided")
RUN_STATUSES = ("complete", "interrupted", "incomplete", "running")
"""How a run ended (``run.status``): ``running`` is what ``run.json`` says while the run is going."""

Case = dict[str, Any]

_CASE_DEFAULTS: dict[str, Any] = {
    "title": None,
    "description": "",
    "area": "",
    "family": None,
    "params": {},
    "markers": [],
    "duration_s": 0.0,
    "message": None,
    "references": [],
    "kernel_expectation": None,
    "claim": None,
    "t0": None,
    "endpoints": {},
    "segments": [],
    "states": [],
    "syscalls": [],
    "durations": [],
    "nstat": {},
    "sysctls": {},
    "ss": None,
    "pcap": None,
    "fingerprint": None,
    "fingerprint_text": None,
    # schema 2
    "checks": [],
    "allowed": [],
    "unexpected": [],
    "measured": [],
    "observations": {},
    "scenario": None,
    "kernel_expectations": [],
}
_LIST_FIELDS = ("references", "segments", "states", "syscalls", "durations", "markers", "checks", "allowed",
                "unexpected", "measured", "kernel_expectations")
_DICT_FIELDS = ("params", "endpoints", "nstat", "sysctls", "observations")

# Defaults of the items of schema 2's lists; an item missing a key gets the default.
_CHECK_DEFAULTS: dict[str, Any] = {"kind": "", "what": "", "expected": "", "seen": "", "ok": None, "t": None,
                                   "why": "", "params": {}}
_ALLOWED_DEFAULTS: dict[str, Any] = {"sender": "", "pattern": "", "why": "", "count": None, "params": {}}
_MEASURED_DEFAULTS: dict[str, Any] = {"t": None, "name": "", "value": None}
_EXPECTATION_DEFAULTS: dict[str, Any] = {"name": "", "value": "", "key": "", "commit": ""}
_CLAIM_DEFAULTS: dict[str, Any] = {"id": "", "quote": "", "asserts": "", "observation": "",
                                   "verdict": "undecided", "note": "", "evidence": []}
_EVIDENCE_DEFAULTS: dict[str, Any] = {"case": "", "outcome": None, "value": None, "verdict": None, "text": "",
                                      "observed": ""}
_LOST_DEFAULTS: dict[str, Any] = {"case": "", "reason": "", "file": None}


class ResultsError(Exception):
    """The run directory or its results file cannot be used; ``str()`` is a one-line explanation."""


@dataclass
class Run:
    """One loaded run: the directory it came from and the validated results document."""

    dir: Path
    data: dict[str, Any]
    note: str = ""  # how the reports obtained the document, when not from results.json as written

    @property
    def meta(self) -> dict[str, Any]:
        return self.data["run"]

    @property
    def status(self) -> str:
        """complete | interrupted | incomplete | running (the loader defaults it to complete)."""
        return str(self.meta["status"])

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def selected(self) -> int | None:
        """Cases selected for the run; None when unknown (the run header was lost)."""
        return self.meta["selected"]

    @property
    def finished(self) -> int:
        return int(self.meta["finished"])

    @property
    def lost(self) -> list[dict[str, Any]]:
        """Evidence that could not be read or written: ``{"case", "reason", "file"}`` each."""
        return self.meta["lost"]

    @property
    def cases(self) -> list[Case]:
        return self.data["cases"]

    @property
    def totals(self) -> dict[str, int]:
        return self.data["totals"]

    @property
    def label(self) -> str:
        return str(self.meta.get("label") or self.kernel_release or self.dir.name)

    @property
    def kernel_release(self) -> str:
        return str(self.meta.get("kernel", {}).get("release") or "")

    def case_map(self) -> dict[str, Case]:
        return {c["id"]: c for c in self.cases}


def load_run(path: str | Path) -> Run:
    """Load ``PATH/results.json`` (or ``PATH`` itself when it is a file) and validate it."""
    path = Path(path)
    if path.is_file():
        run_dir, results = path.parent, path
    elif path.is_dir():
        run_dir, results = path, path / RESULTS_FILE
        if not results.is_file():
            raise ResultsError(f"{path}: no {RESULTS_FILE} in this directory")
    else:
        raise ResultsError(f"{path}: no such run directory")
    try:
        text = results.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{results}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{results}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    validate(data, str(results))
    return Run(dir=run_dir, data=data)


def read_json(path: Path) -> tuple[Any, str | None]:
    """``(document, None)``, or ``(None, why not)`` with why in a few words ("truncated JSON at line 3")."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start})"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, json_problem(text, exc)


def json_problem(text: str, exc: json.JSONDecodeError) -> str:
    """Why ``text`` is not JSON, telling a truncated file (cut off, or ending in zero bytes as after a crash)
    from a malformed one.  Every document the plugin writes is an object, so it ends with ``}``."""
    body = text.rstrip().rstrip("\0").rstrip()
    if not body:
        return "truncated: empty file" if not text else "truncated: nothing but whitespace or zero bytes"
    if not body.endswith("}"):
        line = body.count("\n") + 1
        zeros = " (then zero bytes)" if len(body) < len(text.rstrip()) else ""
        return f"truncated JSON at line {line}{zeros}"
    return f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"


def validate(data: Any, where: str) -> None:
    """Check the parts of the document the reports rely on and fill optional case fields in place."""
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: top level is {type(data).__name__}, expected an object")
    schema = data.get("schema")
    if schema not in SCHEMAS:
        readable = " or ".join(repr(s) for s in SCHEMAS)
        raise ResultsError(f"{where}: schema is {schema!r}, this version of reports reads {readable}")
    for key, kind in (("run", dict), ("cases", list)):
        if not isinstance(data.get(key), kind):
            raise ResultsError(f"{where}: {key!r} is missing or not a JSON {kind.__name__}")
    run = data["run"]
    for key in ("sysctls", "sysctl_overrides", "kernel", "machine", "packages"):
        if not isinstance(run.get(key, {}), dict):
            raise ResultsError(f"{where}: run.{key} must be an object")
    _validate_status(run, len(data["cases"]), where)
    seen: set[str] = set()
    for i, case in enumerate(data["cases"]):
        _validate_case(case, f"{where}: cases[{i}]")
        if case["id"] in seen:
            raise ResultsError(f"{where}: cases[{i}]: duplicate case id {case['id']!r}")
        seen.add(case["id"])
    totals = data.get("totals")
    if not isinstance(totals, dict):
        totals = {}
    counted = {o: 0 for o in OUTCOMES}
    for case in data["cases"]:
        counted[case["outcome"]] += 1
    data["totals"] = {o: int(totals.get(o, counted[o]) or 0) for o in OUTCOMES}
    claims = data.get("claims")
    if claims is None:
        data["claims"] = None  # schema 1, or no claims: the report shows the cases' own ``claim`` fields
    elif not isinstance(claims, list):
        raise ResultsError(f"{where}: 'claims' must be a list")
    else:
        claim_ids: set[str] = set()
        for i, claim in enumerate(claims):
            at = f"{where}: claims[{i}]"
            _fill(claim, _CLAIM_DEFAULTS, at)
            if not claim["id"]:
                claim["id"] = str(i + 1)
            if str(claim["id"]) in claim_ids:
                raise ResultsError(f"{at}: duplicate claim id {claim['id']!r}")
            claim_ids.add(str(claim["id"]))
            if not isinstance(claim["evidence"], list):
                raise ResultsError(f"{at}: 'evidence' must be a list")
            if not isinstance(claim.get("cases") or [], list):
                raise ResultsError(f"{at}: 'cases' must be a list")
            for j, ev in enumerate(claim["evidence"]):
                _fill(ev, _EVIDENCE_DEFAULTS, f"{at}.evidence[{j}]")


def _validate_status(run: dict[str, Any], n_cases: int, where: str) -> None:
    """How the run ended.  Files written before the run status existed were complete runs: ``status``
    defaults to complete, ``selected`` and ``finished`` to the number of cases, ``lost`` to []."""
    if run.get("status") is None:
        run["status"] = "complete"
    if run["status"] not in RUN_STATUSES:
        raise ResultsError(f"{where}: run.status {run['status']!r} is not one of {', '.join(RUN_STATUSES)}")
    if "selected" not in run:
        run["selected"] = n_cases  # null stays null: unknown (a rebuilt run whose header was lost)
    if run.get("finished") is None:
        run["finished"] = n_cases
    for key in ("selected", "finished"):
        value = run[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ResultsError(f"{where}: run.{key} must be a count of cases, not {value!r}")
    run.setdefault("signal", None)
    lost = run.get("lost")
    if lost is None:
        run["lost"] = lost = []
    if not isinstance(lost, list):
        raise ResultsError(f"{where}: run.lost must be a list")
    for i, item in enumerate(lost):
        if isinstance(item, str):
            lost[i] = item = {"case": item}
        _fill(item, _LOST_DEFAULTS, f"{where}: run.lost[{i}]")
        item["case"] = str(item["case"] or item["file"] or f"#{i + 1}")
        item["reason"] = str(item["reason"] or "unknown")


def _validate_case(case: Any, where: str) -> None:
    if not isinstance(case, dict):
        raise ResultsError(f"{where}: expected an object")
    if not isinstance(case.get("id"), str) or not case["id"]:
        raise ResultsError(f"{where}: 'id' is missing or not a string")
    where = f"{where} ({case['id']})"
    if case.get("outcome") not in OUTCOMES:
        raise ResultsError(f"{where}: outcome {case.get('outcome')!r} is not one of {', '.join(OUTCOMES)}")
    for key, default in _CASE_DEFAULTS.items():
        if case.get(key) is None:
            case[key] = default.copy() if isinstance(default, (list, dict)) else default
    for key in _LIST_FIELDS:
        if not isinstance(case[key], list):
            raise ResultsError(f"{where}: {key!r} must be a list")
    for key in _DICT_FIELDS:
        if not isinstance(case[key], dict):
            raise ResultsError(f"{where}: {key!r} must be an object")
    if case["title"] is None:
        case["title"] = case["id"]
    if not case["area"]:
        case["area"] = case["id"].split("/", 1)[0] if "/" in case["id"] else "other"
    for key in ("segments", "states", "syscalls"):
        for j, item in enumerate(case[key]):
            if not isinstance(item, dict) or not isinstance(item.get("t"), (int, float)):
                raise ResultsError(f"{where}: {key}[{j}] needs a numeric 't'")
    claim = case["claim"]
    if claim is not None and not isinstance(claim, dict):
        raise ResultsError(f"{where}: 'claim' must be an object or null")
    for seg in case["segments"]:
        if not seg.get("origin"):
            seg["origin"] = "kernel"
    for key, defaults in (("checks", _CHECK_DEFAULTS), ("allowed", _ALLOWED_DEFAULTS),
                          ("measured", _MEASURED_DEFAULTS), ("kernel_expectations", _EXPECTATION_DEFAULTS)):
        for j, item in enumerate(case[key]):
            _fill(item, defaults, f"{where}: {key}[{j}]")
    for j, check in enumerate(case["checks"]):
        if check["ok"] is not None and not isinstance(check["ok"], bool):
            raise ResultsError(f"{where}: checks[{j}].ok must be true, false or null")
    for j, index in enumerate(case["unexpected"]):
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(case["segments"]):
            raise ResultsError(f"{where}: unexpected[{j}] = {index!r} is not the index of one of the case's "
                               f"{len(case['segments'])} segments")
    for key, obs in case["observations"].items():
        if not isinstance(obs, dict):
            raise ResultsError(f"{where}: observations[{key!r}] must be an object")
        obs.setdefault("value", None)
        obs.setdefault("text", "")
    scenario = case["scenario"]
    if scenario is not None and not isinstance(scenario, dict):
        raise ResultsError(f"{where}: 'scenario' must be an object or null")


def _fill(item: Any, defaults: dict[str, Any], where: str) -> None:
    """Give a list item of schema 2 every key of ``defaults`` (in place)."""
    if not isinstance(item, dict):
        raise ResultsError(f"{where}: expected an object")
    for key, default in defaults.items():
        if item.get(key) is None and default is not None:
            item[key] = default.copy() if isinstance(default, (list, dict)) else default
        else:
            item.setdefault(key, None)


def duration_span(d: dict[str, Any]) -> tuple[float, float] | None:
    """The span a recorded duration is known to lie in: [measured_low_s, measured_high_s], or the single
    measured_s of a file written before durations were spans; None when it was not measured."""
    try:
        mid = float(d["measured_s"])
        low, high = float(d.get("measured_low_s", mid)), float(d.get("measured_high_s", mid))
    except (KeyError, TypeError, ValueError):
        return None
    if low != low or high != high:  # NaN: not measured (or an older file's missing end)
        return None if mid != mid else (mid, mid)
    return low, high


def row_key(case: Case) -> str:
    """The case id without its family parameter: one row of the matrix holds all families of a case."""
    base = case["id"].split("[", 1)[0]
    if "variant" in case:
        return f"{base}[{case['variant']}]" if case["variant"] else base
    rest = [str(v) for k, v in case["params"].items() if k != "family"]
    return f"{base}[{'-'.join(rest)}]" if rest else base


def non_default_sysctls(run: Run) -> list[tuple[str, str, str, bool]]:
    """(name, value, default, given) for sysctls whose value differs from the default or that were given."""
    rows = []
    for name, info in sorted(run.meta.get("sysctls", {}).items()):
        if not isinstance(info, dict):
            continue
        value, default = str(info.get("value", "")), str(info.get("default", ""))
        given = bool(info.get("given"))
        if _norm(value) != _norm(default) or given:
            rows.append((name, value, default, given))
    return rows


def _norm(value: str) -> str:
    """Sysctl values with several fields are tab/space separated; compare them field by field."""
    return " ".join(value.split())
