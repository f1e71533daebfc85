"""The closing-state × incoming-segment grid (issue 10) drawn from a run's cases: state rows × segment columns, one
table per family, each cell the answer the kernel gave (challenge ACK, ACK, RST or nothing) and its state
afterwards, coloured by the case's outcome, marked where Linux deviates from RFC 9293 / 5961, linking to the case.

Like the rest of ``reports/`` this reads only ``results.json``; it never imports the conformance package.  A grid
case (area ``grid``) is recognised and read, in this order of preference:

- which cell it is: the case's ``observations["grid"]`` value (see below), else its ``params["cell"]`` (the
  parametrised ``conformance.grid.Cell``: a JSON object, or the dataclass repr the plugin writes today through
  ``json.dumps(default=str)``, parsed without evaluating it), else the case id (``grid/grid[ipv4-closing-rst@left-1]``,
  split with the vocabulary below);
- what the kernel answered: ``observations["grid"]["value"]["answer"]`` / ``["after"]`` when the case records them;
  else, for a passed case whose expectation is known, the expectation (its own checks asserted exactly that);
  else read from the wire: the first segment the kernel sent on the connection within ``ANSWER_S`` of the probe
  (the injected segment the scripted peer logged with the probe id as its note, else the last one injected) and
  before any later injection, retransmissions left out, an ACK at rcv_nxt being a challenge ACK when the
  case counted one in ``TcpExtTCPChallengeACK``; and the state afterwards from the state timeline of the
  kernel's socket up to the case's last check;
- whether Linux deviates there: the observation's ``deviation``, else the Cell's ``deviation`` / ``rfc_answer``,
  else the case note the grid case writes ("deviation from the RFCs (they ask for …): …").

The observation a grid case should record (``lab.observe("grid", value, text)``, before it asserts)::

    {"state": "closing", "probe": "rst@left-1", "segment": "rst", "position": "left-1", "ack": "ok",
     "answer": "-",  "after": "CLOSED",            # what was seen: CH, A+N, R, RA, -, or [FLAGS] for anything else
     "expected": "-", "expected_after": "CLOSED",  # conformance/grid.py's cell
     "rfc": "->=", "deviation": "an RST at RCV.NXT - 1 ..."}   # "" where Linux follows the RFCs
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .fmt import esc, slug
from .load import BAD_OUTCOMES, Case, Run

AREA = "grid"
OBSERVATION = "grid"
ANSWER_S = 0.25  # the kernel's answer to the injected segment comes within this (PROMPT_S of the harness)
CHALLENGE = "TcpExtTCPChallengeACK"
NO_FAMILY = "n/a"

# the vocabulary of conformance/grid.py, for ordering and for reading case ids (tests/test_grid_report.py checks
# that it matches); values outside it are drawn after the known ones, in the order met
STATES = ("established", "fin-wait1", "fin-wait2", "fin-wait2-orphan", "closing", "time-wait", "close-wait",
          "last-ack", "syn-recv")
SEGMENTS = ("syn", "syn-ack", "ack", "fin", "fin-ack", "rst", "rst-ack", "data", "data-fin")
POSITIONS = ("left-out", "left-1", "left", "inside", "right", "right-out")
ACKS = ("ok", "old", "ancient", "ahead")
DEVIATION_NOTE = re.compile(r"^deviation from the RFCs \(they ask for (?P<rfc>[^)]*)\): (?P<text>.*)$", re.S)
_ALT = "|".join(sorted(map(re.escape, SEGMENTS), key=len, reverse=True))
_POS = "|".join(sorted(map(re.escape, POSITIONS), key=len, reverse=True))
PROBE_ID = re.compile(rf"^(?P<segment>{_ALT})@(?P<position>{_POS})(?:-ack-(?P<ack>[a-z0-9]+))?$")
CELL_ID = re.compile(rf"^(?P<state>[a-z0-9-]+?)-(?P<probe>(?:{_ALT})@.+)$")

CSS = """
table.grid{border-collapse:collapse;margin:4px 0 10px;font-size:12px}
table.grid th,table.grid td{border:1px solid var(--line);padding:2px 4px;text-align:center;vertical-align:middle}
table.grid thead th{font-weight:600;white-space:nowrap}table.grid thead tr+tr th{font-weight:normal;font-size:11px}
table.grid th.gstate{text-align:left;white-space:nowrap}
table.grid td.gcell{min-width:46px;position:relative;padding:0}
table.grid td.gcell a{display:block;padding:2px 4px;color:inherit;text-decoration:none}
table.grid td.gcell b{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
table.grid .gafter{display:block;font-size:10px;opacity:.8;white-space:nowrap}
table.grid .gexp{display:block;font-size:10px;white-space:nowrap;font-weight:600}
table.grid td.gcell.dev{box-shadow:inset 0 0 0 2px #7b1fa2}
table.grid .gdev{position:absolute;top:0;right:1px;font-size:9px;color:#7b1fa2;line-height:1}
table.grid td.gcell.gdiff{outline:3px solid #e65100;outline-offset:-3px}
table.grid .gdiffmark{position:absolute;top:0;left:2px;font-size:10px;color:#e65100;font-weight:700;line-height:1}
.gridlegend{font-size:12px}.gridlegend .gdevkey{color:#7b1fa2}.gridlegend .gdiffkey{color:#e65100;font-weight:700}
"""


@dataclass
class GridCell:
    """One grid case as the report draws it."""

    case: Case
    family: str
    state: str  # the row: a state of conformance/grid.py ("closing")
    probe: str  # the column: a probe id ("rst@left-1", "ack@left-ack-ancient")
    segment: str
    position: str
    ack: str
    answer: str = ""  # seen: CH, A+N, R, RA, -, [FLAGS]; "" unknown
    after: str = ""  # seen: the kernel socket's state afterwards (kernel name, CLOSED = gone); "" unknown
    before: str = ""  # the state it was in when the segment arrived, where the timeline shows it
    source: str = ""  # where answer/after come from: observation | checks | wire | "" (nothing to read)
    sent: bool = True  # False: the case ended before the probe was sent (it failed on the way into the state)
    expected: str = ""  # conformance/grid.py's answer for the cell, "" unknown
    expected_after: str = ""
    rfc: str = ""  # what RFC 9293 / 5961 ask for where Linux differs ("ANSWER>AFTER"), else ""
    deviation: str = ""  # the deviation in words, "" where Linux follows the RFCs

    @property
    def id(self) -> str:
        return str(self.case["id"])

    @property
    def outcome(self) -> str:
        return str(self.case["outcome"])

    @property
    def deviates(self) -> bool:
        return bool(self.deviation or self.rfc)

    @property
    def unchanged(self) -> bool:
        return bool(self.after) and self.after == (self.before or kernel_state(self.state))

    @property
    def matches_expectation(self) -> bool | None:
        if not self.expected or not self.answer:
            return None
        return self.answer == self.expected and (not self.expected_after or self.after == self.expected_after)


def kernel_state(state: str) -> str:
    """The kernel's name of a grid state: fin-wait2-orphan -> FIN_WAIT2, syn-recv -> SYN_RECV."""
    return state.removesuffix("-orphan").upper().replace("-", "_")


# --- which cell a case is ------------------------------------------------------------------------------------

def parse_repr(text: str) -> Any:
    """A dataclass repr (``Cell(state='closing', probe=Probe(segment='rst', ...), ...)``) as nested dicts,
    read with ``ast`` (literals only: nothing is evaluated); None when it is not one."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
        return _node(node)
    except (SyntaxError, ValueError, TypeError, RecursionError):
        return None


def _node(node: ast.AST) -> Any:
    if isinstance(node, ast.Call):
        out: dict[str, Any] = {k.arg: _node(k.value) for k in node.keywords if k.arg}
        if node.args:
            out["_args"] = [_node(a) for a in node.args]
        return out
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_node(e) for e in node.elts]
    return ast.literal_eval(node)


def split_probe(probe: str) -> tuple[str, str, str] | None:
    """"ack@left-ack-ancient" -> ("ack", "left", "ancient"); None when it is not a probe id."""
    m = PROBE_ID.match(probe)
    return (m["segment"], m["position"], m["ack"] or "ok") if m else None


def probe_id(segment: str, position: str, ack: str) -> str:
    return f"{segment}@{position}" + (f"-ack-{ack}" if ack and ack != "ok" else "")


def split_variant(variant: str) -> tuple[str, str] | None:
    """"closing-rst@left-1" -> ("closing", "rst@left-1"): a known state first (the longest), else the shortest
    prefix followed by a segment name and "@"."""
    for state in sorted(STATES, key=len, reverse=True):
        if variant.startswith(state + "-") and split_probe(variant[len(state) + 1:]):
            return state, variant[len(state) + 1:]
    m = CELL_ID.match(variant)
    return (m["state"], m["probe"]) if m and split_probe(m["probe"]) else None


def _variant(case: Case) -> str:
    if case.get("variant"):
        return str(case["variant"])
    inside = str(case["id"]).partition("[")[2].rstrip("]")
    family = case.get("family")
    tokens = inside.split("-") if inside else []
    if family in tokens:
        tokens.remove(family)
    return "-".join(tokens)


def _answer_after(spec: str) -> tuple[str, str]:
    """conformance/grid.py's "ANSWER>AFTER" ("CH>=", "->CLOSED"): the answer and the state ("=" unchanged)."""
    answer, _, after = spec.partition(">")
    return answer, after


def identify(case: Case) -> GridCell | None:
    """The grid cell a case is, with what the case says it expects there; None for any other case (the grid
    area's other tests, such as the challenge ACK limits, have no cell)."""
    if case.get("area") != AREA:
        return None
    obs = (case.get("observations") or {}).get(OBSERVATION)
    rec = obs.get("value") if isinstance(obs, dict) and isinstance(obs.get("value"), dict) else {}
    raw = (case.get("params") or {}).get("cell")
    cell = raw if isinstance(raw, dict) else parse_repr(raw) if isinstance(raw, str) else None
    cell = cell if isinstance(cell, dict) else {}
    probe_rec = cell.get("probe") if isinstance(cell.get("probe"), dict) else {}
    state = str(rec.get("state") or cell.get("state") or "")
    segment = str(rec.get("segment") or probe_rec.get("segment") or "")
    position = str(rec.get("position") or probe_rec.get("position") or "")
    ack = str(rec.get("ack") or probe_rec.get("ack") or "ok")
    probe = str(rec.get("probe") or (probe_id(segment, position, ack) if segment and position else ""))
    if not (state and probe):
        parsed = split_variant(_variant(case))
        if parsed is None:
            return None
        state, probe = state or parsed[0], probe or parsed[1]
    if not (segment and position):
        parts = split_probe(probe)
        if parts:
            segment, position, ack = parts
        else:
            segment, position = probe.partition("@")[::2]
    family = str(case.get("family") or NO_FAMILY)
    gc = GridCell(case, family, state, probe, segment, position, ack)
    expected_after = str(rec.get("expected_after") or cell.get("after") or "")
    gc.expected = str(rec.get("expected") or cell.get("answer") or "")
    gc.expected_after = kernel_state(state) if expected_after == "=" else expected_after
    gc.rfc = str(rec.get("rfc") or cell.get("rfc_answer") or "")
    gc.deviation = str(rec.get("deviation") or cell.get("deviation") or "")
    if not gc.deviates:
        for note in case.get("notes") or []:
            m = DEVIATION_NOTE.match(str(note))
            if m:
                gc.rfc, gc.deviation = m["rfc"], m["text"]
                break
    _observe(gc, rec)
    return gc


# --- what the kernel answered --------------------------------------------------------------------------------

def _observe(gc: GridCell, rec: dict[str, Any]) -> None:
    case = gc.case
    wire = read_wire(case, gc.probe)
    if wire is not None:
        gc.before = wire["before"]
        gc.sent = bool(wire["sent"]) or bool(rec.get("answer"))
    if rec.get("answer"):
        gc.answer, gc.source = str(rec["answer"]), "observation"
        gc.after = str(rec.get("after") or (wire["after"] if wire else ""))
        if gc.after == "=":
            gc.after = gc.before or kernel_state(gc.state)
        return
    if gc.outcome == "passed" and gc.expected:
        # every check passed, and the checks asserted exactly the cell's answer and state afterwards
        gc.answer, gc.after, gc.source = gc.expected, gc.expected_after, "checks"
        return
    if wire is not None and wire["answer"]:
        gc.answer, gc.after, gc.source = wire["answer"], wire["after"], "wire"


def _flags(seg: dict[str, Any]) -> str:
    return str(seg.get("flags") or "")


def _occupies(seg: dict[str, Any]) -> bool:
    flags = _flags(seg)
    return "S" in flags or "F" in flags or bool(seg.get("len"))


def _same_conn(seg: dict[str, Any], probe: dict[str, Any]) -> bool:
    if seg.get("conn") is not None and probe.get("conn") is not None:
        return seg["conn"] == probe["conn"]
    if seg.get("sport") is not None and probe.get("dport") is not None:
        return seg["sport"] == probe["dport"] and seg.get("dport") == probe.get("sport")
    return True


def challenge_count(case: Case) -> int:
    """Challenge ACKs the case counted after its injection (its TcpExtTCPChallengeACK check), else over the
    whole case (nstat deltas)."""
    for check in case.get("checks") or []:
        if CHALLENGE in str(check.get("what") or "") and check.get("kind") in ("value", "counter"):
            try:
                return int(str(check.get("seen")))
            except ValueError:
                break
    return max((int(c.get(CHALLENGE, 0) or 0) for c in (case.get("nstat") or {}).values() if isinstance(c, dict)),
               default=0)


def classify(seg: dict[str, Any] | None, rcv_nxt: int | None, challenges: int) -> str:
    """CH, A+N, R, RA, - or [FLAGS] for the kernel's answer ``seg`` (None: nothing)."""
    if seg is None:
        return "-"
    flags = _flags(seg).replace("P", "")
    if "R" in flags:
        return "RA" if "A" in flags else "R"
    if flags == "A" and not seg.get("len"):
        if rcv_nxt is None:
            return "A"
        n = (int(seg.get("ack") or 0) - rcv_nxt + 2**31) % 2**32 - 2**31
        if n == 0 and challenges > 0:
            return "CH"
        return f"A{n:+d}"
    return f"[{_flags(seg)}]" + (f"+{seg['len']}" if seg.get("len") else "")


def _probe_segment(case: Case, segs: list[dict[str, Any]], probe: str) -> tuple[dict[str, Any] | None, bool]:
    """The segment the harness injected as the cell's probe, and whether it was sent at all. The scripted peer
    logs each injection as a call ``inject`` whose args end in its note, the probe id for the probe: the
    injected segment sent at that call is the probe; a case that logged injections but not the probe's ended
    before sending it (it failed while bringing the socket into the state). Without such a log: the last
    injected segment."""
    injected = [s for s in segs if s.get("origin") in ("injected", "replayed")]
    calls = [c for c in case.get("syscalls") or [] if c.get("call") == "inject"]
    if probe and calls:
        mine = [c for c in calls if str(c.get("args") or "").endswith(f"({probe})")]
        if not mine:
            return None, False
        at = float(mine[-1]["t"])
        after = [s for s in injected if s["t"] >= at - 0.001]
        if after:
            return after[0], True
        return (min(injected, key=lambda s: abs(s["t"] - at)) if injected else None), True
    return (injected[-1] if injected else None), bool(injected)


def read_wire(case: Case, probe_name: str = "") -> dict[str, str] | None:
    """The answer to the probe (see ``_probe_segment``), read from the case's segments and state timeline:
    ``{"answer", "after", "before"}``; answer and after are "" when the probe was never sent. None when the case
    injected nothing."""
    segs = sorted(case.get("segments") or [], key=lambda s: s["t"])
    probe, sent_at_all = _probe_segment(case, segs, probe_name)
    if not sent_at_all:
        if not any(s.get("origin") in ("injected", "replayed") for s in segs):
            return None
        times = [c["t"] for c in case.get("checks") or [] if isinstance(c.get("t"), (int, float))]
        return {"answer": "", "after": "", "before": _states_around(case, max(times, default=0.0))[1],
                "sent": ""}
    if probe is None:
        return None
    peer = probe.get("sender")
    kernel = [s for s in segs if s.get("origin", "kernel") == "kernel" and s.get("sender") != peer
              and _same_conn(s, probe)]
    earlier = [s for s in kernel if s["t"] <= probe["t"]]
    sent = {(_flags(s), s.get("seq")) for s in earlier if _occupies(s)}
    acks = [s for s in earlier if "A" in _flags(s)]
    rcv_nxt = int(acks[-1].get("ack") or 0) if acks else None
    later = [s["t"] for s in segs if s.get("origin") in ("injected", "replayed") and s["t"] > probe["t"]]
    until = min([probe["t"] + ANSWER_S, *later])  # what the kernel sent after a later injection answers that one
    answer_seg = None
    for s in kernel:
        if probe["t"] < s["t"] <= until:
            if _occupies(s) and (_flags(s), s.get("seq")) in sent:
                continue  # a retransmission on the kernel's timer, not an answer
            answer_seg = s
            break
    before, after = _states_around(case, probe["t"])
    return {"answer": classify(answer_seg, rcv_nxt, challenge_count(case)), "after": after, "before": before,
            "sent": "yes"}


def _kernel_side(case: Case) -> str | None:
    for check in case.get("checks") or []:
        side = (check.get("params") or {}).get("side")
        if check.get("kind") in ("reach", "state") and side:
            return str(side)
    sides = [str(s.get("side")) for s in case.get("states") or []]
    if "kernel" in sides:
        return "kernel"
    return sides[-1] if sides else None


def _states_around(case: Case, at: float) -> tuple[str, str]:
    """The kernel socket's state when the segment came (``at``) and at the case's last check (its reach check
    after the answer, or the check that failed)."""
    side = _kernel_side(case)
    rows = sorted((s for s in case.get("states") or [] if str(s.get("side")) == side), key=lambda s: s["t"])
    if not rows:
        return "", ""
    times = [c["t"] for c in case.get("checks") or [] if isinstance(c.get("t"), (int, float))
             and c.get("kind") != "unexpected"]
    end = max(times) if times and max(times) > at else at + ANSWER_S
    before = [r for r in rows if r["t"] <= at]
    until = [r for r in rows if r["t"] <= end]
    return (str(before[-1]["state"]) if before else ""), (str(until[-1]["state"]) if until else "")


def cells(cases: Iterable[Case]) -> list[GridCell]:
    return [gc for gc in (identify(c) for c in cases) if gc is not None]


# --- layout --------------------------------------------------------------------------------------------------

def _order(known: Sequence[str], values: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    rank = {v: i for i, v in enumerate(known)}
    return sorted(seen, key=lambda v: (rank.get(v, len(known)), seen.index(v)))


def _probe_key(gc: GridCell) -> tuple[int, int, int, str]:
    """Columns as conformance/grid.py's PROBES: by segment, the acceptable ACK first, then by position."""
    def at(known: Sequence[str], v: str) -> int:
        return known.index(v) if v in known else len(known)

    return at(SEGMENTS, gc.segment), at(ACKS, gc.ack), at(POSITIONS, gc.position), gc.probe


@dataclass
class Layout:
    families: list[str]
    states: list[str]
    probes: list[tuple[str, str, str, str]]  # (probe id, segment, position, ack), in column order

    @staticmethod
    def of(groups: Iterable[Iterable[GridCell]]) -> Layout:
        every = [gc for group in groups for gc in group]
        probes: dict[str, tuple[tuple[int, int, int, str], GridCell]] = {}
        for gc in every:
            probes.setdefault(gc.probe, (_probe_key(gc), gc))
        ordered = [(p, gc.segment, gc.position, gc.ack) for p, (_, gc) in sorted(probes.items(), key=lambda i: i[1][0])]
        return Layout(_order(("ipv4", "ipv6"), (gc.family for gc in every)),
                      _order(STATES, (gc.state for gc in every)), ordered)


# --- drawing -------------------------------------------------------------------------------------------------

def describe(answer: str) -> str:
    if answer == "CH":
        return "a challenge ACK"
    if answer == "A+0":
        return "a duplicate ACK (ack = rcv_nxt)"
    m = re.fullmatch(r"A([+-]\d+)", answer)
    if m:
        return f"an ACK of rcv_nxt {m[1][0]} {m[1][1:]}"
    if answer in ("R", "RA"):
        return f"an RST [{answer}]"
    if answer == "-":
        return "nothing"
    return f"{answer}" if answer else "not known"


def message_line(message: str, limit: int = 200) -> str:
    """The line of a failure text that says what went wrong: pytest's last "E   " line, else the first line."""
    lines = [ln[1:].strip() for ln in message.splitlines() if ln.startswith("E ") and ln[1:].strip()]
    line = lines[-1] if lines else message.strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _spec_words(answer: str, after: str, state: str) -> str:
    then = "unchanged" if after in ("=", kernel_state(state)) else f"then {after}" if after else ""
    return describe(answer) + (f", {then}" if then else "")


def _head(layout: Layout) -> str:
    groups: list[tuple[str, int]] = []
    for _, segment, _, _ in layout.probes:
        if groups and groups[-1][0] == segment:
            groups[-1] = (segment, groups[-1][1] + 1)
        else:
            groups.append((segment, 1))
    top = "".join(f'<th colspan="{n}">{esc(seg)}</th>' for seg, n in groups)
    sub = "".join(f'<th title="{esc(p)}">{esc(pos)}' + (f"<br>ack {esc(ack)}" if ack != "ok" else "") + "</th>"
                  for p, _, pos, ack in layout.probes)
    return f'<thead><tr><th rowspan="2">state</th>{top}</tr><tr>{sub}</tr></thead>'


def _cell_html(gc: GridCell | None, href: str | None, differs: bool = False) -> str:
    if gc is None:
        mark = '<span class="gdiffmark">≠</span>' if differs else ""
        cls = "gcell o-none" + (" gdiff" if differs else "")
        return f'<td class="{cls}" title="not in this run">{mark}·</td>'
    o = gc.outcome
    answer = gc.answer or ("?" if o not in ("skipped",) else "–")
    after = "=" if gc.unchanged else (gc.after or "?")
    if o == "skipped":
        after = "skipped"
    elif not gc.sent and not gc.answer:
        after = "not sent"
    title = [f"{gc.id}: {o}", f"{gc.state} × {gc.probe} ({gc.family})"]
    if not gc.sent and not gc.answer:
        title.append("the segment was never sent: the case ended on the way into the state"
                     + (f" (the socket was {gc.before})" if gc.before else ""))
    if gc.answer:
        title.append(f"seen: {_spec_words(gc.answer, gc.after, gc.state)}"
                     + {"observation": " (recorded by the case)", "checks": " (asserted by its checks)",
                        "wire": " (read from the wire)"}.get(gc.source, ""))
    if gc.expected:
        title.append(f"expected: {_spec_words(gc.expected, gc.expected_after, gc.state)}")
    if gc.deviates:
        rfc_answer, rfc_after = _answer_after(gc.rfc) if gc.rfc else ("", "")
        asks = f" (the RFCs ask for {_spec_words(rfc_answer, rfc_after, gc.state)})" if rfc_answer else ""
        title.append(f"Linux deviates from RFC 9293/5961{asks}: {gc.deviation}")
    if gc.case.get("message") and o in BAD_OUTCOMES:
        title.append(message_line(str(gc.case["message"])))
    exp = ""
    if gc.matches_expectation is False:
        exp_after = "=" if gc.expected_after == (gc.before or kernel_state(gc.state)) else gc.expected_after
        exp = f'<span class="gexp">exp {esc(gc.expected)}' + (f" {esc(exp_after)}" if exp_after != after else "") \
            + "</span>"
    body = f'<b>{esc(answer)}</b><span class="gafter">{esc(after)}</span>{exp}'
    inner = f'<a href="{esc(href)}">{body}</a>' if href else body
    dev = '<span class="gdev" aria-label="deviates from the RFCs">◆</span>' if gc.deviates else ""
    mark = '<span class="gdiffmark" aria-label="differs">≠</span>' if differs else ""
    cls = " ".join(["gcell", f"o-{o}", *(["dev"] if gc.deviates else []), *(["gdiff"] if differs else [])])
    return (f'<td class="{cls}" data-o="{esc(o)}" data-cell="{esc(gc.state)}/{esc(gc.probe)}" '
            f'title="{esc(chr(10).join(title))}">{mark}{dev}{inner}</td>')


def table(layout: Layout, family: str, grid_cells: Iterable[GridCell], href: str | None = "#",
          differs: set[str] | None = None, diff_keys: set[tuple[str, str, str]] | None = None) -> str:
    """One family's grid. ``href``: the prefix of the links to the cases (None: no links); ``differs``: case ids
    drawn as differing (linked even when ``href`` is None, to ``#`` + their slug)."""
    by = {(gc.state, gc.probe): gc for gc in grid_cells if gc.family == family}
    rows = []
    for state in layout.states:
        tds = []
        for probe, *_ in layout.probes:
            gc = by.get((state, probe))
            d = (gc is not None and gc.id in (differs or set())) or \
                (gc is None and (family, state, probe) in (diff_keys or set()))
            link = None if gc is None else f"{href}{slug(gc.id)}" if href is not None else \
                f"#{slug(gc.id)}" if d else None
            tds.append(_cell_html(gc, link, d))
        label = f'{esc(kernel_state(state))}<br><span class="muted">{esc(state)}</span>'
        rows.append(f'<tr><th class="gstate">{label}</th>{"".join(tds)}</tr>')
    return f'<table class="grid" data-family="{esc(family)}">{_head(layout)}<tbody>{"".join(rows)}</tbody></table>'


LEGEND = ('<p class="gridlegend muted">Each cell: what the kernel answered to the segment (<b>CH</b> a challenge '
          "ACK, <b>A+N</b> an ACK of rcv_nxt + N, <b>A+0</b> a duplicate ACK, <b>R</b>/<b>RA</b> an RST, "
          "<b>-</b> nothing) and its state afterwards (<b>=</b> unchanged, CLOSED gone); coloured by the case's "
          'outcome; <span class="gdevkey">◆</span> where Linux deviates from RFC 9293 / 5961 (hover for how); '
          "<b>exp</b> what the case expected where the answer differs. Columns: the segment, then where its "
          "sequence number lies against the receive window (and its ACK field when not acceptable).</p>")


def _counts(grid_cells: list[GridCell]) -> str:
    bad = sum(gc.outcome in BAD_OUTCOMES for gc in grid_cells)
    dev = len({(gc.state, gc.probe) for gc in grid_cells if gc.deviates})
    wire = sum(gc.source == "wire" for gc in grid_cells)
    unknown = sum(not gc.answer for gc in grid_cells)
    parts = [f"{len(grid_cells)} cells", f"{bad} failed" if bad else "all passed" if grid_cells else "",
             f"{dev} state × segment cells where Linux deviates from the RFCs"]
    if wire:
        parts.append(f"{wire} answers read from the wire (the case recorded none and did not pass)")
    unsent = sum(not gc.sent and not gc.answer for gc in grid_cells)
    if unsent:
        parts.append(f"{unsent} whose segment was never sent (the case failed on the way into the state)")
    if unknown - unsent:
        parts.append(f"{unknown - unsent} without an answer (no evidence)")
    return "; ".join(p for p in parts if p)


def deviations_list(grid_cells: list[GridCell], href: str = "#") -> str:
    """Every state × segment cell where Linux deviates, once, with the RFC's answer, the deviation in words and
    links to each family's case."""
    rows: dict[tuple[str, str], list[GridCell]] = defaultdict(list)
    for gc in grid_cells:
        if gc.deviates:
            rows[(gc.state, gc.probe)].append(gc)
    if not rows:
        return ""
    layout = Layout.of([grid_cells])
    col = {p: i for i, (p, *_) in enumerate(layout.probes)}
    ordered = sorted(rows.items(), key=lambda i: (layout.states.index(i[0][0]), col.get(i[0][1], 0)))
    body = []
    for (state, probe), group in ordered:
        first = group[0]
        rfc_answer, rfc_after = _answer_after(first.rfc) if first.rfc else ("", "")
        links = " ".join(f'<a href="{esc(href)}{slug(gc.id)}" class="badge o-{esc(gc.outcome)}">{esc(gc.family)}</a>'
                         for gc in group)
        seen = first.answer and _spec_words(first.answer, first.after, state)
        body.append(f"<tr><td>{esc(kernel_state(state))}</td><td><code>{esc(probe)}</code></td>"
                    f"<td>{esc(_spec_words(rfc_answer, rfc_after, state) if rfc_answer else '')}</td>"
                    f"<td>{esc(seen or '')}</td><td>{esc(first.deviation)}</td><td>{links}</td></tr>")
    return (f"<details><summary>{len(rows)} state × segment cells where Linux deviates from RFC 9293 / 5961"
            "</summary><table><thead><tr><th>state</th><th>segment</th><th>the RFCs ask for</th><th>Linux</th>"
            f"<th>how</th><th>cases</th></tr></thead><tbody>{''.join(body)}</tbody></table></details>")


def section(run: Run, href: str = "#") -> str:
    """The run report's grid section; "" when the run has no grid case."""
    grid_cells = cells(run.cases)
    if not grid_cells:
        return ""
    layout = Layout.of([grid_cells])
    out = [f"<style>{CSS}</style>", '<h2 id="grid">The closing-state × incoming-segment grid</h2>',
           f'<p class="muted">{esc(_counts(grid_cells))}.</p>', LEGEND]
    for family in layout.families:
        out.append(f"<h3>{esc(family)}</h3>{table(layout, family, grid_cells, href)}")
    out.append(deviations_list(grid_cells, href))
    return "".join(out)


# --- compare -------------------------------------------------------------------------------------------------

def differing_cells(runs: Sequence[Run], differing_ids: Iterable[str]) -> list[tuple[str, str, str, str]]:
    """(family, state, probe, case id) of every grid cell whose case differs among the runs (compare's
    differing and partial cases: outcome or fingerprint differ, or the case is missing from a run)."""
    ids = set(differing_ids)
    found: dict[str, tuple[str, str, str, str]] = {}
    for run in runs:
        for gc in cells(c for c in run.cases if c["id"] in ids):
            found.setdefault(gc.id, (gc.family, gc.state, gc.probe, gc.id))
    layout = Layout.of([cells(c for c in r.cases if c["id"] in ids) for r in runs])
    col = {p: i for i, (p, *_) in enumerate(layout.probes)}
    return sorted(found.values(), key=lambda k: (layout.states.index(k[1]), col.get(k[2], 0),
                                                   layout.families.index(k[0])))


def summary_line(runs: Sequence[Run], differing_ids: Iterable[str], limit: int = 12) -> str | None:
    """"grid: N cells differ: state/segment, ..." (None when no run has grid cases). A state/segment is named
    once, with the families in brackets when not every family's cell differs."""
    per_run = [cells(r.cases) for r in runs]
    if not any(per_run):
        return None
    families = {gc.family for group in per_run for gc in group}
    diff = differing_cells(runs, differing_ids)
    total = len({gc.id for group in per_run for gc in group})
    if not diff:
        return f"grid: no cell differs ({total} cells)"
    grouped: dict[tuple[str, str], list[str]] = {}
    for family, state, probe, _ in diff:
        grouped.setdefault((state, probe), []).append(family)
    names = [f"{state}/{probe}" + ("" if set(fams) == families else f" [{', '.join(fams)}]")
             for (state, probe), fams in grouped.items()]
    shown = ", ".join(names[:limit]) + (f", … and {len(names) - limit} more" if len(names) > limit else "")
    return f"grid: {len(diff)} of {total} cells differ: {shown}"


def diff_section(runs: Sequence[Run], names: Sequence[str], differing_ids: Iterable[str]) -> str:
    """compare's HTML: the runs' grids side by side, per family, differing cells outlined and marked ≠ (linked
    to their case's diff below)."""
    per_run = [cells(r.cases) for r in runs]
    if not any(per_run):
        return ""
    ids = set(differing_ids)
    diff = differing_cells(runs, ids)
    keys = {(f, s, p) for f, s, p, _ in diff}
    layout = Layout.of(per_run)
    line = summary_line(runs, ids) or ""
    out = [f"<style>{CSS}</style>", '<h2 id="grid">The closing-state × incoming-segment grid</h2>',
           f"<p>{esc(line)}</p>", LEGEND,
           '<p class="gridlegend muted"><span class="gdiffkey">≠</span> outlined: the cell differs between the runs '
           "(outcome or behaviour fingerprint, or the case is missing from a run); click it for the case's diff."
           "</p>"]
    for family in layout.families:
        cols = "".join(f"<div><h3>{esc(name)}: {esc(run.label)} · {esc(family)}</h3>"
                       f"{table(layout, family, group, None, ids, keys)}</div>"
                       for name, run, group in zip(names, runs, per_run, strict=True))
        out.append(f'<div class="cols side">{cols}</div>')
    return "".join(out)
