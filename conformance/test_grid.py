"""The closing-state × incoming-segment grid (conformance/grid.py) against a scripted peer (fixtures/scripted.py).

Each case: a fresh kernel socket brought into one state against the scripted peer, one crafted segment, the
kernel's answer (a challenge ACK, an ACK, an RST or nothing within a real window) and the state afterwards.
"""

from __future__ import annotations

import dataclasses

import pytest

from conformance.grid import GRID, ack_at, describe_answer, keyed_cell, seq_at
from fixtures.kernel_changes import CHALLENGE_ACK_LIMIT
from fixtures.kernel_clock import JiffiesClock, JiffiesUnavailable
from fixtures.references import reference
from fixtures.scripted import reach_state
from fixtures.tolerance import PROMPT_S
from fixtures.versions import REGISTRY, UNTESTABLE

NOTHING_S = 0.06  # the window in which "nothing" is asserted (no ACK, RST or SYN)
CHALLENGE = "TcpExtTCPChallengeACK"


def _param(cell):  # type: ignore[no-untyped-def]
    return pytest.param(cell, id=cell.id, marks=[pytest.mark.reference(*cell.refs)])


def _counted(lab, before: dict[str, int], counter: str, n: int, why: str = "") -> None:  # type: ignore[no-untyped-def]
    """The kernel namespace's `counter` moved by `n` since `before` (a read taken just before the injection)."""
    got = lab.namespaces["client"].nstat().get(counter, 0) - before.get(counter, 0)
    lab.expect_equal(f"nstat client {counter} since the injection", got, n, why)


def configured(lab, cell):  # type: ignore[no-untyped-def]
    """The cell as the configuration in force implies: an RST at rcv_nxt kills a TIME_WAIT unless tcp_rfc1337 is 1
    (tcp_timewait_state_process() then ignores it and the TIME_WAIT stays); the orphaned FIN_WAIT2 row needs a
    timewait sock (tcp_fin_timeout up to TCP_TIMEWAIT_LEN). A cell whose answer changed with the kernel asserts
    the answer keyed to the running kernel's version (conformance/grid.py KEYED)."""
    if cell.keyed:
        cell = keyed_cell(cell, lab.kernel_expectation(REGISTRY[cell.keyed]))
    if cell.state == "fin-wait2-orphan" and lab.orphan_fin_wait2("client").timer != "timewait":
        pytest.skip("not testable with this configuration: tcp_fin_timeout above TCP_TIMEWAIT_LEN keeps the orphaned "
                    "FIN_WAIT2 a full socket, not the timewait sock this row is about")
    kills = cell.state == "time-wait" and cell.probe.segment.startswith("rst") and cell.after == "CLOSED"
    if kills and lab.cfg("net.ipv4.tcp_rfc1337", "client", why="whether an RST kills the TIME_WAIT"):
        return dataclasses.replace(cell, answer="-", after="TIME_WAIT")
    return cell


