"""Ladder (sequence) diagrams of one case as inline SVG.

One vertical time line per side (client, server, and peer when a scripted peer took part), time running
down.  Every segment is an arrow labelled with flags/seq/ack/len; state changes and syscalls are written
beside the line of their side.  Each event gets its own row, so labels never overlap; the vertical
spacing grows with the logarithm of the time between events, and idle gaps of ``BREAK_S`` or more are
compressed into a visible break marker labelled with the gap.  At most ``MAX_ARROWS`` segments are drawn:
the first two thirds and the last third, with a marker saying how many were left out.

Segments the harness crafted (``origin`` ``injected`` or ``replayed``) are drawn dashed and labelled so, never
like a kernel's; segments the strict wire mode flagged (``unexpected``) are drawn red on a red band with the
label "unexpected".  The case's scenario span, when given, is shaded.

Arrow heads are SVG markers defined once per page by :func:`defs`; colours and markers come from the CSS
classes in :data:`CSS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .fmt import esc, fmt_t, segment_label
from .load import SIDES, Case

MAX_ARROWS = 60
MAX_EVENTS = 100
MAX_NOTE = 28  # characters of a state/syscall note beside a line (more in its tooltip)
BREAK_S = 1.0

TIME_W = 62  # time column on the left
SIDE_W = 200  # room for annotations outside the outer lines
LANE_GAP = 300  # distance between two time lines
TOP = 44  # lane headers
ROW = {"seg": 26, "state": 17, "call": 17, "cut": 40, "brk": 40}
SLANT = 7  # arrows go slightly down so the direction reads even without the head

CSS = """
svg.ladder{font:11px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;max-width:100%;height:auto;
 background:#fff}
.ladder .lane{stroke:#555;stroke-width:1.5}
.ladder .hd{font-weight:bold;font-size:12px}
.ladder .ep{fill:#666;font-size:10px}
.ladder .tm{fill:#777;font-size:10px}
.ladder line.sg{stroke-width:1.4}
.ladder .k-s{stroke:#2e7d32;marker-end:url(#ah-s)}
.ladder .k-f{stroke:#1565c0;marker-end:url(#ah-f)}
.ladder .k-r{stroke:#c62828;marker-end:url(#ah-r);stroke-width:2}
.ladder .k-d{stroke:#333;marker-end:url(#ah-d)}
.ladder .k-a{stroke:#999;marker-end:url(#ah-a)}
.ladder text.k-s{fill:#2e7d32;stroke:none}
.ladder text.k-f{fill:#1565c0;stroke:none}
.ladder text.k-r{fill:#c62828;stroke:none;font-weight:bold}
.ladder text.k-d{fill:#333;stroke:none}
.ladder text.k-a{fill:#777;stroke:none}
.ladder .st{fill:#6a1b9a;font-weight:bold}
.ladder .stm{fill:#6a1b9a}
.ladder .sc{fill:#00695c;font-style:italic}
.ladder .scm{fill:#00695c}
.ladder .brk{fill:none;stroke:#999;stroke-width:1}
.ladder .band{fill:#fff}
.ladder .cutband{fill:#fff8e1}
.ladder .note{fill:#666;font-style:italic}
.ladder line.crafted{stroke-dasharray:6 4}
.ladder line.crafted.o-replayed{stroke-dasharray:2 3}
.ladder text.org{fill:#6d4c00;font-size:10px;font-style:italic;font-weight:normal}
.ladder line.unx{stroke:#c62828;stroke-width:2.4;marker-end:url(#ah-r)}
.ladder text.unx{fill:#c62828;font-weight:bold}
.ladder .unxband{fill:#fdecea}
.ladder .scn{fill:#f1f6ff}
.ladder .scnbar{fill:#90caf9}
"""

_KIND_COLOURS = {"s": "#2e7d32", "f": "#1565c0", "r": "#c62828", "d": "#333", "a": "#999"}


def defs() -> str:
    """The arrow-head markers, once per page (an invisible SVG, referenced by id from every ladder)."""
    markers = "".join(
        f'<marker id="ah-{k}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7"'
        f' orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="{c}"/></marker>'
        for k, c in _KIND_COLOURS.items()
    )
    return (
        '<svg width="0" height="0" style="position:absolute" aria-hidden="true" focusable="false">'
        f"<defs>{markers}</defs></svg>"
    )


@dataclass
class _Event:
    t: float
    kind: str  # seg | state | call | cut
    item: dict[str, Any]
    index: int = -1  # a segment's index in case["segments"]


def lanes(case: Case) -> tuple[list[str], dict[str, str]]:
    """The time lines drawn, in order, and the line each side is drawn on.  Client and server always
    get a line, peer when it appears.  Any other side (e.g. the server's listening socket) shares the
    line of the side with the same address and port, or gets a line of its own."""
    endpoints = case["endpoints"]
    seen = list(dict.fromkeys([*endpoints, *(str(x.get("sender") or x.get("side"))
                                             for key in ("segments", "states", "syscalls") for x in case[key])]))
    drawn = [s for s in SIDES if s in seen or s in ("client", "server")]
    home = {s: s for s in drawn}

    def where(side: str) -> tuple[object, object]:
        ep = endpoints.get(side) or {}
        return ep.get("addr"), ep.get("port")

    for side in seen:
        if side in home:
            continue
        same = [d for d in drawn if where(d) == where(side) and where(side)[0] is not None]
        if same:
            home[side] = same[0]
        else:
            drawn.append(side)
            home[side] = side
    return drawn, home


def receiver(sender: str, present: list[str], endpoints: dict[str, Any] | None = None) -> str:
    """Who a segment goes to.  Client and server talk to each other.  A scripted peer that uses the
    address and port of one side impersonates it, so it talks to the other; otherwise it talks to the
    server when there is one, else to the client.  Kernel sides answer a peer when they are alone
    with it."""
    endpoints = endpoints or {}
    wanted = {"client": ("server", "peer"), "server": ("client", "peer"), "peer": ("server", "client")}
    peer = endpoints.get("peer") or {}
    if sender == "peer" and peer.get("addr"):
        for side, other in (("server", "client"), ("client", "server")):
            ep = endpoints.get(side) or {}
            if (ep.get("addr"), ep.get("port")) == (peer.get("addr"), peer.get("port")):
                wanted["peer"] = (other, side)
    for side in wanted.get(sender, ()):
        if side in present and side != sender:
            return side
    return present[-1] if present[0] == sender else present[0]


def _state_changes(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """State rows worth drawing: a row is drawn when the state or the kind of timer of its side changes
    (a timer counting down is not a change). A socket seen gone (CLOSED) and then again is drawn as such:
    it happens (a TIME_WAIT taken over by a new SYN, a listener that listens again)."""
    last: dict[str, tuple[object, object]] = {}
    out: list[dict[str, Any]] = []
    for row in sorted(states, key=lambda r: r["t"]):
        side, key = str(row.get("side")), (row.get("state"), row.get("timer"))
        if last.get(side) != key:
            out.append(row)
            last[side] = key
    return out


def _select(case: Case, max_arrows: int, max_events: int) -> tuple[list[_Event], dict[str, int]]:
    """Events in time order.  When there are more than ``max_arrows`` segments or ``max_events`` events,
    the middle is replaced by one 'cut' event: two thirds of each budget go to the start, one third to
    the end."""
    order = {"call": 0, "seg": 1, "state": 2}
    events = [_Event(s["t"], "seg", s, i) for i, s in enumerate(case["segments"])]
    events += [_Event(s["t"], "state", s) for s in _state_changes(case["states"])]
    events += [_Event(s["t"], "call", s) for s in case["syscalls"]]
    events.sort(key=lambda e: (e.t, order[e.kind]))
    omitted = {"segments": 0, "state": 0, "call": 0}
    if sum(e.kind == "seg" for e in events) <= max_arrows and len(events) <= max_events:
        return events, omitted
    head = _fit(events, max_arrows * 2 // 3, max_events * 2 // 3)
    tail = _fit(events[::-1], max_arrows - max_arrows * 2 // 3, max_events - max_events * 2 // 3)
    tail = min(tail, len(events) - head - 1)
    middle = events[head : len(events) - tail]
    for ev in middle:
        omitted["segments" if ev.kind == "seg" else ev.kind] += 1
    t_from = events[head - 1].t if head else middle[0].t
    t_end = events[len(events) - tail].t if tail else middle[-1].t
    cut = _Event(t_from, "cut", {"t_end": t_end, "hidden": len(middle)})
    return [*events[:head], cut, *events[len(events) - tail :]], omitted


def _fit(events: list[_Event], max_segs: int, max_events: int) -> int:
    """How many leading events fit both budgets."""
    segs = 0
    for i, ev in enumerate(events):
        segs += ev.kind == "seg"
        if segs > max_segs or i + 1 > max_events:
            return i
    return len(events)


def _gap_px(dt: float) -> float:
    """Extra vertical space for the time between two events: logarithmic, 0 below 0.5 ms."""
    if dt <= 5e-4:
        return 0.0
    return min(32.0, 10.0 * math.log10(dt / 5e-4))


def render(case: Case, max_arrows: int = MAX_ARROWS, max_events: int = MAX_EVENTS) -> tuple[str, dict[str, int]]:
    """The ladder diagram of ``case`` as an ``<svg>`` element ("" when nothing was observed), and how many
    segments / state changes / syscalls were left out of the drawing."""
    if not (case["segments"] or case["states"] or case["syscalls"]):
        return "", {"segments": 0, "state": 0, "call": 0}
    sides, home = lanes(case)
    xs = {side: TIME_W + SIDE_W + i * LANE_GAP for i, side in enumerate(sides)}
    xs.update({side: xs[lane] for side, lane in home.items()})
    width = xs[sides[-1]] + SIDE_W
    left_x, right_x = xs[sides[0]], xs[sides[-1]]
    events, omitted = _select(case, max_arrows, max_events)
    unexpected = set(case.get("unexpected") or ())

    out: list[str] = []
    rows: list[tuple[float, float, float]] = []  # (time, top, bottom) of every row, for the scenario band
    y = float(TOP)
    prev_t: float | None = None
    for ev in events:
        top = y
        dt = 0.0 if prev_t is None else ev.t - prev_t
        if dt >= BREAK_S:
            out.append(_break(y + ROW["brk"] / 2, left_x, right_x, f"{fmt_t(dt)} idle"))
            y += ROW["brk"]
        else:
            y += _gap_px(dt)
        y += ROW[ev.kind]
        rows.append((ev.t, top, y))
        if ev.kind == "seg":
            out.append(_arrow(ev.item, xs, sides, case["endpoints"], y, ev.index in unexpected))
        elif ev.kind == "cut":
            out.append(_cut(ev.item, ev.t, y, left_x, right_x))
            prev_t = ev.item["t_end"]
            continue
        else:
            out.append(_annotation(ev, xs, sides, y))
        prev_t = ev.t
    height = int(y + 16)

    head = [
        (
            f'<svg class="ladder" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
            f' viewBox="0 0 {width} {height}" role="img" aria-label="ladder diagram of {esc(case["id"])}">'
        ),
        _scenario_band(case, rows, width, height),
    ]
    for side in sides:
        x = xs[side]
        ep = case["endpoints"].get(side) or {}
        addr = f"{ep.get('addr', '')}:{ep.get('port', '')}" if ep.get("addr") else ""
        head.append(
            f'<text class="hd" x="{x}" y="14" text-anchor="middle">{side}</text>'
            f'<text class="ep" x="{x}" y="27" text-anchor="middle">{esc(addr)}</text>'
            f'<line class="lane" x1="{x}" y1="{TOP - 10}" x2="{x}" y2="{height - 6}"/>'
        )
    head.append('<text class="tm" x="4" y="27">time</text>')
    return "".join(head + out) + "</svg>", omitted


def _ms(value: object) -> str:
    if not isinstance(value, (int, float)):
        return "?"
    return f"{value / 1000:g}s" if value >= 1000 else f"{value:g}ms"


def _kind(seg: dict[str, Any]) -> str:
    flags = str(seg.get("flags") or "")
    if "R" in flags:
        return "r"
    if "S" in flags:
        return "s"
    if "F" in flags:
        return "f"
    return "d" if seg.get("len") else "a"


def scenario_span(case: Case) -> tuple[float | None, float | None]:
    """The case's scenario (start, end) in relative seconds; None for a bound not given."""
    scenario = case.get("scenario") or {}
    start, end = scenario.get("start"), scenario.get("end")
    return (float(start) if isinstance(start, (int, float)) else None,
            float(end) if isinstance(end, (int, float)) else None)


def _scenario_band(case: Case, rows: list[tuple[float, float, float]], width: int, height: int) -> str:
    """A light band behind the rows whose events fall inside the scenario, with a bar in the time column."""
    start, end = scenario_span(case)
    if start is None and end is None:
        return ""
    inside = [(top, bottom) for t, top, bottom in rows
              if (start is None or t >= start) and (end is None or t <= end)]
    if not inside:
        return ""
    y0 = inside[0][0] + 2 if start is not None else TOP - 10
    y1 = inside[-1][1] + 5 if end is not None else height - 6
    label = f"scenario {fmt_t(start) if start is not None else 'start'} → {fmt_t(end) if end is not None else 'end'}"
    return (
        f"<g><title>{esc(label)}</title>"
        f'<rect class="scn" x="{TIME_W - 6}" y="{y0:.0f}" width="{width - TIME_W + 6}" height="{y1 - y0:.0f}"/>'
        f'<rect class="scnbar" x="{TIME_W - 6}" y="{y0:.0f}" width="3" height="{y1 - y0:.0f}"/></g>'
    )


def _arrow(
    seg: dict[str, Any], xs: dict[str, int], sides: list[str], endpoints: dict[str, Any], y: float,
    unexpected: bool = False,
) -> str:
    sender = str(seg.get("sender"))
    if sender not in sides:  # drawn on the line it shares, or the first one if unknown
        sender = next((lane for lane in sides if xs[lane] == xs.get(sender)), sides[0])
    x1, x2 = xs[sender], xs[receiver(sender, sides, endpoints)]
    k = _kind(seg)
    label = segment_label(seg)
    origin = str(seg.get("origin") or "kernel")
    tip = f"{fmt_t(seg['t'])} {sender}: {label} win={seg.get('win', '?')}"
    if seg.get("options"):
        tip += " " + ",".join(map(str, seg["options"]))
    if origin != "kernel":
        tip += f" ({origin} by the harness, not sent by a kernel)"
    if unexpected:
        tip += " — UNEXPECTED (strict wire mode)"
    y1 = y - SLANT
    direction = 1 if x2 > x1 else -1
    line_cls = f"sg k-{k}"
    extra = ""
    if origin != "kernel":
        line_cls += f" crafted o-{esc(origin)}"
        anchor = "start" if direction == 1 else "end"
        extra += (f'<text class="org" x="{x1 + direction * 6}" y="{y1 - 2:.0f}" text-anchor="{anchor}">'
                  f"{esc(origin)}</text>")
    band = ""
    if unexpected:
        line_cls += " unx"
        anchor = "end" if direction == 1 else "start"
        extra += (f'<text class="unx" x="{x2 - direction * 8}" y="{y1 - 2:.0f}" text-anchor="{anchor}">'
                  "unexpected</text>")
        left, right = min(x1, x2), max(x1, x2)
        band = (f'<rect class="unxband" x="{left - 40}" y="{y1 - 13:.0f}" width="{right - left + 80}"'
                f' height="{SLANT + 17}"/>')
    text_cls = f"k-{k} unx" if unexpected else f"k-{k}"
    return (
        f"<g><title>{esc(tip)}</title>{band}"
        f'<text class="tm" x="4" y="{y1 + 3:.0f}">{fmt_t(seg["t"])}</text>'
        f'<line class="{line_cls}" x1="{x1 + direction}" y1="{y1:.0f}" x2="{x2 - direction * 2}" y2="{y:.0f}"/>'
        f'<text class="{text_cls}" x="{(x1 + x2) / 2:.0f}" y="{y1 - 2:.0f}" text-anchor="middle">{esc(label)}</text>'
        f"{extra}</g>"
    )


def _annotation(ev: _Event, xs: dict[str, int], sides: list[str], y: float) -> str:
    item = ev.item
    side = str(item.get("side"))
    x = xs.get(side, xs[sides[0]])
    if ev.kind == "state":
        text = str(item.get("state", "?"))
        if item.get("rqueue"):
            text += f" recv-q={item['rqueue']}"
        timer = item.get("timer")
        if timer and timer != "none":
            expires = item.get("expires_ms")
            text += f" · {timer} {_ms(expires)}"
        if item.get("retrans"):
            text += f" retrans={item['retrans']}"
        cls, mark = "st", f'<circle class="stm" cx="{x}" cy="{y - 4:.0f}" r="3.5"/>'
    else:
        result = item.get("result", "")
        text = f"{item.get('call', '?')}({item.get('args', '')}) = {result}"
        if item.get("errno"):
            text += f" {item['errno']}"
        cls, mark = "sc", f'<rect class="scm" x="{x - 3}" y="{y - 7:.0f}" width="6" height="6"/>'
    if side not in sides:
        text = f"{side}: {text}"
    tip = ""
    if len(text) > MAX_NOTE:
        tip, text = f"<title>{esc(text)}</title>", text[: MAX_NOTE - 1] + "…"
    tx, anchor = (x - 8, "end") if x == xs[sides[0]] else (x + 8, "start")
    return (
        f'<text class="tm" x="4" y="{y:.0f}">{fmt_t(ev.t)}</text>{mark}'
        f'<text class="{cls}" x="{tx}" y="{y:.0f}" text-anchor="{anchor}">{tip}{esc(text)}</text>'
    )


def _zigzag(y: float, x0: float, x1: float) -> str:
    teeth = max(1, int((x1 - x0) / 12))
    step = (x1 - x0) / teeth
    return f"M{x0:.0f} {y:.0f}" + "".join(f"l{step / 2:.1f} {-3 if i % 2 == 0 else 3}" for i in range(teeth * 2))


def _break(y: float, left_x: int, right_x: int, label: str, cls: str = "band") -> str:
    x0, x1 = left_x - 40, right_x + 40
    return (
        f'<rect class="{cls}" x="{x0}" y="{y - 8:.0f}" width="{x1 - x0}" height="16"/>'
        f'<path class="brk" d="{_zigzag(y - 8, x0, x1)}{_zigzag(y + 8, x0, x1)}"/>'
        f'<text class="note" x="{(left_x + right_x) / 2:.0f}" y="{y + 4:.0f}" text-anchor="middle">'
        f"⋯ {esc(label)} ⋯</text>"
    )


def _cut(info: dict[str, Any], t: float, y: float, left_x: int, right_x: int) -> str:
    label = f"{info['hidden']} events not drawn ({fmt_t(info['t_end'] - t)})"
    return _break(y - ROW["cut"] / 2 + 4, left_x, right_x, label, cls="cutband")
