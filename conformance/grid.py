"""The closing-state × incoming-segment grid as data (issue 10): what Linux answers to one segment in one state.

One row per (state, segment, position[, ack]): the segment the scripted peer injects into a kernel socket brought
into `state` (fixtures/scripted.py reach_state), the answer the kernel is expected to send, the state it is in
afterwards, the references (RFC clause, kernel function) and, where Linux departs from RFC 9293 / RFC 5961, the
deviation in words. conformance/test_grid.py runs every row once per family on a fresh socket.

Positions of the segment's sequence number, relative to the kernel's receive window [rcv_nxt, rcv_nxt + wnd):
    left-out   rcv_nxt - 1000 (an old duplicate: wholly left of the window)
    left-1     rcv_nxt - 1 (the peer's FIN, once accepted, sits here)
    left       rcv_nxt (the left edge)
    inside     rcv_nxt + wnd / 2
    right      rcv_nxt + wnd - 1 (the last octet in the window)
    right-out  rcv_nxt + wnd (the first octet beyond it)
ACK field: ok (what the kernel has sent and the peer received: snd_una as the peer acknowledged it), old
(snd_una - 1), ancient (snd_una - 2**30: below snd_una - max window), ahead (snd_nxt + 1000: unsent data).

Answers: CH (a challenge ACK: an ACK at snd_nxt/rcv_nxt that TcpExtTCPChallengeACK counts, RFC 5961), A+N (an
ACK that is no challenge, its ack field rcv_nxt + N: +0 a duplicate ACK for an unacceptable segment), R / RA (an
RST with these flags), - (nothing: no ACK, RST or SYN within a real window).
"""

from __future__ import annotations

from dataclasses import dataclass

# what the peer injects: flags and payload length
SEGMENTS: dict[str, tuple[str, int]] = {
    "syn": ("S", 0), "syn-ack": ("SA", 0), "ack": ("A", 0), "fin": ("F", 0), "fin-ack": ("FA", 0),
    "rst": ("R", 0), "rst-ack": ("RA", 0), "data": ("PA", 100), "data-fin": ("FPA", 100),
}
POSITIONS = ("left-out", "left-1", "left", "inside", "right", "right-out")
ACKS = ("ok", "old", "ancient", "ahead")
OLD_GAP = 1000
ANCIENT_GAP = 2**30
AHEAD_GAP = 1000


@dataclass(frozen=True)
class Probe:
    segment: str
    position: str = "left"
    ack: str = "ok"

    @property
    def id(self) -> str:
        return f"{self.segment}@{self.position}" + (f"-ack-{self.ack}" if self.ack != "ok" else "")

    @property
    def flags(self) -> str:
        return SEGMENTS[self.segment][0]

    @property
    def length(self) -> int:
        return SEGMENTS[self.segment][1]


def seq_at(position: str, rcv_nxt: int, wnd: int) -> int:
    """The sequence number of a position, relative to the peer's ISN (rcv_nxt: the kernel's, as relative)."""
    return {"left-out": rcv_nxt - OLD_GAP, "left-1": rcv_nxt - 1, "left": rcv_nxt, "inside": rcv_nxt + wnd // 2,
            "right": rcv_nxt + wnd - 1, "right-out": rcv_nxt + wnd}[position]


def ack_at(ack: str, snd_una: int, snd_nxt: int) -> int:
    """The ACK field (relative to the kernel's ISN) of an ACK variant."""
    return {"ok": snd_una, "old": snd_una - 1, "ancient": snd_una - ANCIENT_GAP, "ahead": snd_nxt + AHEAD_GAP}[ack]


@dataclass(frozen=True)
class Cell:
    """One expected answer of the grid."""

    state: str
    probe: Probe
    answer: str  # CH, A+N, R, RA or - (see MEASURED)
    after: str  # the kernel socket's state afterwards (CLOSED: gone)
    refs: tuple[str, ...]
    rfc_answer: str = ""  # what RFC 9293 / 5961 / 1337 ask for, where Linux differs ("ANSWER>AFTER" as MEASURED)
    deviation: str = ""  # the deviation in words, with the function that makes it
    keyed: str = ""  # the kernel-keyed expectation (fixtures/kernel_changes.py) whose value the case asserts

    @property
    def id(self) -> str:
        return f"{self.state}-{self.probe.id}"