def _answer(peer, cell, sent_at: float, ack_sent: int | None, before: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    """Assert the kernel's answer to the injected segment (sent at `sent_at`)."""
    lab = peer.lab
    why = f"{cell.state}, {cell.probe.id}: {describe_answer(cell.answer)}"
    if cell.deviation:
        why += f" (Linux deviates: {cell.deviation})"
    nxt = (peer.conn.kernel_snd_nxt - peer.conn.kernel_iss) % 2**32
    if cell.answer == "-":
        peer.expect_no("A", during=NOTHING_S, since=sent_at, why=why)
        peer.expect_no(has="R", during=NOTHING_S, since=sent_at, why=why)
        peer.expect_no(has="S", during=NOTHING_S, since=sent_at, why=why)
    elif cell.answer in ("R", "RA"):
        fields = {"seq": ack_sent} if cell.answer == "R" and ack_sent is not None else {}
        peer.expect(cell.answer, within=PROMPT_S, since=sent_at, learn=False, why=why, **fields)
    else:
        advance = 0 if cell.answer == "CH" else int(cell.answer[2:])
        peer.expect("A", within=PROMPT_S, since=sent_at, learn=False, why=why, seq=nxt,
                    ack=(peer.rel_snd() + advance) % 2**32)
    if cell.answer in ("CH", "A+0") and cell.state not in ("time-wait", "fin-wait2-orphan"):
        _counted(lab, before, CHALLENGE, 1 if cell.answer == "CH" else 0,
                 why="a challenge ACK is counted in TCPChallengeACK (tcp_send_challenge_ack()); a "
                     "duplicate ACK is not")


@pytest.mark.parametrize("cell", [_param(c) for c in GRID])
def test_grid(scripted, cell):
    """One segment into one state: the kernel's answer and its state afterwards.

    The scripted peer brings a fresh kernel socket into the state (reach_state), injects the segment once at the
    position named by the case id (sequence number relative to the kernel's receive window, ACK relative to its
    send sequence) with a fresh timestamp, and asserts the answer Linux gives per conformance/grid.py, where every
    cell names its RFC clause and kernel function and, where Linux departs from RFC 9293 / 5961, says how."""
    peer = scripted
    lab = peer.lab
    cell = configured(lab, cell)
    reach_state(peer, cell.state)
    if cell.deviation:
        lab.note(f"deviation from the RFCs (they ask for {describe_answer(cell.rfc_answer.split('>')[0])}): "
                 f"{cell.deviation}")
    probe = cell.probe
    c = peer.conn
    seq = seq_at(probe.position, peer.rel_snd(), peer.window())
    una = peer.rel_rcv()
    nxt = (c.kernel_snd_nxt - c.kernel_iss) % 2**32
    ack = ack_at(probe.ack, una, nxt) % 2**32 if "A" in probe.flags else None
    before = lab.namespaces["client"].nstat()
    sent = peer.send(probe.flags, seq=seq % 2**32, ack=ack, payload=b"x" * probe.length, note=probe.id)
    _answer(peer, cell, sent, ack, before)
    if cell.after == "CLOSED":
        lab.wait_gone(peer.kernel_name, within=PROMPT_S, why="the segment ends the connection")
    else:
        lab.wait_state(peer.kernel_name, cell.after, within=PROMPT_S)


# the challenge ACK limits -------------------------------------------------------------------------------------

@reference("RFC 5961 §7", "net/ipv4/tcp_input.c tcp_send_challenge_ack() (__tcp_oow_rate_limited())")
def test_challenge_ack_per_socket_rate_limit(scripted):
    """Two in-window RSTs in a row: one challenge ACK; the second is within tcp_invalid_ratelimit (500 ms).

    tcp_send_challenge_ack() first asks __tcp_oow_rate_limited() with the socket's last_oow_ack_time: at most one
    challenge (or out-of-window duplicate) ACK per tcp_invalid_ratelimit per socket, counted in
    TCPACKSkippedChallenge when skipped."""
    peer = scripted
    lab = peer.lab
    limit_ms = lab.cfg("net.ipv4.tcp_invalid_ratelimit", why="the per-socket rate limit of challenge ACKs")
    reach_state(peer, "established")
    inside = peer.rel_snd() + peer.window() // 2
    before = lab.namespaces["client"].nstat()
    first = peer.send("R", seq=inside, note="in-window RST #1")
    peer.expect("A", within=PROMPT_S, since=first, learn=False, why="the first RST is challenged")
    second = peer.send("R", seq=inside + 1, note="in-window RST #2")
    if limit_ms > 0:  # the second RST comes within a jiffy or two of the first
        peer.expect_no("A", during=NOTHING_S, since=second, why=f"within {limit_ms} ms of the first challenge")
        _counted(lab, before, "TcpExtTCPACKSkippedChallenge", 1)
        _counted(lab, before, CHALLENGE, 1)
    else:
        peer.expect("A", within=PROMPT_S, since=second, learn=False, why="tcp_invalid_ratelimit 0: no rate limit")
        _counted(lab, before, "TcpExtTCPACKSkippedChallenge", 0)
        _counted(lab, before, CHALLENGE, 2)
    lab.wait_state(peer.kernel_name, "ESTABLISHED", within=PROMPT_S)


@reference("RFC 5961 §7", "net/ipv4/tcp_input.c tcp_send_challenge_ack()")
def test_challenge_ack_netns_limit(scripted):
    """tcp_challenge_ack_limit=1 in the kernel's namespace (per-socket limit off): three in-window RSTs at once,
    one challenge ACK in that second.

    Since 6.0 (79e3602caa6f) the count is per network namespace and the default INT_MAX means no limit; with
    limit 1 the count for the second is drawn from [1, 1]. The default is read first and compared with the
    kernel-keyed expectation. "That second" is the value of jiffies / HZ (the count is refilled whenever it
    changes): the burst is sent just after it has changed (fixtures/kernel_clock.py), and the capture's timestamps
    must show all three RSTs inside it -- a burst that straddled a change would rightly get two."""
    peer = scripted
    lab = peer.lab
    keyed = lab.kernel_expectation(CHALLENGE_ACK_LIMIT)
    default = lab.cfg("net.ipv4.tcp_challenge_ack_limit", why="the default per-netns challenge ACK limit")
    lab.expect_equal("tcp_challenge_ack_limit default", default, keyed.default_limit)  # type: ignore[attr-defined]
    lab.sysctl("net.ipv4.tcp_challenge_ack_limit", 1, sides=("client",))
    lab.sysctl("net.ipv4.tcp_invalid_ratelimit", 0, sides=("client",))
    reach_state(peer, "established")
    inside = peer.rel_snd() + peer.window() // 2
    before = lab.namespaces["client"].nstat()
    burst = [peer.prepare("R", seq=inside + k, note=f"in-window RST #{k + 1}") for k in range(3)]
    try:
        second = JiffiesClock.measure().fresh_second()
    except JiffiesUnavailable as exc:
        pytest.skip(f"{UNTESTABLE}{exc}")
    sent = peer.send_burst(burst)
    ack = peer.expect("A", within=PROMPT_S, since=sent[0], learn=False, why="one challenge ACK in this second")
    last = lab.wire.expect(peer.side, "R", origin="injected", in_order=False, since=sent[-1], within=PROMPT_S,
                           why="the burst's last RST reached the kernel")
    arrived = [s.ts for s in lab.wire.all(peer.side, has="R", since=sent[0], origin="injected")]
    lab.expect_equal("the burst's 3 RSTs arrived inside one second of the limit's clock", len(arrived) == len(burst)
                     and second.holds(arrived), True, why=second.describe())
    peer.expect_no("A", during=max(0.0, last.ts - ack.ts) + NOTHING_S, since=ack.ts + 1e-6,  # type: ignore[attr-defined]
                   why="the namespace's count for this second is spent")
    _counted(lab, before, CHALLENGE, 1)


# the scripted peer's own kernel -------------------------------------------------------------------------------

CLOSED_PORT = 9  # nothing listens there in the peer's namespace


@reference("RFC 9293 §3.10.7.1 (CLOSED: a SYN gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>)",
           "net/ipv4/tcp_ipv4.c tcp_v4_send_reset()", "net/ipv6/tcp_ipv6.c tcp_v6_send_reset()")
@pytest.mark.parametrize("peer", ["scripted", "none"])
def test_the_scripted_peers_namespace_never_answers_on_its_own(lab, peer):
    """The peer's namespace must not answer for it: with the scripted peer in place (its silence rule), a kernel's
    SYN to a port of the peer's address where nothing listens gets no RST; without it (the control: the same
    namespace, no peer) the peer namespace's kernel answers that SYN with an RST+ACK at once, so the silent window
    is one in which an answer would have been seen."""
    from fixtures.scripted import ScriptedPeer

    if peer == "scripted":
        ScriptedPeer(lab)
    lab.start_connect(port=CLOSED_PORT)
    syn = lab.wire.expect("client", "S", within=PROMPT_S, why="the kernel's connect()")
    if peer == "scripted":
        lab.wire.expect_no("server", has="R", during=NOTHING_S * 5, since=syn.ts,
                           why="the scripted peer's namespace drops its own kernel's TCP output")
    else:
        lab.wire.expect("server", "RA", within=PROMPT_S, since=syn.ts, why="a closed port answers a SYN")
