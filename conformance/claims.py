"""The seed article's claims (../shared/seed/tcp-close.md) as data, registered on import.

Each claim quotes the article (Chinese, then English), says what it asserts in testable terms, and names the
observation that decides it: a key that the catalogue cases listed in `cases` record with
`lab.observe(key, value, text)` before they assert. `decide(value)` is the verdict on one measured value:
True (the article is right), False (it is wrong), None (this value cannot tell). The keys are in `Key`;
each key's comment is its contract: the scenario it is measured in and the shape of its value.

The verdicts of a run are computed from the recorded values by fixtures.claims.verdicts(); both directions of
every decide() are tested in tests/test_claim_verdicts.py.
"""

from __future__ import annotations

from typing import Any

from fixtures.claims import Claim, register
from fixtures.constants import TCP_RTO_MIN_S

RFC_MSL_S = 120.0  # RFC 9293 §3.4.1: the Maximum Segment Lifetime is "arbitrarily defined to be 2 minutes"
ARTICLE_DEFAULT_TIMEOUT_S = 60.0  # the article's "一般默认60s" for FIN_WAIT1 and for FIN_WAIT2
ABOUT = 0.10  # "about X s" in a claim: a measured duration within 10 % of X (timer slack is far smaller)
LINGER_BLOCKED_FRACTION = 0.9  # close() "lingered" if it blocked at least 90 % of the SO_LINGER time
# A segment that leaves within half the minimum retransmission timeout (include/net/tcp.h TCP_RTO_MIN,
# 200 ms) after close() was pushed by close() itself: no loss probe or RTO timer can have fired yet.
PUSHED_AT_ONCE_S = TCP_RTO_MIN_S / 2


