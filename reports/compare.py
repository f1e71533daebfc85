"""Compare two or more runs: configuration first, then behaviour.

Configuration = kernel release and version, congestion control, the harness that made the run (its commit,
"dirty" when its work tree differed, and the fingerprint algorithm's version), the tuning profiles, the tuning
(``sysctl_overrides``: profiles and --sysctl, ``server:NAME`` for one side), and the sysctls in force (values
that differ, and sysctls present in some runs only).  Behaviour = for every case id, the outcome and the
behaviour fingerprint computed by the plugin (timing noise is not part of it).  A case without a fingerprint
in some run is compared by outcome only, and the output says so.

Behaviour is the same when every case is present in every run with equal outcomes and fingerprints; only
then is the exit status 0.  Configuration differences are always printed but never change the exit status
on their own: "configuration differs; behaviour identical" is a valid, successful answer.  The exception:
fingerprints of different algorithm versions cannot be compared, so runs whose fingerprint versions differ
(a run without a recorded version, e.g. schema 1, is version 1) get the verdict "fingerprints of different
versions (v1 vs v2): behaviour not compared" and exit status 1.

For every differing case compare says what changed, in words, computed from the cases' ``fingerprint_data``
and ``durations`` (``explain``): "client sent RA instead of FA", "client: FIN_WAIT2 → gone instead of →
TIME_WAIT", "orphan FIN_WAIT2 lifetime 60 s → 5 s", "server.recv(): ECONNRESET instead of ok", a check whose
verdict changed, the outcome.  When no sentence explains a fingerprint difference the raw changed lines of
the fingerprint texts are shown instead.

Grid (issue 10, ``reports/grid.py``): when the runs have grid cases, the text ends with one line "grid: N of M cells
differ: state/segment, ..." and the HTML diff draws the runs' grids side by side, per family, the differing
cells (a differing or partial case above) outlined and marked ≠.

Skips: a case skipped in every run is not compared (counted apart, never as identical behaviour).  A case
skipped in some runs because of their configuration (the reason contains "not testable on this kernel: ",
or names a tuned sysctl, or the word "tuning") and run in the others is listed as "skipped in B
(configuration)", apart from the differences; it does not make the exit status 1 by itself (the runs that
ran it are still compared among themselves).  A case that ran in one run and was skipped in another for any
other reason is a behaviour difference.

A run that did not complete (``run.status`` interrupted or incomplete, see ``reports/status.py``) gets a
warning line, and only the cases every run finished are compared: a case missing from such a run (or whose
evidence it lost) is "not finished in run X", listed and counted apart from the differences, and the verdict
says "partial comparison: ...; partial: N cases not compared".  The exit status is then 1 if the cases compared
differ (or a case is missing from a run that did complete), else 0.  A run directory whose results.json was
never written (a killed run) is compared from its case files, rebuilt in memory; nothing is written.
"""

from __future__ import annotations

import difflib
import re
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from . import grid, ladder, status
from .fmt import esc, slug
from .load import OUTCOMES, Case, ResultsError, Run, duration_span
from .page import badge, meta_list, page, table
from .rebuild import inspect, load_rebuilt

ABSENT = "(absent)"
UNTESTABLE = "not testable on this kernel: "  # how the plugin's configuration skips start (fixtures/versions.py)
MAX_SENTENCES = 10  # per pair of runs and case; then "… N more"
MAX_CHECK_SENTENCES = 4


@dataclass
class CaseDiff:
    id: str
    cases: list[Case | None]  # one per run, None when the run lacks the case
    reasons: list[str] = field(default_factory=list)  # outcome / fingerprint / missing / not finished in X
    changes: list[Change] = field(default_factory=list)  # what changed, run by run against the first run having it