# the probes run in every state (the grid's columns): each segment kind at the positions where RFC 9293, RFC 5961
# and Linux make a difference, within the time budget of the grid (19 probes x 9 states x 2 families)
PROBES: tuple[Probe, ...] = (
    Probe("syn", "left"), Probe("syn", "right-out"), Probe("syn-ack", "left"),
    Probe("ack", "left-out"), Probe("ack", "left"), Probe("ack", "right-out"),
    Probe("ack", "left", "old"), Probe("ack", "left", "ancient"), Probe("ack", "left", "ahead"),
    Probe("fin", "left"), Probe("fin-ack", "left"),
    Probe("rst", "left-out"), Probe("rst", "left-1"), Probe("rst", "left"), Probe("rst", "inside"),
    Probe("rst", "right"), Probe("rst", "right-out"), Probe("rst-ack", "inside"),
    Probe("data", "left"),
)

# What Linux 6.18 answers, measured with the scripted peer (both families alike) and read in the kernel source.
# Per state: probe id -> "ANSWER>AFTER". ANSWER: CH (challenge ACK), A+N (an ACK whose ack field is rcv_nxt + N:
# +0 a duplicate ACK), R / RA (an RST with these flags), - (nothing). AFTER: the state afterwards ("=" unchanged,
# CLOSED gone).
_FULL = {  # a full socket: tcp_rcv_state_process() -> tcp_validate_incoming() (tcp_rcv_established() for ESTABLISHED)
    "syn@left": "CH>=", "syn@right-out": "CH>=", "syn-ack@left": "CH>=",
    "ack@left-out": "A+0>=", "ack@left": "->=", "ack@right-out": "->=",
    "ack@left-ack-ancient": "CH>=", "ack@left-ack-ahead": "CH>=",
    "fin@left": "->=", "fin-ack@left": "A+1>=",
    "rst@left-out": "->=", "rst@left-1": "->=", "rst@left": "->CLOSED", "rst@inside": "CH>=",
    "rst@right-out": "CH>=", "rst-ack@inside": "CH>=",
    "data@left": "A+100>=",
    "ack@left-ack-old": "->=", "rst@right": "CH>=",
}
_AFTER_FIN = {  # the peer's FIN was accepted: CLOSE_WAIT, LAST_ACK, CLOSING
    **_FULL, "fin-ack@left": "->=", "rst@left-1": "->CLOSED", "data@left": "->=",
}
_TIMEWAIT = {  # a timewait sock: tcp_timewait_state_process()
    "syn@left": "A+0>=", "syn@right-out": "A+0>=", "syn-ack@left": "A+0>=",
    "ack@left-out": "A+0>=", "ack@left": "->=", "ack@right-out": "A+0>=",
    "ack@left-ack-ancient": "->=", "ack@left-ack-ahead": "->=",
    "fin@left": "A+0>=", "fin-ack@left": "A+0>=",
    "rst@left-out": "->=", "rst@left-1": "->=", "rst@left": "->CLOSED", "rst@inside": "->=",
    "rst@right-out": "->=", "rst-ack@inside": "->=",
    "data@left": "A+0>=",
    "ack@left-ack-old": "->=", "rst@right": "->=",
}
_ORPHAN_FIN_WAIT2 = {  # a timewait sock in its FIN_WAIT2 substate: tcp_timewait_state_process()
    "syn@left": "RA>CLOSED", "syn@right-out": "A+0>=", "syn-ack@left": "R>CLOSED",
    "ack@left-out": "A+0>=", "ack@left": "->=", "ack@right-out": "->=",
    "ack@left-ack-ancient": "->=", "ack@left-ack-ahead": "->=",
    "fin@left": "->=", "fin-ack@left": "A+1>TIME_WAIT",
    "rst@left-out": "A+0>=", "rst@left-1": "A+0>=", "rst@left": "->CLOSED", "rst@inside": "->CLOSED",
    "rst@right-out": "->CLOSED", "rst-ack@inside": "->CLOSED",
    "data@left": "R>CLOSED",
    "ack@left-ack-old": "->=", "rst@right": "->CLOSED",
}
_SYN_RECV = {  # a request sock: tcp_check_req()
    "syn@left": "RA>CLOSED", "syn@right-out": "A+0>=", "syn-ack@left": "R>CLOSED",
    "ack@left-out": "A+0>=", "ack@left": "->ESTABLISHED", "ack@right-out": "->ESTABLISHED",
    "ack@left-ack-ancient": "R>=", "ack@left-ack-ahead": "R>=",
    "fin@left": "->=", "fin-ack@left": "A+1>CLOSE_WAIT",
    "rst@left-out": "->=", "rst@left-1": "->=", "rst@left": "->CLOSED", "rst@inside": "CH>=",
    "rst@right-out": "CH>=", "rst-ack@inside": "CH>=",
    "data@left": "A+100>ESTABLISHED",
    "ack@left-ack-old": "R>=", "rst@right": "CH>=",
}
MEASURED: dict[str, dict[str, str]] = {
    "established": {**_FULL, "fin-ack@left": "A+1>CLOSE_WAIT"},
    "fin-wait1": {**_FULL, "fin-ack@left": "A+1>CLOSING"},
    "fin-wait2": {**_FULL, "fin-ack@left": "A+1>TIME_WAIT"},
    "fin-wait2-orphan": _ORPHAN_FIN_WAIT2,
    "closing": _AFTER_FIN,
    "time-wait": _TIMEWAIT,
    "close-wait": _AFTER_FIN,
    "last-ack": _AFTER_FIN,
    "syn-recv": _SYN_RECV,
}
STATE_NAMES = {
    "established": "ESTABLISHED", "fin-wait1": "FIN_WAIT1", "fin-wait2": "FIN_WAIT2",
    "fin-wait2-orphan": "FIN_WAIT2", "closing": "CLOSING", "time-wait": "TIME_WAIT", "close-wait": "CLOSE_WAIT",
    "last-ack": "LAST_ACK", "syn-recv": "SYN_RECV",
}
TIMEWAIT_SOCKS = ("time-wait", "fin-wait2-orphan")