class Key:
    """Observation keys: what a case measured, in which scenario, and the shape of the value."""

    # an orphaned FIN_WAIT1 whose FIN is never ACKed (peer blackholed), followed until it ends:
    # its sampled state list, e.g. ["ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    FIN_WAIT1_UNACKED_STATES = "fin_wait1.orphan_unacked.states"
    # the same, measured end to end: {"lifetime_s": from the FIN to the socket's end (None if it outlived the
    # case's watch), "at_defaults": neither tcp_orphan_retries nor tcp_rto_min_us set by the case or --sysctl}
    FIN_WAIT1_LIFETIME_AT_DEFAULTS = "fin_wait1.orphan_lifetime_at_defaults"
    # a socket in FIN_WAIT1 receiving a FIN that does not acknowledge its own FIN: its state list
    FIN_WAIT1_CROSSING_FIN_STATES = "fin_wait1.crossing_fin.states"
    # an orphaned FIN_WAIT2 (close()d, FIN ACKed) at the kernel defaults: {"timeout_s": its timer (sock_diag
    # expiry + time since the ACK of the FIN, or the lifetime end to end; None if no timer was armed),
    # "at_defaults": tcp_fin_timeout not set by the case or --sysctl}
    FIN_WAIT2_TIMEOUT_AT_DEFAULTS = "fin_wait2.orphan_timeout_at_defaults"
    # an orphaned FIN_WAIT2 whose peer never sends its FIN, followed until it ends: its state list
    FIN_WAIT2_UNANSWERED_STATES = "fin_wait2.orphan_unanswered.states"
    # the peer's FIN arriving in FIN_WAIT2: {"states": the receiver's state list,
    # "ack_delay_s": from that FIN to the receiver's ACK of it on the wire, None if no ACK was sent}
    FIN_WAIT2_PEER_FIN = "fin_wait2.peer_fin"
    # how long a TIME_WAIT lasts, s (sock_diag expiry + time since the peer's FIN, or end to end)
    TIME_WAIT_LENGTH = "time_wait.length_s"
    # a late segment arriving in TIME_WAIT: {"late": "FIN" | "RST", "answered": the TIME_WAIT side sent
    # anything in reply, "survived": still TIME_WAIT afterwards, "timer_restarted": its timer was re-armed}
    TIME_WAIT_LATE_SEGMENT = "time_wait.late_segment"
    # the peer's FIN reaching a closer whose socket is already gone (no TIME_WAIT kept): flags of the
    # closer's reply ("R", "RA", "A"), None if nothing was sent
    CLOSED_PEER_FIN_ANSWER = "closed.peer_fin_answer"
    # both sides close, the whole sequence observed: {"active": sides that closed before a FIN reached them,
    # "states": {"client": [...], "server": [...]}} ("client" is the connecting socket, "server" the accepted)
    CLOSE_ROLES = "close.roles"
    # a CLOSE_WAIT whose application neither closes nor shuts down: {"held_s": how long it was watched,
    # "state": its state at the end ("CLOSE_WAIT", or "CLOSED" if it ended by itself), "timer": its timer}
    CLOSE_WAIT_UNCLOSED = "close_wait.unclosed"
    # a LAST_ACK whose FIN is never ACKed, followed until it ends: its state list
    LAST_ACK_UNACKED_STATES = "last_ack.unacked.states"
    # a half-open connection (request sock) when its listener is closed, watched until the request sock is
    # gone: {"rst_seen": an RST went to it before the client sent anything, "request_gone": bool}
    LISTENER_CLOSE_HALF_OPEN = "listener.close_half_open"
    # the timer sock_diag reads on a LISTEN socket with SO_KEEPALIVE set: "none", "keepalive", ...
    LISTENER_KEEPALIVE_TIMER = "listener.keepalive_timer"
    # close() with received, unread data: {"unread_bytes": int, "flags": of the first segment close() sent,
    # "" if it sent nothing}
    CLOSE_UNREAD_DATA = "close.unread_data"
    # close() while data is still queued unsent: {"written_bytes": accepted by send(), "unsent_at_close": bytes
    # still in the send queue when close() was called (sock_diag wqueue), "delivered_bytes": read by the peer,
    # "fin_len": data bytes on the FIN segment, "fin_ends_data": the FIN segment ends where the data ends}
    CLOSE_UNSENT_DATA = "close.unsent_data"
    # close() while Nagle holds a small segment back (an earlier small one unACKed): {"bytes": its size,
    # "delay_s": from close() to its departure on the wire, None if it never left}
    CLOSE_NAGLE_HELD = "close.nagle_held"
    # close() with nothing queued: the FIN segment, {"flags": "FA", "len": 0} ({"flags": "", "len": 0}: no FIN)
    CLOSE_FIN_NOTHING_QUEUED = "close.fin_nothing_queued"
    # close() with SO_LINGER {1,N} while the FIN is never ACKed: {"linger_s": N, "blocked_s": close() duration}
    LINGER_CLOSE_UNACKED = "linger.close_unacked_fin"


# --- reading values ----------------------------------------------------------------------------------------

def _after(states: list[str], state: str) -> str | None:
    """The state that followed `state` the first time it was seen; None if it was not seen or nothing followed."""
    if state not in states:
        return None
    i = states.index(state)
    return states[i + 1] if i + 1 < len(states) else None


def _next_is(states: list[str], state: str, expected: str) -> bool | None:
    following = _after(list(states), state)
    return None if following is None else following == expected


def _about(measured: float, expected: float) -> bool:
    return abs(float(measured) - expected) <= ABOUT * expected


def _path(states: list[str]) -> str:
    return " -> ".join(states) if states else "no state"


def _at_defaults(value: dict[str, Any], measured: str) -> bool | None:
    if not value["at_defaults"] or value[measured] is None:
        return None
    return _about(value[measured], ARTICLE_DEFAULT_TIMEOUT_S)


def _defaults_text(value: dict[str, Any], what: str, measured: str) -> str:
    where = "at the kernel defaults" if value["at_defaults"] else "with a timer sysctl overridden (not the default)"
    got = "could not be measured" if value[measured] is None else f"measured {value[measured]:.1f} s"
    return f"{what} {where} {got} (the article: {ARTICLE_DEFAULT_TIMEOUT_S:.0f} s)"


def _roles_text(value: dict[str, Any], state: str) -> str:
    sides = ", ".join(f"{side} {_path(seen)}" for side, seen in value["states"].items())
    having = [side for side, seen in value["states"].items() if state in seen] or ["no side"]
    return f"active closer(s) {', '.join(value['active']) or 'none'}; {sides}: {state} on {', '.join(having)}"


