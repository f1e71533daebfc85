"""Synthetic but realistic ``sockconf/results/2`` runs for the reports tests and the benchmark.

:func:`make_run` builds a results document shaped like the plugin's: FIN handshakes ending in TIME_WAIT,
close() with unread data answered by RST, an orphaned FIN_WAIT2 with a measured lifetime, a bulk transfer
with many segments, a RST injected by the harness into TIME_WAIT (an article claim), a skipped case, an
xfailed case and one failed case with ``ss`` output, a failing check and a segment the strict wire mode
flagged as unexpected.  Every case carries the checks it made (in order), the segments it allowed, its
observations and the kernel expectations it applied; the run carries the article's claims, each with the
evidence of the cases deciding it.  Sequence and ack numbers are computed from the conversation, so they
are consistent.  Times carry seeded jitter; fingerprints do not depend on it, as the plugin's must not.
:func:`to_schema1` turns a document into the older ``sockconf/results/1`` shape.  The run records the harness
(commit, fingerprint version 2) and its configuration; every case carries the plugin's structured
``fingerprint_data`` (computed by ``fixtures.fingerprint``).  :func:`set_skipped` makes a case a skipped one and
:func:`selfcheck` gives a ``run.selfcheck`` as the plugin embeds it.

How runs end: :func:`write_evidence` leaves a run directory as a killed run does (``run.json`` with status
running, one ``cases/<case>.json`` per finished case, no ``results.json``); :func:`truncate_case` and
:func:`leave_tmp` damage it like a crash; :func:`ended` turns a document into what the controller writes when
a run is interrupted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA = "sockconf/results/2"
SCHEMA1 = "sockconf/results/1"
RFC9293 = "https://www.rfc-editor.org/rfc/rfc9293"

Case = dict[str, Any]
Step = tuple[float, str, str, int]  # (delay before, sender, flags, payload length)

SS_TEXT = (
    "client netns:\n"
    "State      Recv-Q Send-Q Local Address:Port  Peer Address:Port\n"
    "FIN-WAIT-2 0      0      198.18.0.1:41234     198.18.0.2:8080   timer:(timewait,58sec,0)\n"
    "server netns:\n"
    "State      Recv-Q Send-Q Local Address:Port  Peer Address:Port\n"
    "CLOSE-WAIT 1      0      198.18.0.2:8080      198.18.0.1:41234\n"
)


def conversation(steps: list[Step], jitter: Callable[[], float], start: float = 0.0) -> list[dict[str, Any]]:
    """Segments for ``steps`` with relative seq/ack numbers derived like TCP does."""
    nxt = {"client": 0, "server": 0, "peer": 0}
    other = {"client": "server", "server": "client", "peer": "client"}
    t = start
    segs = []
    for delay, sender, flags, length in steps:
        t += delay + jitter()
        rcv = other[sender]
        seg = {
            "t": round(t, 6),
            "sender": sender,
            "flags": flags,
            "seq": nxt[sender],
            "ack": nxt[rcv] if "A" in flags else 0,
            "len": length,
            "win": 64240 if "S" in flags else 502,
            "options": ["MSS", "SAckOK", "Timestamp", "WScale"] if "S" in flags else ["Timestamp"],
        }
        nxt[sender] += length + ("S" in flags) + ("F" in flags)
        segs.append(seg)
    return segs


HANDSHAKE: list[Step] = [(0.00003, "client", "S", 0), (0.00004, "server", "SA", 0), (0.00003, "client", "A", 0)]


def _state(t: float, side: str, state: str, timer: str = "none", expires_ms: int = 0) -> dict[str, Any]:
    return {"t": round(t, 6), "side": side, "state": state, "timer": timer, "expires_ms": expires_ms, "retrans": 0}


def _call(t: float, side: str, call: str, result: str = "0", errno: str | None = None, args: str = "") -> dict:
    return {"t": round(t, 6), "t_end": round(t + 0.00002, 6), "side": side, "call": call, "args": args,
            "result": result, "errno": errno}


def _check(kind: str, what: str, expected: str, seen: str, ok: bool, t: float, why: str = "",
           **params: Any) -> dict[str, Any]:
    return {"kind": kind, "what": what, "expected": expected, "seen": seen, "ok": ok, "t": round(t, 6),
            "why": why, "params": params}


def _seen(seg: dict[str, Any]) -> str:
    return f"[{seg['flags']}] seq {seg['seq']} ack {seg['ack']} at {seg['t'] * 1000:.3f} ms"


def _no_unexpected(t: float) -> dict[str, Any]:
    return _check("unexpected", "no SYN/FIN/RST/data segment the case did not expect or allow", "none", "none",
                  True, t)


def _expectation(name: str, value: str, key: str = "from 0", commit: str = "") -> dict[str, str]:
    return {"name": name, "value": value, "key": key, "commit": commit}


def _fin_handshake(j: Callable[[], float]) -> dict[str, Any]:
    segs = conversation(
        [*HANDSHAKE, (0.0002, "client", "PA", 100), (0.00004, "server", "A", 0), (0.0003, "client", "FA", 0),
         (0.00004, "server", "A", 0), (0.004, "server", "FA", 0), (0.00003, "client", "A", 0)], j)
    fin, srv_fin = segs[5]["t"], segs[7]["t"]
    return {
        "title": "close() after the peer read everything sends FIN; the closer ends in TIME_WAIT",
        "description": "The client writes 100 bytes, the server reads them, the client closes. The client must "
                       "send FIN (not RST), pass FIN_WAIT1 and FIN_WAIT2, and sit in TIME_WAIT for 60 s.",
        "references": [{"text": "RFC 9293 §3.6", "url": RFC9293 + "#section-3.6"},
                       {"text": "net/ipv4/tcp.c __tcp_close()", "url": None}],
        "kernel_expectations": [_expectation("close() after the peer read everything sends", "FIN")],
        "segments": segs,
        "states": [_state(segs[1]["t"], "server", "ESTABLISHED"), _state(segs[2]["t"], "client", "ESTABLISHED"),
                   _state(fin, "client", "FIN_WAIT1", "retrans", 200), _state(segs[6]["t"], "client", "FIN_WAIT2"),
                   _state(segs[6]["t"], "server", "CLOSE_WAIT"), _state(srv_fin, "server", "LAST_ACK", "retrans", 200),
                   _state(srv_fin + 0.00002, "client", "TIME_WAIT", "timewait", 60000),
                   _state(segs[8]["t"], "server", "CLOSED")],
        "syscalls": [_call(0.0, "client", "connect", args="198.18.0.2:8080"),
                     _call(segs[3]["t"] - 0.00001, "client", "send", "100", args="100 bytes"),
                     _call(segs[3]["t"] + 0.0001, "server", "recv", "100"),
                     _call(fin - 0.00001, "client", "close"), _call(srv_fin - 0.00001, "server", "close")],
        "durations": [{"name": "TIME_WAIT timer at entry", "measured_s": 60.0, "expected_s": 60.0, "low_s": 59.0,
                       "high_s": 60.0, "ok": True, "source": "sock_diag"}],
        "nstat": {"client": {"TcpActiveOpens": 1}, "server": {"TcpPassiveOpens": 1}},
        "checks": [
            _check("state", "client is ESTABLISHED after connect()", "ESTABLISHED", "ESTABLISHED", True,
                   segs[2]["t"] + 0.0001, side="client", state="ESTABLISHED"),
            _check("segment", "client sends [FA] within 0.250 s of close()", "[FA] seq 101", _seen(segs[5]), True,
                   segs[5]["t"], sender="client", flags="FA", deadline=round(fin + 0.25, 6)),
            _check("states_seen", "client passes FIN_WAIT1, FIN_WAIT2 and TIME_WAIT in that order",
                   "FIN_WAIT1 → FIN_WAIT2 → TIME_WAIT", "FIN_WAIT1 → FIN_WAIT2 → TIME_WAIT", True,
                   srv_fin + 0.0001, side="client"),
            _check("duration", "TIME_WAIT timer at entry", "60 s (59.000 … 60.000 s)", "60.000 s", True,
                   srv_fin + 0.0002, source="sock_diag"),
            _check("counter", "nstat client TcpActiveOpens delta", "1", "1", True, segs[8]["t"] + 0.001),
            _no_unexpected(segs[8]["t"] + 0.002),
        ],
        "allowed": [{"sender": "server", "pattern": "[FA] seq 1",
                     "why": "the server closes once it has read everything; its FIN is not what this case checks",
                     "count": 1, "params": {"flags": "FA", "fields": {"seq": 1}}}],
        "scenario": {"start": segs[2]["t"], "end": round(segs[8]["t"] + 0.002, 6)},
    }


def _unread_data(j: Callable[[], float]) -> dict[str, Any]:
    segs = conversation([*HANDSHAKE, (0.0002, "client", "PA", 512), (0.00004, "server", "A", 0),
                         (0.001, "server", "RA", 0)], j)
    rst = segs[5]["t"]
    return {
        "title": "close() with unread data sends RST, not FIN",
        "description": "The server closes its socket while 512 bytes it never read are still queued. Instead of "
                       "the FIN handshake the kernel must reset the connection; the client then sees ECONNRESET.",
        "references": [{"text": "RFC 9293 §3.10.4", "url": RFC9293 + "#section-3.10.4"},
                       {"text": "RFC 2525 §2.17", "url": "https://www.rfc-editor.org/rfc/rfc2525#page-50"},
                       {"text": "net/ipv4/tcp.c __tcp_close()", "url": None}],
        "kernel_expectations": [_expectation("close() with unread data sends", "RST")],
        "segments": segs,
        "states": [_state(segs[2]["t"], "client", "ESTABLISHED"), _state(segs[1]["t"], "server", "ESTABLISHED"),
                   _state(rst, "server", "CLOSED"), _state(rst + 0.00003, "client", "CLOSED")],
        "syscalls": [_call(segs[3]["t"] - 0.00001, "client", "send", "512", args="512 bytes"),
                     _call(rst - 0.00001, "server", "close"),
                     _call(rst + 0.0005, "client", "recv", "-1", "ECONNRESET")],
        "durations": [],
        "nstat": {"client": {}, "server": {"TcpExtTCPAbortOnClose": 1}},
        "checks": [
            _check("segment", "server sends [RA] within 0.250 s of close()", "[RA] seq 1", _seen(segs[5]), True,
                   rst, sender="server", flags="RA", deadline=round(rst + 0.25, 6)),
            _check("absence", "server sends no [F] after close()", "no [F] from server", "none", True, rst + 0.3,
                   sender="server", has="F"),
            _check("value", "client recv() fails with", "ECONNRESET", "ECONNRESET", True, rst + 0.0005),
            _check("counter", "nstat server TcpExtTCPAbortOnClose delta", "1", "1", True, rst + 0.31),
            _no_unexpected(rst + 0.32),
        ],
        "measured": [{"t": round(rst + 0.0005, 6), "name": "client recv() errno", "value": "ECONNRESET"}],
        "observations": {"close_with_unread_data": {"value": "RST", "text": "server sent RST, no FIN, on close()"}},
        "scenario": {"start": segs[2]["t"], "end": round(rst + 0.32, 6)},
    }


def _orphan_fin_wait2(j: Callable[[], float]) -> dict[str, Any]:
    segs = conversation([*HANDSHAKE, (0.0003, "client", "FA", 0), (0.00004, "server", "A", 0)], j)
    fw2 = segs[4]["t"]
    lifetime = 1.031 + j() * 50
    rst = conversation([(fw2 + 1.2, "server", "FA", 0), (0.00003, "client", "R", 0)], j)
    rst[0]["seq"], rst[0]["ack"], rst[1]["seq"] = 1, 2, 2
    return {
        "title": "an orphaned FIN_WAIT2 socket lives tcp_fin_timeout seconds",
        "description": "The client closes and the server never closes its side. The orphaned client socket must "
                       "leave FIN_WAIT2 after net.ipv4.tcp_fin_timeout (set to 1 s here); a FIN arriving later "
                       "is answered with RST.",
        "references": [{"text": "ip-sysctl.rst tcp_fin_timeout",
                        "url": "https://docs.kernel.org/networking/ip-sysctl.html"}],
        "kernel_expectations": [_expectation("orphaned FIN_WAIT2 ends after", "tcp_fin_timeout"),
                                _expectation("a FIN to a gone orphan is answered with", "RST",
                                             "from 5.8 (f0628c524fd1), and 5.4.251+ in 5.4.y", "f0628c524fd1")],
        "segments": segs + rst,
        "states": [_state(segs[2]["t"], "client", "ESTABLISHED"), _state(segs[3]["t"], "client", "FIN_WAIT1"),
                   _state(fw2, "client", "FIN_WAIT2", "timewait", 1000), _state(fw2, "server", "CLOSE_WAIT"),
                   _state(fw2 + lifetime, "client", "CLOSED"), _state(rst[1]["t"], "server", "CLOSED")],
        "syscalls": [_call(segs[3]["t"] - 0.00001, "client", "close"),
                     _call(rst[0]["t"] - 0.00001, "server", "close")],
        "durations": [{"name": "orphan FIN_WAIT2 lifetime", "measured_s": round(lifetime, 4), "expected_s": 1.0,
                       "low_s": 0.99, "high_s": 1.16, "ok": True, "source": "sock_diag"}],
        "sysctls": {"net.ipv4.tcp_fin_timeout": "1"},
        "nstat": {"client": {"TcpExtTCPAbortOnTimeout": 0}, "server": {}},
        "checks": [
            _check("state", "client is FIN_WAIT2 after the server's ACK", "FIN_WAIT2", "FIN_WAIT2", True, fw2 + 0.001),
            _check("duration", "orphan FIN_WAIT2 lifetime", "1 s (0.990 … 1.160 s)", f"{lifetime:.3f} s", True,
                   fw2 + lifetime, source="sock_diag"),
            _check("segment", "client answers the late [FA] with [R]", "[R] seq 2", _seen(rst[1]), True,
                   rst[1]["t"], sender="client", flags="R"),
            _no_unexpected(rst[1]["t"] + 0.001),
        ],
        "scenario": {"start": segs[2]["t"], "end": round(rst[1]["t"] + 0.001, 6)},
    }


def _bulk_close(j: Callable[[], float]) -> dict[str, Any]:
    steps: list[Step] = list(HANDSHAKE)
    for i in range(70):
        steps.append((0.00002, "client", "PA", 1448))
        if i % 2:
            steps.append((0.00001, "server", "A", 0))
    steps += [(0.0002, "client", "FA", 0), (0.00004, "server", "A", 0), (0.002, "server", "FA", 0),
              (0.00003, "client", "A", 0)]
    segs = conversation(steps, j)
    return {
        "title": "close() right after a 100 kB write delivers all data before FIN",
        "description": "The client writes 101,360 bytes and closes immediately. Every byte must be sent and "
                       "acknowledged before the FIN; close() does not discard queued data.",
        "references": [{"text": "RFC 9293 §3.10.4", "url": RFC9293 + "#section-3.10.4"}],
        "segments": segs,
        "states": [_state(segs[2]["t"], "client", "ESTABLISHED"), _state(segs[-4]["t"], "client", "FIN_WAIT1"),
                   _state(segs[-3]["t"], "client", "FIN_WAIT2"), _state(segs[-2]["t"], "client", "TIME_WAIT",
                                                                        "timewait", 60000),
                   _state(segs[-1]["t"], "server", "CLOSED")],
        "kernel_expectations": [_expectation("close() with queued data sends", "all data, then FIN")],
        "checks": [
            _check("value", "bytes the server read", "101360", "101360", True, segs[-3]["t"]),
            _check("segment", "client sends [FA] after its last data byte is acknowledged", "[FA] seq 101361",
                   _seen(segs[-4]), True, segs[-4]["t"], sender="client", flags="FA"),
            _no_unexpected(segs[-1]["t"] + 0.001),
        ],
        "syscalls": [_call(segs[3]["t"] - 0.00001, "client", "send", "101360", args="101360 bytes"),
                     _call(segs[3]["t"], "client", "close")],
        "durations": [],
        "nstat": {},
    }


def _rst_in_timewait(j: Callable[[], float]) -> dict[str, Any]:
    base = _fin_handshake(j)
    segs = base["segments"]
    t = segs[-1]["t"] + 0.5
    segs.append({"t": round(t, 6), "sender": "peer", "flags": "R", "seq": 2, "ack": 0, "len": 0, "win": 0,
                 "options": [], "origin": "injected"})
    base["states"].append(_state(t + 0.00002, "client", "CLOSED"))
    base["checks"] = [*base["checks"][:-1],
                      _check("state", "client TIME_WAIT socket is gone within 0.010 s of the injected [R]", "CLOSED",
                             "CLOSED after 20µs", True, t + 0.00003, side="client", state="CLOSED"),
                      _no_unexpected(t + 0.011)]
    base["observations"] = {"timewait_after_rst": {
        "value": "gone", "text": "TIME_WAIT socket gone 20 µs after the injected RST; tcp_rfc1337=0"}}
    base["scenario"] = {"start": segs[2]["t"], "end": round(t + 0.011, 6)}
    base.update({
        "title": "a RST arriving in TIME_WAIT kills the socket (TIME-WAIT assassination)",
        "description": "A scripted peer sends an in-window RST to the client's TIME_WAIT socket. With "
                       "net.ipv4.tcp_rfc1337=0 (the default) Linux drops the TIME_WAIT socket at once.",
        "references": [{"text": "RFC 1337", "url": "https://www.rfc-editor.org/rfc/rfc1337"}],
        "kernel_expectations": [_expectation("an in-window RST in TIME_WAIT (tcp_rfc1337=0)", "kills the socket")],
    })
    base["endpoints"] = {"peer": {"addr": "198.18.0.2", "port": 8080, "netns_cookie": 4099}}
    return base


def _failed_linger(j: Callable[[], float]) -> dict[str, Any]:
    base = _fin_handshake(j)
    base.update({
        "title": "close() with SO_LINGER {1, 0} resets instead of FIN",
        "description": "With linger on and a zero timeout, close() must abort: RST at once, no TIME_WAIT.",
        "references": [{"text": "socket(7) SO_LINGER", "url": "https://man7.org/linux/man-pages/man7/socket.7.html"}],
        "kernel_expectations": [_expectation("close() with SO_LINGER {1, 0} sends", "RST")],
        "message": "expected: client sends RST on close()\nseen: FIN, then TIME_WAIT (ss below)\n"
                   "why: SO_LINGER was set after connect(); check setsockopt order",
        "ss": SS_TEXT,
    })
    segs = base["segments"]
    fin = segs[5]
    why = "SO_LINGER was set after connect(); check setsockopt order"
    base["checks"] = [
        base["checks"][0],
        _check("segment", "client sends [R] within 0.250 s of close()", "[R] from client", _seen(fin), False,
               fin["t"] + 0.25, why, sender="client", flags="R", deadline=round(fin["t"] + 0.25, 6)),
        _check("unexpected", "no SYN/FIN/RST/data segment the case did not expect or allow", "none",
               f"client {_seen(fin)}", False, fin["t"] + 0.251),
    ]
    base["unexpected"] = [5]
    base["scenario"] = {"start": segs[2]["t"], "end": round(fin["t"] + 0.251, 6)}
    return base


def _claim_contradicted(j: Callable[[], float]) -> dict[str, Any]:
    base = _unread_data(j)
    base.update({
        "title": "shutdown(SHUT_RD) then close() with unread data still sends RST",
        "description": "shutdown(SHUT_RD) does not discard the receive queue, so close() afterwards still resets.",
    })
    base["observations"] = {"close_after_shut_rd": {"value": "RST",
                                                    "text": "RST sent by the server 1 ms after close(); no FIN seen"}}
    return base


TEMPLATES: list[tuple[str, str, Callable[[Callable[[], float]], dict[str, Any]], str]] = [
    ("close", "fin-handshake", _fin_handshake, "passed"),
    ("close", "unread-data", _unread_data, "passed"),
    ("orphan", "fin-wait2-timeout", _orphan_fin_wait2, "passed"),
    ("close", "bulk-then-close", _bulk_close, "passed"),
    ("timewait", "rst-assassination", _rst_in_timewait, "passed"),
    ("linger", "zero-timeout-rst", _failed_linger, "failed"),
    ("shutdown", "shut-rd-unread", _claim_contradicted, "passed"),
    ("timewait", "reuse-port", _fin_handshake, "skipped"),
    ("shutdown", "shut-wr-half-close", _fin_handshake, "xfailed"),
]


CLAIMS: list[dict[str, Any]] = [
    {"id": "timewait-rst-assassination", "template": 4,
     "quote": "A stray RST cuts TIME_WAIT short on Linux unless tcp_rfc1337 is set.",
     "asserts": "with net.ipv4.tcp_rfc1337=0, an in-window RST arriving at a TIME_WAIT socket removes it at once",
     "observation": "timewait_after_rst", "verdict": "confirmed", "note": "", "value": "gone", "decides": True,
     "text": ""},  # no text: the report takes the case's observation text
    {"id": "shut-rd-clean-fin", "template": 6,
     "quote": "Calling shutdown(SHUT_RD) first lets close() send a clean FIN.",
     "asserts": "after shutdown(SHUT_RD), close() with unread data sends FIN rather than RST",
     "observation": "close_after_shut_rd", "verdict": "contradicted", "note": "", "value": "RST", "decides": False,
     "text": "RST sent by the server 1 ms after close(); no FIN seen."},
    {"id": "reuseport-timewait-takeover", "template": 7,
     "quote": "With SO_REUSEPORT a new listener can take over a port still held in TIME_WAIT.",
     "asserts": "bind() and listen() with SO_REUSEPORT succeed on a port whose connection is in TIME_WAIT",
     "observation": "reuseport_bind_in_timewait", "verdict": "undecided",
     "note": "the deciding case was skipped on this kernel", "value": None, "decides": None, "text": ""},
]


def run_claims(cases: list[Case], templates: list[int]) -> list[dict[str, Any]]:
    """The run's claims, each with the evidence of every case built from its template."""
    out = []
    for claim in CLAIMS:
        evidence = [{"case": c["id"], "outcome": c["outcome"], "value": claim["value"], "verdict": claim["decides"],
                     "text": claim["text"]} for c, index in zip(cases, templates, strict=True)
                    if index == claim["template"]]
        out.append({k: claim[k] for k in ("id", "quote", "asserts", "observation", "verdict", "note")}
                   | {"evidence": evidence})
    return out