# references ------------------------------------------------------------------------------------------------------
IN = "net/ipv4/tcp_input.c"
MINI = "net/ipv4/tcp_minisocks.c"
R9293 = "RFC 9293 §3.10.7.4"


def handler(state: str) -> str:
    """The kernel function that processes a segment in `state`."""
    if state in TIMEWAIT_SOCKS:
        return f"{MINI} tcp_timewait_state_process()"
    if state == "syn-recv":
        return f"{MINI} tcp_check_req()"
    if state == "established":
        return f"{IN} tcp_rcv_established() tcp_validate_incoming()"
    return f"{IN} tcp_rcv_state_process() tcp_validate_incoming()"


def references(state: str, probe: Probe) -> tuple[str, ...]:
    refs = [R9293]
    seg = probe.segment
    if seg in ("syn", "syn-ack"):
        refs.append("RFC 5961 §4.2")
    if seg in ("rst", "rst-ack"):
        refs.append("RFC 5961 §3.2")
        if state == "time-wait":
            refs.append("RFC 1337 §3")
    if probe.ack in ("ancient", "ahead") or seg == "data":
        refs.append("RFC 5961 §5.2")
    refs.append(handler(state))
    if state not in TIMEWAIT_SOCKS and state != "syn-recv":
        if seg in ("rst", "rst-ack") and probe.position == "left-1":
            refs.append(f"{IN} tcp_reset_check()")
        if probe.position in ("left-out", "right-out"):
            refs.append(f"{IN} tcp_sequence()")
        if seg in ("syn", "syn-ack") or (seg.startswith("rst") and probe.position in ("inside", "right", "right-out")) \
                or probe.ack in ("ancient", "ahead"):
            refs.append(f"{IN} tcp_send_challenge_ack()")
        if probe.ack in ("old", "ancient", "ahead"):
            refs.append(f"{IN} tcp_ack()")
        if seg.startswith("rst") and probe.position == "left":
            refs.append(f"{IN} tcp_reset()")
    return tuple(refs)