def _no_active_side_in(value: dict[str, Any], state: str) -> bool | None:
    if not value["active"]:
        return None
    return not any(state in value["states"][side] for side in value["active"])


# --- FIN_WAIT1 ---------------------------------------------------------------------------------------------

register(Claim(
    id="fin-wait1-unacked-goes-to-closed",
    quote=("如果在超时时间内没有收到确认ACK直接进入CLOSED状态"
           " — FIN_WAIT1: if no ACK arrives within the timeout, go straight to CLOSED"),
    asserts="an orphaned FIN_WAIT1 whose FIN is never acknowledged ends by going from FIN_WAIT1 directly to CLOSED",
    observation=Key.FIN_WAIT1_UNACKED_STATES,
    decide=lambda v: _next_is(v, "FIN_WAIT1", "CLOSED"),
    evidence_text=lambda v: f"the orphan whose FIN was never ACKed went {_path(v)}",
    cases=("timers/orphaned-fin-wait1-blackholed-retransmits-until-orphan-retries-time",
           "timers/user-timeout-ends-orphaned-fin-wait1",
           "timers/orphaned-fin-wait1-at-kernel-defaults-lasts-about-104s"),
))

register(Claim(
    id="fin-wait1-default-timeout-60s",
    quote="一般默认60s超时 — FIN_WAIT1 stuck without an ACK: the default timeout is 60 s",
    asserts=(f"at the kernel defaults an orphaned FIN_WAIT1 whose FIN is never acknowledged lives about "
             f"{ARTICLE_DEFAULT_TIMEOUT_S:.0f} s (within {ABOUT:.0%}) from its FIN to its end"),
    observation=Key.FIN_WAIT1_LIFETIME_AT_DEFAULTS,
    decide=lambda v: _at_defaults(v, "lifetime_s"),
    evidence_text=lambda v: _defaults_text(v, "an orphaned FIN_WAIT1's lifetime, FIN never ACKed,", "lifetime_s"),
    cases=("timers/orphaned-fin-wait1-at-kernel-defaults-lasts-about-104s",),
))

register(Claim(
    id="fin-wait1-peer-fin-goes-closing",
    quote=("如果在FIN_WAIT1状态时收到了对端的FIN则进入CLOSING状态"
           " — the peer's FIN received in FIN_WAIT1 leads to CLOSING"),
    asserts="a socket in FIN_WAIT1 that receives the peer's FIN (not acknowledging its own) moves to CLOSING",
    observation=Key.FIN_WAIT1_CROSSING_FIN_STATES,
    decide=lambda v: _next_is(v, "FIN_WAIT1", "CLOSING"),
    evidence_text=lambda v: f"receiving the peer's FIN in FIN_WAIT1, the socket went {_path(v)}",
    cases=("orderings/fin-in-fin-wait1-goes-closing", "orderings/simultaneous-close-crossing-fins-both-closing"),
))

# --- FIN_WAIT2 ---------------------------------------------------------------------------------------------

register(Claim(
    id="fin-wait2-default-timeout-60s",
    quote="超时时间：一般默认是60s — FIN_WAIT2 (waiting for the peer's FIN): the default timeout is 60 s",
    asserts=(f"at the kernel defaults the FIN_WAIT2 that close() leaves (an orphan) times out after about "
             f"{ARTICLE_DEFAULT_TIMEOUT_S:.0f} s (within {ABOUT:.0%}) from the ACK of its FIN"),
    observation=Key.FIN_WAIT2_TIMEOUT_AT_DEFAULTS,
    decide=lambda v: _at_defaults(v, "timeout_s"),
    evidence_text=lambda v: _defaults_text(v, "an orphaned FIN_WAIT2's timeout", "timeout_s"),
    cases=("close_data/close-after-reading-everything-sends-fin",),
))