def fingerprint_text(case: Case) -> str:
    """A canonical behaviour summary like the plugin's: segments without pure ACKs, final states, syscall
    errnos, durations by tolerance, claim verdict.  No times, so jitter never changes it."""
    segs = [f"{s['sender']}>{s['flags']}" + (f"+{s['len']}" if s["len"] else "")
            for s in case["segments"] if not (s["flags"] in ("A", "PA") and s["len"] == 0)]
    final = {row["side"]: row["state"] for row in sorted(case["states"], key=lambda r: r["t"])}
    lines = [f"outcome {case['outcome']}", "segments " + " ".join(segs),
             "final " + " ".join(f"{k}={v}" for k, v in sorted(final.items())),
             "calls " + " ".join(f"{c['side']}.{c['call']}={c['errno'] or 'ok'}" for c in case["syscalls"])]
    lines += [f"duration {d['name']} {d['expected_s'] if d['ok'] else round(d['measured_s'], 2)}"
              for d in case["durations"]]
    if case.get("claim"):
        lines.append(f"claim {case['claim']['verdict']}")
    return "\n".join(lines)


def set_fingerprint(case: Case) -> None:
    """(Re)compute the case's fingerprint after building or changing it, and its ``fingerprint_data`` (the
    plugin's structured fingerprint, version 2, computed by ``fixtures.fingerprint``)."""
    from fixtures.fingerprint import fingerprint_data

    case["fingerprint_text"] = fingerprint_text(case)
    case["fingerprint"] = hashlib.sha256(case["fingerprint_text"].encode()).hexdigest()
    case["fingerprint_data"] = fingerprint_data(case)