# where Linux departs from RFC 9293 / RFC 5961 (/ RFC 1337): (state set, probe id) -> (what the RFC asks, in words)
_ALL_FULL = ("established", "fin-wait1", "fin-wait2", "closing", "close-wait", "last-ack")
DEVIATIONS: list[tuple[tuple[str, ...], str, str, str]] = [
    ((*_ALL_FULL, "fin-wait2-orphan", "syn-recv"), "ack@right-out", "A+0>=",
     "a zero-length segment at SEG.SEQ = RCV.NXT + RCV.WND is unacceptable (RFC 9293 §3.10.7.4: RCV.NXT =< SEG.SEQ "
     "< RCV.NXT+RCV.WND) and must be answered with an ACK; Linux accepts it: tcp_sequence() tests "
     "!after(seq, rcv_nxt + window) (tcp_in_window() likewise for timewait and request socks)"),
    (_ALL_FULL, "rst@right-out", "->=",
     "an RST outside the window (SEG.SEQ = RCV.NXT + RCV.WND) must be dropped silently (RFC 5961 §3.2); Linux "
     "finds it in window (tcp_sequence(): !after(seq, rcv_nxt + window)) and sends a challenge ACK"),
    (("syn-recv",), "rst@right-out", "->=",
     "an RST at RCV.NXT + RCV.WND must be dropped silently (RFC 5961 §3.2); tcp_check_req() finds it in window "
     "(tcp_in_window()) and sends a challenge ACK"),
    (("closing", "close-wait", "last-ack"), "rst@left-1", "->=",
     "an RST at RCV.NXT - 1 is outside the window and must be dropped (RFC 5961 §3.2); Linux resets the socket: "
     "tcp_reset_check() accepts seq == rcv_nxt - 1 once the peer's FIN was accepted (peers that send their RST "
     "with the sequence number of their FIN)"),
    (("time-wait",), "rst@inside", "CH>=",
     "an in-window RST not at RCV.NXT must be answered with a challenge ACK (RFC 5961 §3.2); "
     "tcp_timewait_state_process() ignores it silently"),
    (("time-wait",), "rst-ack@inside", "CH>=",
     "an in-window RST not at RCV.NXT must be answered with a challenge ACK (RFC 5961 §3.2); "
     "tcp_timewait_state_process() ignores it silently"),
    (("time-wait",), "rst@right", "CH>=",
     "an in-window RST not at RCV.NXT (here the window's last octet) must be answered with a challenge ACK (RFC 5961 "
     "§3.2); tcp_timewait_state_process() ignores it silently"),
    (("time-wait",), "rst@left", "->=",
     "RFC 1337 §3 recommends that TIME-WAIT ignore RSTs (TIME-WAIT assassination); Linux kills the timewait sock "
     "(tcp_timewait_state_process(), net.ipv4.tcp_rfc1337=0 by default); RFC 9293 §3.10.7.4 itself allows it"),
    (TIMEWAIT_SOCKS, "ack@left-ack-ancient", "CH>=",
     "an ACK below SND.UNA - MAX.SND.WND must be answered with a challenge ACK (RFC 5961 §5.2); a timewait sock "
     "never looks at the ACK field (tcp_timewait_state_process())"),
    (TIMEWAIT_SOCKS, "ack@left-ack-ahead", "A+0>=",
     "an ACK of unsent data must be answered with an ACK (RFC 9293 §3.10.7.4 fifth check; RFC 5961 §5.2); "
     "a timewait sock ignores the ACK field (tcp_timewait_state_process())"),
    (("fin-wait2-orphan",), "rst@left-out", "->=",
     "an RST outside the window must be dropped silently (RFC 5961 §3.2); tcp_timewait_state_process() answers "
     "it with an ACK in the FIN_WAIT2 substate (the out-of-window branch does not test the RST bit)"),
    (("fin-wait2-orphan",), "rst@left-1", "->=",
     "an RST outside the window must be dropped silently (RFC 5961 §3.2); tcp_timewait_state_process() answers "
     "it with an ACK in the FIN_WAIT2 substate"),
    (("fin-wait2-orphan",), "rst@inside", "CH>=",
     "an in-window RST not at RCV.NXT must be answered with a challenge ACK (RFC 5961 §3.2); "
     "tcp_timewait_state_process() kills the orphan at once (FIN_WAIT2 substate: any in-window RST)"),
    (("fin-wait2-orphan",), "rst-ack@inside", "CH>=",
     "an in-window RST not at RCV.NXT must be answered with a challenge ACK (RFC 5961 §3.2); "
     "tcp_timewait_state_process() kills the orphan at once"),
    (("fin-wait2-orphan",), "rst@right", "CH>=",
     "an in-window RST not at RCV.NXT (here the window's last octet) must be answered with a challenge ACK (RFC 5961 "
     "§3.2); tcp_timewait_state_process() kills the orphan at once"),
    (("fin-wait2-orphan",), "rst@right-out", "->=",
     "an RST at RCV.NXT + RCV.WND is outside the window (RFC 5961 §3.2: drop); tcp_in_window() accepts "
     "seq == e_win for a zero-length segment and tcp_timewait_state_process() kills the orphan"),
    (("fin-wait2-orphan", "syn-recv"), "syn@left", "CH>=",
     "a SYN in a synchronized state must be answered with a challenge ACK (RFC 5961 §4.2); Linux sends an RST: "
     "the orphan FIN_WAIT2 is killed and the SYN looked up as a new connection to a closed port "
     "(tcp_timewait_state_process() TCP_TW_SYN), the request sock is dropped (tcp_check_req() embryonic reset)"),
    (("fin-wait2-orphan", "syn-recv"), "syn-ack@left", "CH>=",
     "a SYN in a synchronized state must be answered with a challenge ACK (RFC 5961 §4.2); Linux resets "
     "(tcp_timewait_state_process() / tcp_check_req())"),
]