register(Claim(
    id="fin-wait2-unanswered-goes-to-closed",
    quote=("如果在超时时间内没有收这个FIN则直接进入CLOSED状态"
           " — FIN_WAIT2: without the peer's FIN within the timeout, go straight to CLOSED"),
    asserts="an orphaned FIN_WAIT2 whose peer never sends its FIN ends by going from FIN_WAIT2 directly to CLOSED",
    observation=Key.FIN_WAIT2_UNANSWERED_STATES,
    decide=lambda v: _next_is(v, "FIN_WAIT2", "CLOSED"),
    evidence_text=lambda v: f"the orphaned FIN_WAIT2 that never got the peer's FIN went {_path(v)}",
    cases=("timers/orphaned-fin-wait2-lives-tcp-fin-timeout", "timers/tcp-linger2-overrides-tcp-fin-timeout"),
))

register(Claim(
    id="fin-wait2-peer-fin-goes-time-wait",
    quote="在FIN_WAIT2接受到了对端FIN后进入TIME_WAIT状态 — the peer's FIN in FIN_WAIT2 leads to TIME_WAIT",
    asserts="a socket in FIN_WAIT2 that receives the peer's FIN moves to TIME_WAIT",
    observation=Key.FIN_WAIT2_PEER_FIN,
    decide=lambda v: _next_is(v["states"], "FIN_WAIT2", "TIME_WAIT"),
    evidence_text=lambda v: f"on the peer's FIN in FIN_WAIT2 the socket went {_path(v['states'])}",
    cases=("close/active-close-then-peer-close-ends-in-time-wait", "orderings/active-close-every-state-on-both-sides"),
))

# --- TIME_WAIT ---------------------------------------------------------------------------------------------

def _acked_into_time_wait(v: dict[str, Any]) -> bool | None:
    entered = _next_is(v["states"], "FIN_WAIT2", "TIME_WAIT")
    return None if entered is None else entered and v["ack_delay_s"] is not None


register(Claim(
    id="time-wait-then-last-ack",
    quote=("主动方收到对端的FIN后进入TIME_WAIT状态。然后发送最后一个确认ACK到对端"
           " — the active closer enters TIME_WAIT on the peer's FIN, then sends the last ACK"),
    asserts=("on the peer's FIN the active closer both enters TIME_WAIT and sends an ACK of that FIN (the order "
             "inside the kernel cannot be seen from outside: both happen in the same softirq)"),
    observation=Key.FIN_WAIT2_PEER_FIN,
    decide=_acked_into_time_wait,
    evidence_text=lambda v: (
        f"on the peer's FIN the closer went {_path(v['states'])} and "
        + ("sent no ACK of it" if v["ack_delay_s"] is None
           else f"ACKed it {v['ack_delay_s'] * 1e6:.0f} µs later")),
    cases=("close/active-close-then-peer-close-ends-in-time-wait", "orderings/active-close-every-state-on-both-sides"),
))

register(Claim(
    id="time-wait-lasts-2msl",
    quote=("在TIME_WAIT状态等待2个MSL（2个报文最长存活周期）后进入CLOSED状态"
           " — TIME_WAIT lasts 2 MSL (two maximum segment lifetimes), then CLOSED"),
    asserts=(f"TIME_WAIT lasts about 2 x MSL = {2 * RFC_MSL_S:.0f} s (MSL = {RFC_MSL_S:.0f} s as RFC 9293 "
             f"defines it; Linux has no MSL setting), within {ABOUT:.0%}"),
    observation=Key.TIME_WAIT_LENGTH,
    decide=lambda v: _about(v, 2 * RFC_MSL_S),
    evidence_text=lambda v: f"TIME_WAIT measured {v:.1f} s; 2 x RFC MSL is {2 * RFC_MSL_S:.0f} s",
    cases=("time_wait/time-wait-timer-is-60s-whatever-tcp-fin-timeout", "time_wait/time-wait-lasts-60s-end-to-end"),
))


def _discarded(v: dict[str, Any]) -> bool:
    return not v["answered"] and v["survived"] and not v.get("timer_restarted", False)


def _late_text(v: dict[str, Any]) -> str:
    effects = ["answered" if v["answered"] else "not answered",
               "the TIME_WAIT survived" if v["survived"] else "the TIME_WAIT was destroyed"]
    if v.get("timer_restarted"):
        effects.append("its timer was restarted")
    return f"a late {v['late']} in TIME_WAIT was {', '.join(effects)}"