def _sysctls(overrides: dict[str, str]) -> dict[str, dict[str, Any]]:
    defaults = {"net.ipv4.tcp_fin_timeout": "60", "net.ipv4.tcp_rfc1337": "0", "net.ipv4.tcp_tw_reuse": "2",
                "net.ipv4.tcp_orphan_retries": "0", "net.ipv4.tcp_max_orphans": "8192",
                "net.ipv4.tcp_rmem": "4096\t131072\t6291456", "net.ipv4.tcp_congestion_control": "cubic",
                "net.ipv4.tcp_ecn": "2", "net.ipv4.tcp_syn_retries": "6", "net.ipv4.tcp_retries2": "15"}
    out = {k: {"value": v, "default": v, "given": False} for k, v in defaults.items()}
    out["net.ipv4.tcp_congestion_control"]["value"] = "bbr"  # set by the host, differs from the default
    for k, v in overrides.items():
        side, _, name = k.rpartition(":")
        entry = out.setdefault(name, {"value": v, "default": v})
        entry["given"] = True
        if side == "server":  # "value" is the client namespace's, "server" the server's when they differ
            entry["server"] = v
        elif side == "client":
            entry.update(value=v, server=entry["default"])
        else:
            entry["value"] = v
    return out


HARNESS = {"commit": "3f1c3bb0d6a54c2e8f0e2b7c9a1d4e5f60718293", "dirty": False, "fingerprint_version": 2}