def deviation(state: str, probe: Probe) -> tuple[str, str]:
    """(what the RFCs ask, the deviation in words) for one cell, or ("", "")."""
    for states, pid, rfc, text in DEVIATIONS:
        if state in states and pid == probe.id:
            return rfc, text
    return "", ""


# Cells whose answer changed with the kernel: (state, probe id) -> the KernelKeyed of fixtures/kernel_changes.py
# (by name) whose value, an "ANSWER>AFTER" as in MEASURED, the case asserts on the running kernel; MEASURED holds
# what this suite's reference kernel (6.18.44) answers. The deviation a keyed value brings, if any, is in
# KEYED_DEVIATIONS.
KEYED: dict[tuple[str, str], str] = {
    ("established", "ack@left-ack-ahead"): "ack_of_unsent_data_in_established",
}
KEYED_DEVIATIONS: dict[tuple[str, str, str], tuple[str, str]] = {
    ("established", "ack@left-ack-ahead", "->="): (
        "CH>=", "an ACK of unsent data must be answered with an ACK (RFC 9293 §3.10.7.4 fifth check; RFC 5961 §5.2); "
                "before 42726ec644cb tcp_ack() drops it silently in ESTABLISHED (SKB_DROP_REASON_TCP_ACK_UNSENT_DATA)"),
}


def _cell(state: str, probe: Probe, measured: str | None = None) -> Cell:
    answer, _, after = (measured or MEASURED[state][probe.id]).partition(">")
    rfc, text = KEYED_DEVIATIONS.get((state, probe.id, measured or ""), deviation(state, probe))
    return Cell(state, probe, answer, STATE_NAMES[state] if after == "=" else after, references(state, probe),
                rfc, text, KEYED.get((state, probe.id), ""))


def keyed_cell(cell: Cell, value: str) -> Cell:
    """The cell with the answer a kernel-keyed expectation gives on the running kernel ("ANSWER>AFTER")."""
    return _cell(cell.state, cell.probe, value)


GRID: tuple[Cell, ...] = tuple(_cell(state, probe) for state in MEASURED for probe in PROBES)


def describe_answer(answer: str) -> str:
    if answer == "CH":
        return "a challenge ACK"
    if answer.startswith("A+"):
        n = int(answer[2:])
        return "a duplicate ACK (ack = rcv_nxt)" if n == 0 else f"an ACK of rcv_nxt + {n}"
    if answer in ("R", "RA"):
        return f"an RST [{answer}]"
    return "nothing"