register(Claim(
    id="time-wait-discards-late-segments",
    quote="在此状态的时候,任何迟到的报文都会被丢弃 — in TIME_WAIT every late segment is discarded",
    asserts=("a late segment (a retransmitted FIN, an in-window RST) arriving in TIME_WAIT gets no reply and "
             "changes nothing: the TIME_WAIT survives and its timer is not restarted"),
    observation=Key.TIME_WAIT_LATE_SEGMENT,
    decide=_discarded,
    evidence_text=_late_text,
    cases=("time_wait/rst-in-time-wait-kills-it-unless-tcp-rfc1337",
           "time_wait/retransmitted-fin-in-time-wait-is-acked-and-restarts-the-timer"),
))


def _rst_answer(flags: str | None) -> bool | None:
    return None if flags is None else "R" in flags


register(Claim(
    id="closed-closer-answers-peer-fin-with-rst",
    quote=("如果已经CLOSED了那么对端将收到RST而不是ACK了"
           " — without TIME_WAIT (already CLOSED), the peer's retransmitted FIN would get an RST instead of an ACK"),
    asserts="a peer FIN reaching a closer whose socket is already gone (no TIME_WAIT kept) is answered with an RST",
    observation=Key.CLOSED_PEER_FIN_ANSWER,
    decide=_rst_answer,
    evidence_text=lambda v: ("the closer without a socket sent nothing in reply to the peer's FIN" if v is None
                             else f"the closer without a socket answered the peer's FIN with [{v}]"),
    cases=("time_wait/max-tw-buckets-zero-keeps-no-time-wait",),
))

register(Claim(
    id="client-passes-time-wait",
    quote=("正常的关闭流程客户端TCP连接都会经过这个状态"
           " — in a normal close the client's connection always passes through TIME_WAIT"),
    asserts="in a normal close (both sides close) the connecting side passes through TIME_WAIT",
    observation=Key.CLOSE_ROLES,
    decide=lambda v: None if "client" not in v["states"] else "TIME_WAIT" in v["states"]["client"],
    evidence_text=lambda v: _roles_text(v, "TIME_WAIT"),
    cases=("close/active-close-then-peer-close-ends-in-time-wait", "orderings/active-close-every-state-on-both-sides",
           "orderings/simultaneous-close-crossing-fins-both-closing"),
))

# --- CLOSE_WAIT and LAST_ACK -------------------------------------------------------------------------------

register(Claim(
    id="close-wait-only-passive",
    quote="只可能在被动方出现 — CLOSE_WAIT can only appear on the passive side",
    asserts="no side that closed before a FIN reached it (an active closer) ever shows CLOSE_WAIT",
    observation=Key.CLOSE_ROLES,
    decide=lambda v: _no_active_side_in(v, "CLOSE_WAIT"),
    evidence_text=lambda v: _roles_text(v, "CLOSE_WAIT"),
    cases=("close/active-close-then-peer-close-ends-in-time-wait", "orderings/active-close-every-state-on-both-sides",
           "orderings/simultaneous-close-crossing-fins-both-closing"),
))


def _close_wait_timeout(v: dict[str, Any]) -> bool | None:
    if v["state"] == "CLOSED":
        return True  # it ended by itself
    if v["state"] == "CLOSE_WAIT" and v["timer"] == "none":
        return False  # no timer is armed: nothing but the application will ever end it
    return None


register(Claim(
    id="close-wait-times-out",
    quote=("如果在超时时间内调用了close,则进入LAST_ACK状态;否则直接进入CLOSED状态"
           " — CLOSE_WAIT: close() within the timeout leads to LAST_ACK, otherwise straight to CLOSED"),
    asserts=("a CLOSE_WAIT whose application never calls close() has a timeout that takes it to CLOSED by itself "
             "(contradicted when it stays CLOSE_WAIT with no timer armed)"),
    observation=Key.CLOSE_WAIT_UNCLOSED,
    decide=_close_wait_timeout,
    evidence_text=lambda v: (f"a CLOSE_WAIT left alone for {v['held_s']:.2f} s was {v['state']} "
                             f"with timer {v['timer']}"),
    cases=("timers/half-closed-connection-has-no-timer-until-close",),
))