@dataclass
class Change:
    """What changed in one case from run ``base`` to run ``other``: sentences, and the raw fingerprint lines
    when no sentence explains a fingerprint difference."""

    base: str
    other: str
    sentences: list[str]
    raw: list[str] = field(default_factory=list)


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
    versions: list[int] = field(default_factory=list)  # fingerprint algorithm version per run
    skipped_all: list[str] = field(default_factory=list)  # skipped in every run: not compared
    config_skipped: list[CaseDiff] = field(default_factory=list)  # skipped by configuration in some runs only

    @property
    def config_same(self) -> bool:
        return not self.config and not self.sysctls_partial

    @property
    def versions_differ(self) -> bool:
        return len(set(self.versions)) > 1

    @property
    def behaviour_same(self) -> bool:
        """The cases compared behave the same (cases some run did not finish are not compared); never across
        fingerprint versions."""
        return not self.versions_differ and not self.differing and not self.partial

    @property
    def is_partial(self) -> bool:
        """Some run did not complete (or lost evidence): only the cases every run finished were compared."""
        return bool(self.not_finished) or any(status.attention(r) for r in self.runs)

    def incomplete_runs(self) -> list[tuple[str, Run]]:
        return [(n, r) for n, r in zip(self.names, self.runs, strict=True) if status.attention(r)]

    def verdict(self) -> str:
        config = "configuration identical" if self.config_same else "configuration differs"
        if self.versions_differ:
            versions = " vs ".join(f"v{v}" for v in self.versions)
            return f"{config}; fingerprints of different versions ({versions}): behaviour not compared"
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
        text += "".join(f"; {part}" for part in self.skip_notes())
        if self.is_partial:
            return f"partial comparison: {text}; partial: {plural(len(self.not_finished), 'case')} not compared"
        return text

    def skip_notes(self) -> list[str]:
        """``1 case skipped in every run: not compared``, ``2 cases skipped in B (configuration)``."""
        notes = []
        if self.skipped_all:
            notes.append(f"{plural(len(self.skipped_all), 'case')} skipped in every run: not compared")
        for i, name in enumerate(self.names):
            n = sum(d.cases[i] is not None and d.cases[i]["outcome"] == "skipped" for d in self.config_skipped)
            if n:
                notes.append(f"{plural(n, 'case')} skipped in {name} (configuration)")
        return notes

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
    versions = [fingerprint_version(r) for r in runs]
    if len(set(versions)) > 1:  # fingerprints of different algorithms: nothing to compare them by
        return Comparison(runs, names, config, partial_sysctls, [], [], [], 0, versions=versions)
    maps = [r.case_map() for r in runs]
    lost = [{str(item["case"]) for item in r.lost} for r in runs]
    tuned = _tuned_names(runs)
    all_ids = sorted({i for m in maps for i in m}, key=lambda i: (i.split("/", 1)[0], i))
    differing, partial, outcome_only, not_finished = [], [], [], []
    skipped_all: list[str] = []
    config_skipped: list[CaseDiff] = []
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
        skipped = [i for i, c in enumerate(present) if c["outcome"] == "skipped"]
        if len(skipped) == len(present):
            skipped_all.append(cid)
            continue
        if skipped and all(config_skip(present[i], tuned) for i in skipped):
            ran = [c for c in present if c["outcome"] != "skipped"]
            why = [f"skipped in {names[i]} (configuration)" for i in skipped]
            reasons = _reasons(ran)
            if not reasons:
                config_skipped.append(CaseDiff(cid, cases, why))
                continue
            common += 1
            ran_only = [None if i in skipped else c for i, c in enumerate(cases)]  # said against a run that ran it
            differing.append(CaseDiff(cid, cases, [*reasons, *why], _changes(names, ran_only)))
            continue
        common += 1
        reasons = _reasons(present)
        if not all(c["fingerprint"] for c in present):
            outcome_only.append(cid)
        if reasons:
            differing.append(CaseDiff(cid, cases, reasons, _changes(names, cases)))
    return Comparison(runs, names, config, partial_sysctls, differing, partial, outcome_only, common, not_finished,
                      versions, skipped_all, config_skipped)


def _reasons(cases: list[Case]) -> list[str]:
    """How ``cases`` (one per run) differ: ``outcome``, ``fingerprint`` (only when every one has one)."""
    reasons = []
    if len({c["outcome"] for c in cases}) > 1:
        reasons.append("outcome")
    if all(c["fingerprint"] for c in cases) and len({c["fingerprint"] for c in cases}) > 1:
        reasons.append("fingerprint")
    return reasons