def configuration(overrides: dict[str, str], profiles: list[str] | None = None) -> dict[str, Any]:
    """``run.configuration`` as the plugin records it for ``overrides`` (flat, ``side:NAME`` for one side)."""
    sides: dict[str, dict[str, str]] = {"client": {}, "server": {}}
    settings = []
    for key, value in overrides.items():
        side, _, name = key.rpartition(":")
        on = (side,) if side else ("client", "server")
        for one in on:
            sides[one][name] = value
        settings.append({"name": name, "value": value, "sides": list(on), "source": "--sysctl", "why": ""})
    return {"profiles": list(profiles or []), "descriptions": {}, "client": sides["client"],
            "server": sides["server"], "settings": settings}


def set_skipped(case: Case, message: str) -> None:
    """Make ``case`` a case that was skipped with ``message`` (no evidence, as the plugin records it)."""
    case.update(outcome="skipped", message=message, checks=[], allowed=[], observations={}, scenario=None,
                segments=[], states=[], syscalls=[], durations=[], nstat={}, pcap=None)
    set_fingerprint(case)


def selfcheck(verdict: str = "pass") -> dict[str, Any]:
    """A ``run.selfcheck`` as the plugin embeds it: the harness's latest self-check (an A/A pair and tunings)."""
    rows = [
        {"tuning": "A/A (no tuning)", "expected": [], "differed": [], "false": [], "missed": [],
         "tuned_run": "passed", "verdict": "ok"},
        {"tuning": "net.ipv4.tcp_fin_timeout=5", "expected": ["orphan/fin-wait2-timeout[ipv4]"],
         "differed": ["orphan/fin-wait2-timeout[ipv4]"], "false": [], "missed": [], "tuned_run": "passed",
         "verdict": "ok"},
        {"tuning": "net.ipv4.tcp_max_tw_buckets=0",
         "expected": ["close/fin-handshake[ipv4]", "close/fin-handshake[ipv6]"],
         "differed": ["close/fin-handshake[ipv4]"] + (["close/unread-data[ipv4]"] if verdict == "fail" else []),
         "false": ["close/unread-data[ipv4]"] if verdict == "fail" else [],
         "missed": ["close/fin-handshake[ipv6]"] if verdict == "fail" else [],
         "tuned_run": "1 failed" if verdict == "fail" else "passed",
         "verdict": "FAIL" if verdict == "fail" else "ok"},
    ]
    if verdict != "fail":
        rows[2]["differed"] = list(rows[2]["expected"])
    return {"when": "2026-11-24T09:30:00+00:00", "verdict": verdict, "rows": rows}