register(Claim(
    id="last-ack-only-passive",
    quote="这个状态只可能在被动端出现 — LAST_ACK can only appear on the passive side",
    asserts="no side that closed before a FIN reached it (an active closer) ever shows LAST_ACK",
    observation=Key.CLOSE_ROLES,
    decide=lambda v: _no_active_side_in(v, "LAST_ACK"),
    evidence_text=lambda v: _roles_text(v, "LAST_ACK"),
    cases=("close/active-close-then-peer-close-ends-in-time-wait", "orderings/active-close-every-state-on-both-sides",
           "orderings/simultaneous-close-crossing-fins-both-closing"),
))

register(Claim(
    id="last-ack-unacked-goes-to-closed",
    quote=("如果在超时时间内收到了确认ACK则进入CLOSED状态，否则直接进入CLOSED状态"
           " — LAST_ACK: CLOSED when the ACK comes within the timeout, otherwise straight to CLOSED as well"),
    asserts="a LAST_ACK whose FIN is never acknowledged ends by going from LAST_ACK directly to CLOSED",
    observation=Key.LAST_ACK_UNACKED_STATES,
    decide=lambda v: _next_is(v, "LAST_ACK", "CLOSED"),
    evidence_text=lambda v: f"the LAST_ACK whose FIN was never ACKed went {_path(v)}",
    cases=("timers/last-ack-with-final-ack-lost-retransmits-fin-then-gives-up",),
))

# --- closing a listener ------------------------------------------------------------------------------------


def _half_open_reset(v: dict[str, Any]) -> bool | None:
    if v["rst_seen"]:
        return True
    return False if v["request_gone"] else None  # no RST yet, but the request sock might still send one


register(Claim(
    id="listener-close-resets-half-open",
    quote=("而是会发送RST复位标志去关闭请求"
           " — closing a listener closes each half-open connection by sending an RST, not a FIN"),
    asserts="close() of a listener sends an RST to each half-open connection (SYN received, final ACK missing)",
    observation=Key.LISTENER_CLOSE_HALF_OPEN,
    decide=_half_open_reset,
    evidence_text=lambda v: (
        ("an RST went" if v["rst_seen"] else "nothing went") + " to the half-open connection after the listener's "
        "close()" + ("; its request sock is gone" if v["request_gone"] else "; its request sock was still there")),
    cases=("listener/half-open-request-outlives-listener-close-silently",),
))

register(Claim(
    id="listener-close-removes-keepalive-timer",
    quote="close 首先会移除keepalive定时器 — close() of a listener first removes the keepalive timer",
    asserts="a listening socket with SO_KEEPALIVE has a keepalive timer armed (which close() would remove)",
    observation=Key.LISTENER_KEEPALIVE_TIMER,
    decide=lambda v: {"keepalive": True, "none": False}.get(v),
    evidence_text=lambda v: f"a listener with SO_KEEPALIVE read timer={v} over sock_diag",
    cases=("listener/listener-with-so-keepalive-has-no-timer",),
))

# --- what close() sends ------------------------------------------------------------------------------------


def _unread_rst(v: dict[str, Any]) -> bool | None:
    if v["unread_bytes"] <= 0:
        return None
    return "R" in v["flags"] and "F" not in v["flags"]


register(Claim(
    id="unread-data-close-sends-rst",
    quote=("会向远端发送一个RST非正常复位关闭连接"
           " — close() with received but unread data sends an RST to the peer"),
    asserts="close() with received, unread data sends an RST (and no FIN)",
    observation=Key.CLOSE_UNREAD_DATA,
    decide=_unread_rst,
    evidence_text=lambda v: f"close() with {v['unread_bytes']} unread bytes sent [{v['flags']}] first",
    cases=("close/close-with-unread-data-sends-rst", "close_data/close-with-unread-data-sends-rst"),
))


def _queued(v: dict[str, Any]) -> bool:
    return v["unsent_at_close"] > 0  # otherwise close() found nothing waiting: not the claim's situation