def fingerprint_version(run: Run) -> int:
    """The fingerprint algorithm's version: ``run.harness.fingerprint_version``, else the cases' own
    (``fingerprint_data.version``, a ``fingerprint vN`` first line), else 1 (schema 1 and early schema 2 runs)."""
    harness = run.meta.get("harness")
    if isinstance(harness, dict) and isinstance(harness.get("fingerprint_version"), int):
        return int(harness["fingerprint_version"])
    for case in run.cases:
        data = case.get("fingerprint_data")
        if isinstance(data, dict) and isinstance(data.get("version"), int):
            return int(data["version"])
        found = re.match(r"fingerprint v(\d+)$", str(case.get("fingerprint_text") or "").split("\n", 1)[0])
        if found:
            return int(found.group(1))
    return 1


def _tuned_names(runs: list[Run]) -> set[str]:
    """The sysctls any run's tuning set (without a ``side:`` prefix)."""
    names: set[str] = set()
    for r in runs:
        names |= {str(k).rpartition(":")[2] for k in r.meta.get("sysctl_overrides") or {}}
        configuration = r.meta.get("configuration")
        if isinstance(configuration, dict):
            for side in ("client", "server"):
                if isinstance(configuration.get(side), dict):
                    names |= set(map(str, configuration[side]))
    return names


def config_skip(case: Case, tuned: set[str]) -> bool:
    """The case was skipped because of its run's configuration: the kernel cannot show the behaviour (the
    plugin's "not testable on this kernel: " reasons), or the reason names a tuned sysctl or the tuning."""
    message = str(case["message"] or "")
    if UNTESTABLE in message or re.search(r"\btuning\b", message, re.IGNORECASE):
        return True
    return any(re.search(rf"(?<![\w.]){re.escape(n)}\b|\b{re.escape(n.rsplit('.', 1)[-1])}\b", message)
               for n in tuned)