def make_run(n_cases: int | None = None, seed: int = 1, label: str = "default",
             kernel_release: str = "6.18.44-fc-v657", sysctl_overrides: dict[str, str] | None = None,
             profiles: list[str] | None = None, harness: dict[str, Any] | None = None) -> dict:
    """A results document. ``n_cases=None`` gives one case per template (ipv4, plus ipv6 for the first two);
    a number cycles templates, families and a ``size`` parameter until there are that many cases.  The run
    records the harness (``HARNESS`` unless ``harness`` is given) and its configuration (``profiles``, and the
    overrides per side)."""
    rng = random.Random(seed)

    def jitter() -> float:
        return rng.uniform(0, 0.00002)

    combos: list[tuple[int, str, str | None]] = []
    if n_cases is None:
        combos = [(i, "ipv4", None) for i in range(len(TEMPLATES))] + [(0, "ipv6", None), (1, "ipv6", None)]
    else:
        k = 0
        while len(combos) < n_cases:
            size = None if k < len(TEMPLATES) * 2 else str(k // (len(TEMPLATES) * 2))
            combos.append((k // 2 % len(TEMPLATES), ("ipv4", "ipv6")[k % 2], size))
            k += 1
    cases, templates = [], []
    t0 = 1764083760.0
    for index, family, size in combos:
        area, name, build, outcome = TEMPLATES[index]
        params = {"family": family} | ({"size": size} if size else {})
        suffix = family + (f"-{size}" if size else "")
        body = build(jitter)
        case: Case = {
            "id": f"{area}/{name}[{suffix}]",
            "nodeid": f"conformance/test_{area}.py::test_{name.replace('-', '_')}[{suffix}]",
            "area": area, "family": family, "params": params, "markers": [],
            "outcome": outcome, "duration_s": round(0.2 + rng.random() * 0.1, 3),
            "message": None, "references": [], "kernel_expectations": [],
            "checks": [], "allowed": [], "unexpected": [], "measured": [], "observations": {}, "scenario": None,
            "t0": t0,
            "endpoints": {"client": {"addr": "198.18.0.1" if family == "ipv4" else "fd00::1", "port": 41234,
                                     "netns_cookie": 4097},
                          "server": {"addr": "198.18.0.2" if family == "ipv4" else "fd00::2", "port": 8080,
                                     "netns_cookie": 4098}},
            "sysctls": {}, "ss": None,
            "pcap": f"pcaps/{area}_{name}_{suffix}.pcap",
        }
        endpoints = body.pop("endpoints", {})
        case.update(body)
        case["endpoints"].update(endpoints)
        if outcome == "skipped":
            case.update(title="SO_REUSEPORT lets a new listener take over a port held in TIME_WAIT",
                        description="Needs a kernel that keeps TIME_WAIT buckets per reuseport group.",
                        references=[], kernel_expectations=[], checks=[], allowed=[], observations={},
                        scenario=None, segments=[], states=[], syscalls=[], durations=[], nstat={}, pcap=None,
                        message="SO_REUSEPORT TIME_WAIT reuse needs kernel >= 7.0")
        if outcome == "xfailed":
            case.update(title="shutdown(SHUT_WR) half-close keeps receiving until the peer's FIN",
                        message="known: the peer's late data is answered with RST on 6.x, see issue 12")
        set_fingerprint(case)
        cases.append(case)
        templates.append(index)
        t0 += 0.5
    totals = {o: 0 for o in ("passed", "failed", "skipped", "error", "xfailed", "xpassed")}
    for case in cases:
        totals[case["outcome"]] += 1
    overrides = dict(sysctl_overrides or {"net.ipv4.tcp_fin_timeout": "60"})
    return {
        "schema": SCHEMA,
        "run": {
            "id": f"20261125T151600Z-{seed:04x}", "label": label, "started": "2026-11-25T15:16:00+00:00",
            "duration_s": round(sum(c["duration_s"] for c in cases) + 3.2, 1),
            "kernel": {"release": kernel_release, "version": "#1 SMP PREEMPT_DYNAMIC Tue Nov 18 10:00:00 UTC 2026"},
            "machine": {"arch": "x86_64", "hostname": "ci-runner-7", "cpus": 2},
            "python": "3.11.7",
            "packages": {"sockconf": "0.1.0", "pytest": "9.0.3", "pytest-xdist": "3.8.0", "scapy": "2.8.0",
                         "pyroute2": "0.9.7"},
            "command": ["pytest", "conformance", "-n", "auto"],
            "workers": 2, "congestion_control": "bbr",
            "sysctls": _sysctls(overrides),
            "sysctl_overrides": overrides,
            "configuration": configuration(overrides, profiles),
            "harness": dict(harness or HARNESS),
        },
        "totals": totals,
        "claims": run_claims(cases, templates),
        "cases": cases,
    }


SCHEMA2_CASE_FIELDS = ("checks", "allowed", "unexpected", "measured", "observations", "scenario", "kernel_expectations")


def to_schema1(data: dict) -> dict:
    """A copy of ``data`` as a ``sockconf/results/1`` document: no run-level claims (each case deciding one
    carries it instead), one ``kernel_expectation`` string per case, none of schema 2's case fields, no segment
    origins."""
    old = clone(data)
    old["schema"] = SCHEMA1
    for key in ("harness", "configuration", "selfcheck"):  # the plugin wrote these later
        old["run"].pop(key, None)
    cases = {c["id"]: c for c in old["cases"]}
    for case in old["cases"]:
        expectations = case.get("kernel_expectations") or []
        case["kernel_expectation"] = (f"{expectations[0]['key']}: {expectations[0]['value']}"
                                      if expectations else None)
        case["claim"] = None
    for claim in old.pop("claims", None) or []:
        for ev in claim["evidence"]:
            if ev["verdict"] is None:  # schema 1 had no undecided claims
                continue
            case = cases[ev["case"]]
            text = ev["text"] or case.get("observations", {}).get(claim["observation"], {}).get("text", "")
            case["claim"] = {"quote": claim["quote"], "verdict": claim["verdict"], "evidence": text}
    for case in old["cases"]:
        for key in (*SCHEMA2_CASE_FIELDS, "fingerprint_data"):
            case.pop(key, None)
        for seg in case["segments"]:
            seg.pop("origin", None)
    return old


def write_run(run_dir: Path, data: dict, pcaps: bool = True) -> Path:
    """Write ``data`` as ``run_dir/results.json`` (plus empty pcap files) and return ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(data, indent=1))
    if pcaps:
        for case in data["cases"]:
            if case.get("pcap"):
                path = run_dir / case["pcap"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(16))
    return run_dir


def case_by_id(data: dict, case_id: str) -> Case:
    return next(c for c in data["cases"] if c["id"] == case_id)


def clone(data: dict) -> dict:
    return copy.deepcopy(data)


EXTERNAL_ATTRS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "video": "src", "audio": "src",
                  "embed": "src", "object": "data", "image": "href", "use": "href", "input": "src"}


def external_resources(html_text: str) -> list[str]:
    """Everything in ``html_text`` that a browser would fetch: <link> elements, src/data of embedded
    content, href of SVG <image>/<use> pointing outside the page, CSS @import and url() other than #ids.
    Plain <a href> links (RFCs, pcaps) are not fetched and are allowed."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Finder(HTMLParser):
        in_style = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = {k.split(":")[-1]: v or "" for k, v in attrs}
            if tag == "link":
                found.append(f"<link href={values.get('href')!r}>")
            attr = EXTERNAL_ATTRS.get(tag)
            if attr and values.get(attr) and not values[attr].startswith(("#", "data:")):
                found.append(f"<{tag} {attr}={values[attr]!r}>")
            if "style" in values:
                self.check_css(values["style"])
            self.in_style = tag == "style"

        def handle_endtag(self, tag: str) -> None:
            self.in_style = False

        def handle_data(self, data: str) -> None:
            if self.in_style:
                self.check_css(data)

        def check_css(self, css: str) -> None:
            import re

            if "@import" in css:
                found.append("@import")
            found.extend(f"url({u})" for u in re.findall(r"url\(\s*['\"]?([^)'\"]*)", css) if not u.startswith("#"))

    Finder().feed(html_text)
    return found


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def unbalanced_tags(html_text: str) -> list[str]:
    """Problems with element nesting (HTML void elements and self-closed SVG elements excepted)."""
    from html.parser import HTMLParser

    stack: list[str] = []
    problems: list[str] = []

    class Checker(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list) -> None:
            if tag not in VOID:
                stack.append(tag)

        def handle_startendtag(self, tag: str, attrs: list) -> None:
            pass

        def handle_endtag(self, tag: str) -> None:
            if not stack or stack[-1] != tag:
                problems.append(f"</{tag}> closes <{stack[-1] if stack else 'nothing'}> at {self.getpos()}")
                if tag in stack:
                    del stack[len(stack) - 1 - stack[::-1].index(tag):]
            else:
                stack.pop()

    Checker().feed(html_text)
    return problems + [f"<{t}> never closed" for t in stack]


def safe_name(case_id: str) -> str:
    """The file name stem the plugin gives a case's evidence: ``cases/<safe_name>.json``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", case_id).strip("_")


def run_header(data: dict, selected: int | None = None) -> dict:
    """``run.json`` as the controller writes it at the start of a run: the run object, status running."""
    return {**copy.deepcopy(data["run"]), "schema": data["schema"], "status": "running",
            "selected": len(data["cases"]) if selected is None else selected}


def write_evidence(run_dir: Path, data: dict, finished: int | None = None, selected: int | None = None,
                   header: bool = True) -> Path:
    """Leave ``run_dir`` as a run killed after its first ``finished`` cases (default all) does: ``run.json``
    (unless ``header`` is false), ``cases/<case>.json`` per finished case, their pcaps, no results.json."""
    cases = data["cases"][:finished] if finished is not None else data["cases"]
    run_dir.mkdir(parents=True, exist_ok=True)
    if header:
        (run_dir / "run.json").write_text(json.dumps(run_header(data, selected), indent=1))
    (run_dir / "cases").mkdir(exist_ok=True)
    for case in cases:
        (run_dir / "cases" / f"{safe_name(case['id'])}.json").write_text(json.dumps(case, indent=1))
        if case.get("pcap"):
            path = run_dir / case["pcap"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(16))
    return run_dir


def truncate_case(run_dir: Path, case_id: str, lines: int = 3) -> Path:
    """Cut a case file in the middle of its line ``lines``, as a crash during the write does."""
    path = run_dir / "cases" / f"{safe_name(case_id)}.json"
    kept = path.read_text().split("\n")
    path.write_text("\n".join([*kept[: lines - 1], kept[lines - 1][: len(kept[lines - 1]) // 2]]))
    return path


def leave_tmp(run_dir: Path, case: Case, cut: bool = True) -> Path:
    """The ``.tmp`` the plugin writes a case's evidence to before renaming it into place, left behind (cut
    short unless ``cut`` is false); the case's own file is not there."""
    text = json.dumps(case, indent=1)
    path = run_dir / "cases" / f"{safe_name(case['id'])}.tmp"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text[: len(text) // 3] if cut else text)
    (run_dir / "cases" / f"{safe_name(case['id'])}.json").unlink(missing_ok=True)
    return path


def ended(data: dict, finished: int, status: str = "interrupted", signal: str | None = "SIGINT",
          lost: list[dict] | None = None) -> dict:
    """A copy of ``data`` as the controller writes it when the run ends early: the first ``finished``
    cases, ``run.status``, ``selected`` (all of ``data``'s cases), ``finished``, ``signal``, ``lost``."""
    out = clone(data)
    selected = len(out["cases"])
    out["cases"] = out["cases"][:finished]
    out["run"].update(status=status, selected=selected, finished=len(out["cases"]), lost=lost or [])
    if signal:
        out["run"]["signal"] = signal
    out["totals"] = {o: sum(c["outcome"] == o for c in out["cases"]) for o in out["totals"]}
    return out


# --- the closing-state × incoming-segment grid (conformance/test_grid.py, issue 10) ---------------------------------
# Grid cases as the plugin writes them: area "grid", id grid/grid[FAMILY-STATE-PROBE], params {"family", "cell"}
# where "cell" is the dataclass repr of conformance.grid.Cell (json.dumps(default=str)), the deviation note the
# case writes, the scripted peer's segments marked injected (sender "server") and the kernel socket's ("client")
# answer, the state timeline of the watched socket "kernel", and the checks test_grid makes.

# state -> probe id -> "ANSWER>AFTER" (conformance/grid.py's MEASURED, a few columns of it)
GRID_SAMPLE: dict[str, dict[str, str]] = {
    "established": {"syn@left": "CH>=", "ack@right-out": "->=", "ack@left-ack-ancient": "CH>=", "rst@left-1": "->=",
                    "rst@left": "->CLOSED", "rst@inside": "CH>=", "data@left": "A+100>="},
    "closing": {"syn@left": "CH>=", "ack@right-out": "->=", "ack@left-ack-ancient": "CH>=", "rst@left-1": "->CLOSED",
                "rst@left": "->CLOSED", "rst@inside": "CH>=", "data@left": "->="},
    "time-wait": {"syn@left": "A+0>=", "ack@right-out": "A+0>=", "ack@left-ack-ancient": "->=", "rst@left-1": "->=",
                  "rst@left": "->CLOSED", "rst@inside": "->=", "data@left": "A+0>="},
}
# (state, probe id) -> (what the RFCs ask, the deviation in words)
GRID_DEVIATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("established", "ack@right-out"): ("A+0>=", "a zero-length segment at RCV.NXT + RCV.WND is unacceptable; "
                                                "tcp_sequence() accepts it"),
    ("closing", "ack@right-out"): ("A+0>=", "a zero-length segment at RCV.NXT + RCV.WND is unacceptable; "
                                            "tcp_sequence() accepts it"),
    ("closing", "rst@left-1"): ("->=", "an RST at RCV.NXT - 1 is outside the window; tcp_reset_check() accepts "
                                       "seq == rcv_nxt - 1 once the peer's FIN was accepted"),
    ("time-wait", "rst@inside"): ("CH>=", "an in-window RST must be challenged; tcp_timewait_state_process() "
                                          "ignores it"),
    ("time-wait", "rst@left"): ("->=", "RFC 1337 recommends ignoring RSTs in TIME-WAIT; Linux kills the timewait "
                                       "sock"),
    ("time-wait", "ack@left-ack-ancient"): ("CH>=", "a timewait sock never looks at the ACK field"),
}
GRID_KERNEL = {"established": "ESTABLISHED", "fin-wait1": "FIN_WAIT1", "fin-wait2": "FIN_WAIT2",
               "fin-wait2-orphan": "FIN_WAIT2", "closing": "CLOSING", "time-wait": "TIME_WAIT",
               "close-wait": "CLOSE_WAIT", "last-ack": "LAST_ACK", "syn-recv": "SYN_RECV"}
_GRID_FLAGS = {"syn": ("S", 0), "syn-ack": ("SA", 0), "ack": ("A", 0), "fin": ("F", 0), "fin-ack": ("FA", 0),
               "rst": ("R", 0), "rst-ack": ("RA", 0), "data": ("PA", 100), "data-fin": ("FPA", 100)}
# how reach_state brings the kernel socket there after the handshake: (sender, flags); "server" is the peer
_GRID_REACH: dict[str, list[tuple[str, str]]] = {
    "established": [], "fin-wait1": [("client", "FA")], "fin-wait2": [("client", "FA"), ("server", "A")],
    "fin-wait2-orphan": [("client", "FA"), ("server", "A")],
    "closing": [("client", "FA"), ("server", "FA"), ("client", "A")],
    "time-wait": [("client", "FA"), ("server", "A"), ("server", "FA"), ("client", "A")],
    "close-wait": [("server", "FA"), ("client", "A")],
    "last-ack": [("server", "FA"), ("client", "A"), ("client", "FA")],
}
GRID_WINDOW = 65535


def grid_probe_parts(probe: str) -> tuple[str, str, str]:
    """"ack@left-ack-ancient" -> ("ack", "left", "ancient")."""
    segment, _, rest = probe.partition("@")
    position, _, ack = rest.partition("-ack-")
    return segment, position, ack or "ok"


def grid_cell_repr(state: str, probe: str, spec: str) -> str:
    """str() of conformance.grid.Cell for one cell, as the plugin writes params["cell"]."""
    segment, position, ack = grid_probe_parts(probe)
    answer, _, after = spec.partition(">")
    rfc, text = GRID_DEVIATIONS.get((state, probe), ("", ""))
    refs = ("RFC 9293 §3.10.7.4", "net/ipv4/tcp_input.c tcp_rcv_state_process() tcp_validate_incoming()")
    return (f"Cell(state={state!r}, probe=Probe(segment={segment!r}, position={position!r}, ack={ack!r}), "
            f"answer={answer!r}, after={(GRID_KERNEL[state] if after == '=' else after)!r}, refs={refs!r}, "
            f"rfc_answer={rfc!r}, deviation={text!r})")


def grid_case(state: str, probe: str, family: str = "ipv4", seen: str | None = None, t0: float = 1764090000.0,
              seed: int = 1) -> Case:
    """One grid case. ``seen`` ("ANSWER>AFTER", default the cell's expectation) is what the kernel did: when it
    differs from the expectation the case failed on its first check that disagrees, as test_grid's do."""
    rng = random.Random(f"{seed}-{family}-{state}-{probe}")
    expected = GRID_SAMPLE[state][probe]
    seen = seen or expected
    answer, _, after = seen.partition(">")
    exp_answer, _, exp_after = expected.partition(">")
    before = GRID_KERNEL[state]
    after = before if after == "=" else after
    exp_after = before if exp_after == "=" else exp_after
    segment, position, ack_kind = grid_probe_parts(probe)
    flags, length = _GRID_FLAGS[segment]

    t = 0.0
    nxt = {"client": 0, "server": 0}
    segs: list[dict[str, Any]] = []

    def emit(sender: str, fl: str, seq: int | None = None, ack: int | None = None, n: int = 0,
             advance: bool = True) -> dict[str, Any]:
        nonlocal t
        t += 0.0004 + rng.uniform(0, 0.00002)
        other = "server" if sender == "client" else "client"
        seg = {"t": round(t, 6), "sender": sender, "flags": fl, "seq": nxt[sender] if seq is None else seq % 2**32,
               "ack": (nxt[other] if ack is None else ack % 2**32) if "A" in fl else 0, "len": n,
               "win": 502 if sender == "client" else GRID_WINDOW, "options": ["Timestamp"],
               "sport": 41234 if sender == "client" else 8080, "dport": 8080 if sender == "client" else 41234,
               "origin": "kernel" if sender == "client" else "injected"}
        if advance:
            nxt[sender] += n + ("S" in fl) + ("F" in fl)
        segs.append(seg)
        return seg

    states = []
    if state == "syn-recv":
        emit("server", "S")
        emit("client", "SA")
    else:
        emit("client", "S")
        emit("server", "SA")
        emit("client", "A")
    states.append(_state(t, "kernel", "ESTABLISHED" if state != "syn-recv" else "SYN_RECV"))
    for sender, fl in _GRID_REACH.get(state, []):
        emit(sender, fl)
    states.append(_state(t + 0.0001, "kernel", before))
    rcv_nxt, snd_nxt = nxt["server"], nxt["client"]
    seq = {"left-out": rcv_nxt - 1000, "left-1": rcv_nxt - 1, "left": rcv_nxt, "inside": rcv_nxt + GRID_WINDOW // 2,
           "right": rcv_nxt + GRID_WINDOW - 1, "right-out": rcv_nxt + GRID_WINDOW}[position]
    ack = {"ok": snd_nxt, "old": snd_nxt - 1, "ancient": snd_nxt - 2**30, "ahead": snd_nxt + 1000}[ack_kind]
    t += 0.002
    probe_seg = emit("server", flags, seq=seq, ack=ack, n=length, advance=False)
    sent = probe_seg["t"]
    checks: list[dict[str, Any]] = []
    why = f"{state}, {probe}"
    nstat: dict[str, dict[str, int]] = {"client": {"TcpActiveOpens": 1}, "server": {}}
    reply = None
    if answer in ("R", "RA"):
        reply = emit("client", answer, seq=ack if answer == "R" else None, advance=False)
    elif answer.startswith("A") or answer == "CH":
        n = 0 if answer == "CH" else int(answer[2:])
        reply = emit("client", "A", ack=rcv_nxt + n, advance=False)
        if answer == "CH":
            nstat["client"]["TcpExtTCPChallengeACK"] = 1
    failed = False
    if exp_answer == "-":
        for fl, key in (("A", "flags"), ("R", "has"), ("S", "has")):
            found = reply is not None and (fl in reply["flags"] if key == "has" else reply["flags"] == fl)
            checks.append(_check("absence", f"no {'[' + fl + ']' if key == 'flags' else 'a segment with [' + fl + ']'}"
                                 " from client for 0.060 s", "none",
                                 f"[{reply['flags']}] at +{reply['t'] - sent:.4f} s" if found and reply else "none",
                                 not found, sent + 0.065, why, sender="client", **{key: fl}, **{"from": sent},
                                 to=round(sent + 0.06, 6)))
            if found:
                failed = True
                break
    else:
        want = "A" if exp_answer == "CH" or exp_answer.startswith("A+") else exp_answer
        want_ack = rcv_nxt + (int(exp_answer[2:]) if exp_answer.startswith("A+") else 0)
        ok = reply is not None and reply["flags"] == want and (want != "A" or reply["ack"] == want_ack)
        seen_text = (f"[{reply['flags']}] at +{reply['t'] - sent:.4f} s" if ok else "none") if reply is None or ok \
            else f"[{reply['flags']}] {reply['t'] - sent:.3f} s after"
        checks.append(_check("segment", f"client sends [{want}] within 0.250 s", f"[{want}]", seen_text, ok,
                             (reply["t"] if reply and ok else sent + 0.3), why, sender="client", flags=want,
                             deadline=round(sent + 0.25, 6)))
        failed = not ok
    if not failed and exp_answer in ("CH", "A+0") and state not in ("time-wait", "fin-wait2-orphan"):
        got = nstat["client"].get("TcpExtTCPChallengeACK", 0)
        want_n = 1 if exp_answer == "CH" else 0
        checks.append(_check("value", "nstat client TcpExtTCPChallengeACK since the injection", str(want_n),
                             str(got), got == want_n, sent + 0.01, name="nstat client TcpExtTCPChallengeACK"))
        failed = got != want_n
    end = sent + (0.07 if exp_answer == "-" else 0.02)
    if after != before:
        states.append(_state(sent + 0.0003, "kernel", after))
    if not failed:
        ok = after == exp_after
        checks.append(_check("reach", f"kernel reaches {exp_after} within 0.250 s", exp_after,
                             "gone" if after == "CLOSED" else f"{after} retrans=0", ok, end, side="kernel",
                             state=exp_after))
        failed = not ok
    if not failed:
        checks.append(_no_unexpected(end + 0.0001))
    outcome = "failed" if failed else "passed"
    rfc, text = GRID_DEVIATIONS.get((state, probe), ("", ""))
    suffix = f"{family}-{state}-{probe}"
    case: Case = {
        "id": f"grid/grid[{suffix}]", "nodeid": f"conformance/test_grid.py::test_grid[{suffix}]",
        "title": "One segment into one state: the kernel's answer and its state afterwards.",
        "description": "The scripted peer brings a fresh kernel socket into the state and injects the segment.",
        "area": "grid", "family": family, "variant": f"{state}-{probe}",
        "params": {"family": family, "cell": grid_cell_repr(state, probe, expected)},
        "markers": [], "outcome": outcome, "duration_s": round(0.1 + rng.random() * 0.05, 3),
        "message": (f"expected the kernel's answer {expected}; it did {seen}\nwhy: {why}" if failed else None),
        "references": [{"text": "RFC 9293 §3.10.7.4", "url": RFC9293 + "#section-3.10.7.4"}],
        "kernel_expectations": [], "checks": checks, "allowed": [], "unexpected": [], "measured": [],
        "observations": {}, "scenario": {"start": segs[2]["t"], "end": round(end + 0.0001, 6)}, "t0": t0,
        "endpoints": {"kernel": {"addr": "198.18.0.1" if family == "ipv4" else "fd00::1", "port": 41234,
                                 "netns_cookie": 4097}},
        "segments": segs, "states": states,
        "syscalls": [_call(0.0, "kernel", "connect"),
                     _call(sent, "server", "inject", args=f"[{flags}] seq {seq} ack {ack} len {length} ({probe})")],
        "durations": [], "nstat": nstat, "dropped": {}, "sysctls": {},
        "notes": ([f"deviation from the RFCs (they ask for {rfc.split('>')[0]}): {text}"] if text else []),
        "ss": None, "pcap": f"pcaps/grid_grid_{suffix}.pcap",
    }
    set_fingerprint(case)
    return case


def grid_cases(families: tuple[str, ...] = ("ipv4", "ipv6"), seen: dict[str, str] | None = None,
               seed: int = 1) -> list[Case]:
    """Every cell of GRID_SAMPLE per family; ``seen`` maps a case id to what the kernel did instead."""
    seen = seen or {}
    out = []
    t0 = 1764090000.0
    for family in families:
        for state, row in GRID_SAMPLE.items():
            for probe in row:
                cid = f"grid/grid[{family}-{state}-{probe}]"
                out.append(grid_case(state, probe, family, seen.get(cid), t0=t0, seed=seed))
                t0 += 0.2
    return out


def with_grid(data: dict, cases: list[Case]) -> dict:
    """``data`` with ``cases`` added (totals recounted)."""
    out = clone(data)
    out["cases"] = sorted(out["cases"] + copy.deepcopy(cases), key=lambda c: c["id"])
    out["totals"] = {o: sum(c["outcome"] == o for c in out["cases"]) for o in out["totals"]}
    return out