register(Claim(
    id="close-delivers-queued-data",
    quote=("如果有待发送的消息，那么要尽力保证这些消息都发出去的"
           " — with data still waiting to be sent, close() makes sure all of it is sent"),
    asserts="data accepted by send() but still unsent at close() (no SO_LINGER) is all delivered to the peer",
    observation=Key.CLOSE_UNSENT_DATA,
    decide=lambda v: (v["delivered_bytes"] == v["written_bytes"]) if _queued(v) else None,
    evidence_text=lambda v: (f"of {v['written_bytes']} bytes written ({v['unsent_at_close']} still unsent at close()) "
                             f"the peer read {v['delivered_bytes']}"),
    cases=("close_data/close-with-unsent-data-returns-at-once-and-delivers-it",),
))

register(Claim(
    id="fin-on-last-data-segment",
    quote=("会在最后一个报文中加入FIN标志"
           " — with data still waiting to be sent, close() puts the FIN on the last data segment"),
    asserts=("when close() finds data still queued, the FIN leaves on the last data segment, not in a segment "
             "of its own"),
    observation=Key.CLOSE_UNSENT_DATA,
    decide=lambda v: (v["fin_len"] > 0 and bool(v["fin_ends_data"])) if _queued(v) else None,
    evidence_text=lambda v: (
        f"with {v['unsent_at_close']} bytes unsent at close() the FIN came "
        + ("alone, without data" if not v["fin_len"] else f"on a {v['fin_len']}-byte data segment "
           + ("ending the data" if v["fin_ends_data"] else "not at the end of the data"))),
    cases=("close_data/close-with-unsent-data-returns-at-once-and-delivers-it",),
))


def _pushed_at_once(v: dict[str, Any]) -> bool | None:
    return None if v["delay_s"] is None else v["delay_s"] <= PUSHED_AT_ONCE_S


register(Claim(
    id="close-turns-nagle-off",
    quote=("同时，关闭用于减少网络中小报文的angle算法，向连接对端发送消息"
           " — close() also turns off the Nagle algorithm and sends the queued data"),
    asserts=(f"a small segment that Nagle holds back (an earlier small segment unacknowledged) leaves as soon as "
             f"close() is called: within {PUSHED_AT_ONCE_S * 1000:.0f} ms, before any retransmission timer"),
    observation=Key.CLOSE_NAGLE_HELD,
    decide=_pushed_at_once,
    evidence_text=lambda v: (f"the {v['bytes']}-byte segment held by Nagle "
                             + ("never left" if v["delay_s"] is None
                                else f"left {v['delay_s'] * 1000:.1f} ms after close()")),
    cases=("close_data/close-pushes-data-held-by-nagle-at-once",),
))

register(Claim(
    id="bare-fin-has-only-the-fin-flag",
    quote=("如果没有待发送的消息，则构造一个报文，仅含有FIN标志位，发送出去关闭连接"
           " — with nothing left to send, close() sends a segment carrying only the FIN flag"),
    asserts="with nothing queued, close() sends a segment without data whose only flag is FIN",
    observation=Key.CLOSE_FIN_NOTHING_QUEUED,
    decide=lambda v: set(v["flags"]) == {"F"} and v["len"] == 0,
    evidence_text=lambda v: f"close() with nothing queued sent [{v['flags']}] with {v['len']} bytes of data",
    cases=("close_data/close-after-reading-everything-sends-fin",),
))


def _lingered(v: dict[str, Any]) -> bool | None:
    if v["linger_s"] <= 0:
        return None  # {1,0} is the abortive close, another behaviour
    return v["blocked_s"] >= LINGER_BLOCKED_FRACTION * v["linger_s"]


register(Claim(
    id="so-linger-changes-close",
    quote=("关闭的是普通ESTABLISH状态的句柄(设置so_linger)"
           " — the article's (unfinished) SO_LINGER section: close() of an ESTABLISHED socket with"
           " SO_LINGER set behaves differently"),
    asserts=(f"with SO_LINGER {{1,N}} (N > 0) and a FIN that is never acknowledged, close() blocks for the "
             f"linger time (at least {LINGER_BLOCKED_FRACTION:.0%} of N s) instead of returning at once"),
    observation=Key.LINGER_CLOSE_UNACKED,
    decide=_lingered,
    evidence_text=lambda v: f"close() with SO_LINGER {{1,{v['linger_s']}}} blocked {v['blocked_s']:.3f} s",
    cases=("linger/linger-close-against-a-blackholed-peer-blocks-n-seconds",),
))