def _config(runs: list[Run]) -> tuple[list[tuple[str, list[str]]], list[tuple[str, list[str]]]]:
    def overrides(r: Run) -> str:
        return " ".join(f"{k}={v}" for k, v in (r.meta.get("sysctl_overrides") or {}).items()) or "(none)"

    rows: list[tuple[str, list[str]]] = [
        ("kernel release", [r.kernel_release or "?" for r in runs]),
        ("kernel version", [str(r.meta.get("kernel", {}).get("version") or "?") for r in runs]),
        ("congestion control", [str(r.meta.get("congestion_control") or "?") for r in runs]),
        ("harness commit", [_harness_commit(r) for r in runs]),
        ("fingerprint version", [f"v{fingerprint_version(r)}" for r in runs]),
        ("profiles", [_profiles(r) for r in runs]),
        ("tuning (--profile, --sysctl)", [overrides(r) for r in runs]),
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


def _harness_commit(run: Run) -> str:
    harness = run.meta.get("harness")
    if not isinstance(harness, dict) or not harness.get("commit"):
        return "(not recorded)"
    return str(harness["commit"])[:12] + (" (dirty)" if harness.get("dirty") else "")


def _profiles(run: Run) -> str:
    configuration = run.meta.get("configuration")
    profiles = configuration.get("profiles") if isinstance(configuration, dict) else None
    return ", ".join(map(str, profiles)) if profiles else "(none)"


def _sysctl_value(run: Run, name: str) -> str:
    info = run.meta.get("sysctls", {}).get(name)
    if not isinstance(info, dict):
        return ABSENT
    value = str(info.get("value", ""))
    if "server" in info and str(info["server"]) != value:  # the namespaces differ: client's, then server's
        value = f"client {value}, server {info['server']}"
    return f"{value} (given)" if info.get("given") else value


def fingerprint_diff(a: Case, b: Case, limit: int = 12) -> list[str]:
    """Changed lines between two fingerprint texts, ``-`` for ``a`` and ``+`` for ``b``."""
    lines = difflib.unified_diff(
        str(a["fingerprint_text"] or "").splitlines(), str(b["fingerprint_text"] or "").splitlines(), n=0,
        lineterm="",
    )
    out = [ln for ln in lines if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return out if len(out) <= limit else [*out[:limit], f"… {len(out) - limit} more changed lines"]


# what changed, in words ---------------------------------------------------------------------------------

SENDERS = {"c": "client", "s": "server"}
RESENT = re.compile(r"^(.*?)\(resent ([0-9]+|\+)\)$")
BUCKET = re.compile(r" (~\S+s|\S+s!)$")  # a duration check's value: the durations say it better


def _changes(names: list[str], cases: list[Case | None]) -> list[Change]:
    """What changed from the first run having the case to each other run whose case differs from it."""
    first = next(i for i, c in enumerate(cases) if c is not None)
    base = cases[first]
    assert base is not None
    out = []
    for name, other in zip(names[first + 1:], cases[first + 1:], strict=True):
        if other is None or (other["outcome"] == base["outcome"] and other["fingerprint"] == base["fingerprint"]):
            continue
        sentences, explained = explain(base, other, name)
        raw = []
        if not explained and base["fingerprint"] and other["fingerprint"] \
                and base["fingerprint"] != other["fingerprint"]:
            raw = fingerprint_diff(base, other)
        out.append(Change(names[first], name, sentences, raw))
    return out


def explain(a: Case, b: Case, b_name: str = "B") -> tuple[list[str], bool]:
    """Short sentences saying what changed from case ``a`` to case ``b`` (of run ``b_name``), from their
    ``fingerprint_data`` and ``durations``; and whether a sentence other than the outcome's explains the
    difference (else the caller falls back to the raw fingerprint lines)."""
    fa, fb = a.get("fingerprint_data"), b.get("fingerprint_data")
    behaviour: list[str] = []
    if isinstance(fa, dict) and isinstance(fb, dict):
        behaviour += segment_sentences(_dict(fa, "segments"), _dict(fb, "segments"), b_name)
        behaviour += state_sentences(_dict(fa, "states"), _dict(fb, "states"))
    behaviour += duration_sentences(a["durations"], b["durations"], b_name)
    if isinstance(fa, dict) and isinstance(fb, dict):
        behaviour += call_sentences(_dict(fa, "calls"), _dict(fb, "calls"), b_name)
        behaviour += check_sentences(_list(fa, "checks"), _list(fb, "checks"), b_name)
        behaviour += observed_sentences(_list(fa, "observed"), _list(fb, "observed"), b_name)
    sentences = []
    if a["outcome"] != b["outcome"]:
        sentences.append(outcome_sentence(a, b))
    sentences += behaviour
    if len(sentences) > MAX_SENTENCES:
        sentences = [*sentences[: MAX_SENTENCES - 1], f"… {len(sentences) - MAX_SENTENCES + 1} more changes"]
    return sentences, bool(behaviour)


def _dict(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _list(data: dict, key: str) -> list:
    value = data.get(key)
    return value if isinstance(value, list) else []


def outcome_sentence(a: Case, b: Case) -> str:
    text = f"outcome {a['outcome']} → {b['outcome']}"
    skipped = b if b["outcome"] == "skipped" else a if a["outcome"] == "skipped" else None
    if skipped is not None and skipped["message"]:
        reason = str(skipped["message"]).strip().split("\n", 1)[0].removeprefix("Skipped: ")
        text += f" ({reason if len(reason) <= 90 else reason[:89] + '…'})"
    return text


def _token(token: object) -> tuple[str, str]:
    """``c>FA(resent 2)`` → ``("client", "FA(resent 2)")``."""
    sender, sep, what = str(token).partition(">")
    return (SENDERS.get(sender, sender), what) if sep else ("", str(token))


def segment_sentences(sa: dict, sb: dict, b_name: str) -> list[str]:
    """Per connection, the token lists aligned (difflib): "client sent RA instead of FA", "server also sent
    A(fin) in B", "client did not send FA in B", "client resent FA 3 times instead of once"."""
    conns = sorted(set(sa) | set(sb), key=lambda k: (len(str(k)), str(k)))
    out = []
    for conn in conns:
        ta, tb = [str(t) for t in sa.get(conn) or []], [str(t) for t in sb.get(conn) or []]
        if ta == tb:
            continue
        prefix = f"connection {conn}: " if len(conns) > 1 else ""
        if sorted(ta) == sorted(tb):
            out.append(f"{prefix}the same segments in another order: {_spoken([_token(t) for t in tb])} instead of "
                       f"{_spoken([_token(t) for t in ta])}")
            continue
        matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op != "equal":
                out += [prefix + s for s in _chunk_sentences(ta[i1:i2], tb[j1:j2], b_name)]
    return out


def _chunk_sentences(old: list[str], new: list[str], b_name: str) -> list[str]:
    pa, pb = [_token(t) for t in old], [_token(t) for t in new]
    senders = list(dict.fromkeys(s for s, _ in pa + pb))
    per = {s: ([w for x, w in pa if x == s], [w for x, w in pb if x == s]) for s in senders}
    if all(o == n for o, n in per.values()):  # the same segments, in another order
        return [f"the same segments in another order: {_spoken(pb)} instead of {_spoken(pa)}"]
    out = []
    for sender, (o, n) in per.items():
        who = sender or "someone"
        if o == n:
            continue
        if o and n:
            resends = _resend_sentences(who, o, n)
            out += resends if resends is not None else [f"{who} sent {' '.join(n)} instead of {' '.join(o)}"]
        elif n:
            out.append(f"{who} also sent {' '.join(n)} in {b_name}")
        else:
            out.append(f"{who} did not send {' '.join(o)} in {b_name}")
    return out


def _spoken(tokens: list[tuple[str, str]]) -> str:
    return ", ".join(f"{s} {w}".strip() for s, w in tokens)


def _resend_sentences(who: str, old: list[str], new: list[str]) -> list[str] | None:
    """When only the retransmission counts differ: "client resent FA 3 times instead of once"."""
    def split(token: str) -> tuple[str, str | None]:
        m = RESENT.match(token)
        return (m.group(1), m.group(2)) if m else (token, None)

    so, sn = [split(t) for t in old], [split(t) for t in new]
    if [s for s, _ in so] != [s for s, _ in sn]:
        return None
    return [f"{who} resent {seg} {_times(cn)} instead of {_times(co)}"
            for (seg, co), (_, cn) in zip(so, sn, strict=True) if co != cn]


def _times(count: str | None) -> str:
    if count is None:
        return "never"
    if count == "+":
        return "until the scenario ended"
    return "once" if count == "1" else "twice" if count == "2" else f"{count} times"


def _state_name(label: str, timers: bool) -> str:
    state, _, timer = label.partition("/")
    state = "gone" if state == "CLOSED" else state
    return f"{state}/{timer}" if timers and timer else state


def state_sentences(sa: dict, sb: dict) -> list[str]:
    """Per socket, where the state paths part: "client: FIN_WAIT2 → gone instead of → TIME_WAIT".  Timer kinds
    are named only when they are the difference."""
    out = []
    for side in sorted(set(sa) | set(sb)):
        pa, pb = [str(x) for x in sa.get(side) or []], [str(x) for x in sb.get(side) or []]
        if pa == pb:
            continue
        la, lb = _dedup([_state_name(x, False) for x in pa]), _dedup([_state_name(x, False) for x in pb])
        if la == lb:
            la, lb = [_state_name(x, True) for x in pa], [_state_name(x, True) for x in pb]
        k = 0
        while k < min(len(la), len(lb)) and la[k] == lb[k]:
            k += 1
        ta, tb = " → ".join(la[k:]), " → ".join(lb[k:])
        if k == 0:
            out.append(f"{side}: {tb or 'not seen'} instead of {ta or 'not seen'}")
        elif not tb:
            out.append(f"{side}: stays {la[k - 1]} instead of → {ta}")
        elif not ta:
            out.append(f"{side}: {la[k - 1]} → {tb} instead of staying {la[k - 1]}")
        else:
            out.append(f"{side}: {la[k - 1]} → {tb} instead of → {ta}")
    return out


def _dedup(path: list[str]) -> list[str]:
    return [x for i, x in enumerate(path) if i == 0 or path[i - 1] != x]


def _seconds(value: float) -> str:
    return f"{float(f'{value:.2g}'):g} s"


def _duration_value(d: dict) -> tuple[float, bool] | None:
    """The duration as the fingerprint sees it: its expected value when the measured span meets the window, else
    the span's end nearest the window (what the evidence proves at least); and whether it met it."""
    span = duration_span(d)
    try:
        expected = float(d["expected_s"])
    except (KeyError, TypeError, ValueError):
        return None
    if span is None:
        return None
    try:
        low, high = float(d["low_s"]), float(d["high_s"])
    except (KeyError, TypeError, ValueError):
        return (expected if d.get("ok") else span[0]), bool(d.get("ok"))
    if span[0] <= high and span[1] >= low:
        return expected, True
    return (span[0] if span[0] > high else span[1]), False


def duration_sentences(da: list, db: list, b_name: str) -> list[str]:
    """Durations with the same name: "orphan FIN_WAIT2 lifetime 60 s → 5 s" (a measurement outside its window
    says so)."""
    def by_name(items: list) -> dict[str, dict]:
        return {str(d.get("name")): d for d in items if isinstance(d, dict)}

    ma, mb = by_name(da), by_name(db)
    out = []
    for name in [*ma, *(n for n in mb if n not in ma)]:
        a, b = ma.get(name), mb.get(name)
        va, vb = (_duration_value(a) if a else None), (_duration_value(b) if b else None)
        if a is not None and b is None:
            out.append(f"{b_name} did not measure the {name}")
        elif b is not None and a is None:
            out.append(f"{name} measured only in {b_name}: {_duration_text(vb, b)}")
        elif va is not None and vb is not None and _duration_text(va, a) != _duration_text(vb, b):
            out.append(f"{name} {_duration_text(va, a)} → {_duration_text(vb, b)}")
    return out


def _duration_text(value: tuple[float, bool] | None, d: dict | None) -> str:
    if value is None or d is None:
        return "?"
    v, inside = value
    if inside and d.get("basis"):
        return str(d["basis"])  # computed from a measured RTO or RTT: its make-up, as the fingerprint keeps it
    return _seconds(v) if inside else f"{_seconds(v)} measured (expected {_seconds(float(d['expected_s']))})"


def call_sentences(ca: dict, cb: dict, b_name: str) -> list[str]:
    """Per side and call: "server.recv(): ECONNRESET instead of ok"."""
    def grouped(entries: object) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for entry in entries if isinstance(entries, list) else []:
            call, _, result = str(entry).partition("=")
            out.setdefault(call, []).append(result or "?")
        return {k: sorted(v) for k, v in out.items()}

    out = []
    for side in sorted(set(ca) | set(cb)):
        ga, gb = grouped(ca.get(side)), grouped(cb.get(side))
        for call in sorted(set(ga) | set(gb)):
            ra, rb = ga.get(call), gb.get(call)
            if ra == rb:
                continue
            if ra and rb:
                out.append(f"{side}.{call}(): {'/'.join(rb)} instead of {'/'.join(ra)}")
            elif rb:
                out.append(f"{side} also called {call}() in {b_name}: {'/'.join(rb)}")
            else:
                out.append(f"{side} did not call {call}() in {b_name}")
    return out


def _check_key(token: str) -> tuple[str, str]:
    """``segment client [FA] seq 101 ok`` → (``segment client [FA] seq 101``, ``ok``)."""
    if token.startswith("unexpected "):
        return "no unexpected segment", "ok" if token == "unexpected none" else "FAIL"
    body, _, mark = token.rpartition(" ")
    if mark not in ("ok", "FAIL"):
        return token, ""
    return BUCKET.sub("", body).replace("  ", " "), mark


def check_sentences(ka: list, kb: list, b_name: str) -> list[str]:
    """Checks whose verdict changed ("check “segment client [FA] seq 101”: ok → FAIL"), and checks made in one
    run only."""
    def grouped(tokens: list) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for token in tokens:
            key, mark = _check_key(str(token))
            out.setdefault(key, []).append(mark)
        return out

    ga, gb = grouped(ka), grouped(kb)
    out = []
    for key in [*ga, *(k for k in gb if k not in ga)]:
        va, vb = ga.get(key, []), gb.get(key, [])
        if va == vb:
            continue
        if va and vb:
            out.append(f"check “{key}”: {'/'.join(va)} → {'/'.join(vb)}")
        elif vb:
            out.append(f"{b_name} also checked “{key}” ({'/'.join(vb)})")
        else:
            out.append(f"{b_name} did not check “{key}”")
    if len(out) > MAX_CHECK_SENTENCES:
        out = [*out[: MAX_CHECK_SENTENCES - 1], f"… and {len(out) - MAX_CHECK_SENTENCES + 1} more checks changed"]
    return out


def observed_sentences(oa: list, ob: list, b_name: str) -> list[str]:
    sa, sb = set(map(str, oa)), set(map(str, ob))
    return ([f"observation {k} made only in {b_name}" for k in sorted(sb - sa)]
            + [f"observation {k} not made in {b_name}" for k in sorted(sa - sb)])


def _cell(case: Case | None) -> str:
    if case is None:
        return "—"
    if case["outcome"] == "skipped":
        return "skipped"
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
        out.write("  identical (kernel, congestion control, harness, profiles, tuning, sysctls in force)\n")
    if cmp.config:
        _columns([["", *names], *([what, *vals] for what, vals in cmp.config)], out)
    if cmp.sysctls_partial:
        out.write("  sysctls present in only some runs:\n")
        _columns([["", *names], *([what, *vals] for what, vals in cmp.sysctls_partial)], out)

    out.write("\nbehaviour:\n")
    if cmp.versions_differ:
        out.write(f"  not compared: {_versions_text(cmp)}\n")
        out.write(f"\nverdict: {cmp.verdict()}\n")
        return
    if not cmp.differing:
        where = "finished in" if cmp.is_partial else "present in"
        out.write(f"  all {cmp.common} cases {where} every run have the same outcome and fingerprint\n")
    else:
        out.write("  cases whose outcome or fingerprint differ (outcome + fingerprint prefix):\n")
        _columns([["case", *names, "differs in"],
                  *([d.id, *map(_cell, d.cases), ", ".join(d.reasons)] for d in cmp.differing)], out)
        out.write("  what changed:\n")
        for d in cmp.differing:
            for change in d.changes:
                out.write(f"    {d.id}: {change.base} → {change.other}\n")
                out.writelines(f"      {line}\n" for line in change.sentences)
                if change.raw:
                    out.write(f"      fingerprint lines ({change.base} -, {change.other} +):\n")
                    out.writelines(f"        {ln}\n" for ln in change.raw)
    if cmp.partial:
        out.write("  cases present in only some runs:\n")
        _columns([["case", *names], *([d.id, *map(_cell, d.cases)] for d in cmp.partial)], out)
    if cmp.config_skipped:
        out.write("  skipped by configuration (not a behaviour difference):\n")
        _columns([["case", *names, "why"],
                   *([d.id, *map(_cell, d.cases), ", ".join(d.reasons)] for d in cmp.config_skipped)], out)
        for d in cmp.config_skipped:
            for name, case in zip(names, d.cases, strict=True):
                if case is not None and case["outcome"] == "skipped":
                    out.write(f"    {d.id} in {name}: {_skip_reason(case)}\n")
    if cmp.skipped_all:
        out.write(f"  {_skipped_all_text(cmp)}\n")
    if cmp.not_finished:
        out.write(f"  not compared: {_not_finished_text(cmp)}:\n")
        _columns([["case", *names, "why"],
                  *([d.id, *map(_cell, d.cases), ", ".join(d.reasons)] for d in cmp.not_finished)], out)
    if cmp.outcome_only:
        out.write(f"  note: {_outcome_only_note(cmp)}\n")
    grid_line = grid.summary_line(cmp.runs, (d.id for d in cmp.differing + cmp.partial))
    if grid_line:
        out.write(f"  {grid_line}\n")
    out.write(f"\nverdict: {cmp.verdict()}\n")


def _versions_text(cmp: Comparison) -> str:
    each = ", ".join(f"{n} v{v}" for n, v in zip(cmp.names, cmp.versions, strict=True))
    return (f"the runs' fingerprints come from different versions of the algorithm ({each}); compare runs made "
            "with one fingerprint version (re-run the older configuration with this harness)")


def _skipped_all_text(cmp: Comparison) -> str:
    shown = ", ".join(cmp.skipped_all[:8]) + (" …" if len(cmp.skipped_all) > 8 else "")
    return f"{plural(len(cmp.skipped_all), 'case')} skipped in every run: not compared ({shown})"


def _skip_reason(case: Case) -> str:
    reason = str(case["message"] or "no reason given").strip().split("\n", 1)[0].removeprefix("Skipped: ")
    return reason if len(reason) <= 120 else reason[:119] + "…"


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
        body.append("<p>Identical: kernel, congestion control, harness, profiles, tuning and every sysctl in "
                    "force.</p>")
    body.append(table(["", *names], ([f"<code>{esc(w)}</code>", *map(esc, v)] for w, v in cmp.config)))
    if cmp.sysctls_partial:
        body.append("<h3>Sysctls present in only some runs</h3>")
        body.append(table(["", *names], ([f"<code>{esc(w)}</code>", *map(esc, v)] for w, v in cmp.sysctls_partial)))
    body.append("<h2>Behaviour</h2>")
    if cmp.versions_differ:
        body.append(f"<p><b>Not compared</b>: {esc(_versions_text(cmp))}.</p>")
        return page("sockconf compare", body, wide=True)
    if cmp.outcome_only:
        body.append(f"<p class='muted'>{_outcome_only_note(cmp)}</p>")
    if len(cmp.runs) > 2:
        body.append(_matrix(cmp))
    if not cmp.behaviour_same:
        rows = [(f'<a href="#{slug(d.id)}">{esc(d.id)}</a>', *map(_badge_or_dash, d.cases), esc(", ".join(d.reasons)),
                 _first_change(d))
                for d in cmp.differing + cmp.partial]
        body.append(table(["case", *names, "differs in", "what changed"], rows))
    else:
        every = "finished in every run" if cmp.is_partial else "in every run"
        body.append(f"<p>All {cmp.common} cases {every} have the same outcome and fingerprint.</p>")
    if cmp.not_finished:
        rows = [(esc(d.id), *map(_badge_or_dash, d.cases), esc(", ".join(d.reasons))) for d in cmp.not_finished]
        body.append(f"<details open><summary><b>Not compared</b>: {esc(_not_finished_text(cmp))}</summary>"
                    f"{table(['case', *names, 'why'], rows)}</details>")
    if cmp.config_skipped:
        rows = [(esc(d.id), *map(_badge_or_dash, d.cases),
                 "<br>".join(esc(f"{n}: {_skip_reason(c)}") for n, c in zip(names, d.cases, strict=True)
                             if c is not None and c["outcome"] == "skipped"))
                for d in cmp.config_skipped]
        body.append(f"<details open><summary><b>Skipped by configuration</b> (not a behaviour difference): "
                    f"{esc('; '.join(n for n in cmp.skip_notes() if 'configuration' in n))}</summary>"
                    f"{table(['case', *names, 'why'], rows)}</details>")
    if cmp.skipped_all:
        body.append(f"<p class='muted'>{esc(_skipped_all_text(cmp))}</p>")
    body.append(grid.diff_section(cmp.runs, names, (d.id for d in cmp.differing + cmp.partial)))
    body += [_case_diff(cmp, d) for d in cmp.differing + cmp.partial]
    return page("sockconf compare", body, wide=True)


def _first_change(d: CaseDiff) -> str:
    """The summary table's "what changed": the first sentences of the first change."""
    if not d.changes:
        return ""
    change = d.changes[0]
    shown = change.sentences[:2] or (["fingerprint lines differ (see below)"] if change.raw else [])
    more = len(change.sentences) - len(shown) + sum(len(c.sentences) for c in d.changes[1:])
    return esc("; ".join(shown)) + (f" <span class='muted'>(+{more})</span>" if more > 0 else "")


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
    diffs = []
    for change in d.changes:
        items = "".join(f"<li>{esc(line)}</li>" for line in change.sentences)
        diffs.append(f"<h3>what changed, {esc(change.base)} → {esc(change.other)}</h3>"
                     + (f'<ul class="changes">{items}</ul>' if items else ""))
        if change.raw:
            lines = "\n".join(
                f'<span class="diffline-{"add" if ln.startswith("+") else "del"}">{esc(ln)}</span>'
                for ln in change.raw
            )
            diffs.append(f"<p class='muted'>fingerprint lines ({esc(change.base)} -, {esc(change.other)} +):</p>"
                         f"<pre>{lines}</pre>")
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
