"""The behaviour fingerprint (fixtures/fingerprint.py): stable under timing noise, sensitive to
behaviour. Pure: hand-made case dicts in the results.json shape."""

from __future__ import annotations

from fixtures.fingerprint import VERSION, fingerprint, fingerprint_data


def seg(t: float, sender: str, flags: str, seq: int = 1, ack: int = 1, length: int = 0, conn: int = 40000,
        origin: str = "kernel") -> dict:
    return {"t": t, "sender": sender, "flags": flags, "seq": seq, "ack": ack, "len": length, "conn": conn,
            "origin": origin}


def case(segments: list[dict], states: list[dict] | None = None, end: float = 5.0, **extra) -> dict:
    return {"outcome": "passed", "segments": segments, "scenario": {"start": 0.1, "end": end},
            "states": states or [], "syscalls": [{"side": "client", "call": "close", "errno": None}],
            "checks": [], "durations": [], **extra}


HANDSHAKE = [seg(0.0, "client", "S", 0, 0), seg(0.001, "server", "SA", 0, 1), seg(0.002, "client", "A")]
CLOSE = [seg(0.2, "client", "FA"), seg(0.2005, "server", "A", 1, 2), seg(0.3, "server", "FA", 1, 2),
         seg(0.3005, "client", "A", 2, 2)]


def test_version_is_recorded():
    assert fingerprint_data(case(HANDSHAKE + CLOSE))["version"] == VERSION == 5


def test_answers_are_kept_and_the_handshake_is_outside_the_scenario():
    tokens = fingerprint_data(case(HANDSHAKE + CLOSE))["segments"]["1"]
    assert tokens == ["c>FA", "s>A(fin)", "s>FA", "c>A(fin)"]


def test_timing_noise_does_not_change_it():
    shifted = [{**s, "t": s["t"] + (0.003 if s["t"] > 0.1 else 0)} for s in HANDSHAKE + CLOSE]
    data_acks = [seg(0.15, "server", "PA", 1, 1, 100), seg(0.16, "client", "A", 1, 101)]
    assert fingerprint(case(HANDSHAKE + CLOSE))[0] == fingerprint(case(shifted))[0]
    a = case(HANDSHAKE + data_acks + CLOSE)
    b = case([*HANDSHAKE, seg(0.15, "server", "PA", 1, 1, 60), seg(0.151, "server", "A", 61, 1, 40), *CLOSE])
    assert fingerprint(a)[0] == fingerprint(b)[0]  # a delayed ACK and how the 100 bytes were split: noise


def test_teardown_after_the_last_check_is_left_out():
    teardown = [seg(6.0, "client", "RA", 2, 2)]
    assert fingerprint(case(HANDSHAKE + CLOSE))[0] == fingerprint(case(HANDSHAKE + CLOSE + teardown))[0]


def test_rst_instead_of_fin_changes_it():
    rst = [seg(0.2, "client", "RA")]
    assert fingerprint(case(HANDSHAKE + CLOSE))[0] != fingerprint(case(HANDSHAKE + rst))[0]


def test_a_re_ack_in_time_wait_and_a_challenge_ack_are_behaviour():
    re_ack = [*CLOSE, seg(0.5, "server", "FA", 1, 2, origin="injected"), seg(0.5001, "client", "A", 2, 2)]
    assert fingerprint_data(case(HANDSHAKE + re_ack))["segments"]["1"][-1] == "c>A(fin again)"
    challenge = [seg(0.5, "server", "R", 50, 0, origin="injected"), seg(0.5001, "client", "A", 1, 1)]
    assert fingerprint_data(case(HANDSHAKE + challenge))["segments"]["1"] == ["c>A(answer)"]
    assert fingerprint(case(HANDSHAKE + CLOSE))[0] != fingerprint(case(HANDSHAKE + re_ack))[0]


def test_a_re_ack_of_resends_from_an_uncounted_series_is_timing():
    """The orphan's FIN, its ACK held back by the case: whether the FIN was resent (and re-ACKed) before the copy of
    the ACK got through is the machine's speed (a loss probe ~200 ms later in an emulated guest). The series is not
    counted (ended by the ACK), and neither is the re-ACK of its resend; one of a series the budget ended is."""
    fin, ack = seg(0.2, "client", "FA"), seg(0.2005, "server", "A", 1, 2)
    copy = seg(0.25, "server", "A", 1, 2, origin="replayed")
    probe, re_ack = seg(0.21, "client", "FA"), seg(0.2105, "server", "A", 1, 2)
    fast = case([*HANDSHAKE, fin, ack, copy], end=1.0)
    slow = case([*HANDSHAKE, fin, ack, probe, re_ack, copy], end=1.0)
    assert fingerprint_data(slow)["segments"]["1"] == ["c>FA", "s>A(fin)"]
    assert fingerprint(fast)[0] == fingerprint(slow)[0]
    dead = [{"t": 0.1, "side": "client", "state": "FIN_WAIT1"}, {"t": 0.9, "side": "client", "state": "CLOSED"}]
    budget = case([*HANDSHAKE, fin, ack, probe, re_ack], dead, end=1.0)
    assert fingerprint_data(budget)["segments"]["1"] == ["c>FA(resent 1)", "s>A(fin)", "s>A(fin again)"]


def test_a_socket_end_is_the_span_its_reads_prove():
    """Two cells of a 6.12 TCG guest's run: the orphan's FIN resent once and re-ACKed. The sampler's reads put its end
    in a span; the row's own time alone made the series look ended by a timer (gone 52 ms after the ACK, or before
    the peer's data that the orphan answered with an RST)."""
    fin, resend = seg(1.114, "client", "FA"), seg(1.3168, "client", "FA")
    acks = [seg(1.1204, "server", "A", 1, 2), seg(1.3176, "server", "A", 1, 2)]
    gone = {"t": 1.3699, "side": "client", "state": "CLOSED"}
    spans = {"t_prev": 1.2973, "t_end": 1.3764}
    by_ack = case([*HANDSHAKE, fin, acks[0], resend, acks[1]], [gone | spans], end=1.7)
    assert fingerprint_data(by_ack)["segments"]["1"][0] == "c>FA"  # it may have ended 0 ms after the re-ACK
    assert fingerprint_data(case([*HANDSHAKE, fin, acks[0], resend, acks[1]], [gone], end=1.7))["segments"]["1"][0] \
        == "c>FA(resent 1)", "a row without its read's stamps: the row's time"
    data = [seg(1.4034, "server", "PA", 1, 2, 8), seg(1.4039, "client", "R", 2, 0)]
    gone_rst = {"t": 1.3995, "side": "client", "state": "CLOSED", "t_prev": 1.3724, "t_end": 1.4095}
    sent = [{"t": 1.4029, "side": "server", "call": "send", "errno": None}]
    by_data = case([*HANDSHAKE, fin, acks[0], resend, acks[1], *data], [gone_rst], end=1.7, syscalls=sent)
    assert fingerprint_data(by_data)["segments"]["1"][0] == "c>FA"  # the send falls inside the end's span


def test_injected_frames_are_not_the_kernels():
    injected = [seg(0.5, "server", "R", 2, 0, origin="injected")]
    assert fingerprint(case(HANDSHAKE + CLOSE))[0] == fingerprint(case(HANDSHAKE + CLOSE + injected))[0]


def test_retransmissions_counted_only_when_a_timer_bounds_them():
    fin = seg(0.2, "client", "FA")
    resends = [seg(0.4, "client", "FA"), seg(0.8, "client", "FA")]
    cut_a = case([*HANDSHAKE, fin, *resends], end=1.0)
    cut_b = case([*HANDSHAKE, fin, *resends, seg(1.6, "client", "FA")], end=2.0)
    assert fingerprint_data(cut_a)["segments"]["1"] == ["c>FA"]
    assert fingerprint(cut_a)[0] == fingerprint(case([*HANDSHAKE, fin], end=1.0))[0]  # no resend fitted yet
    assert fingerprint(cut_a)[0] == fingerprint(cut_b)[0]  # a series cut off by the end of the scenario
    dead = [{"t": 0.1, "side": "client", "state": "FIN_WAIT1"}, {"t": 1.5, "side": "client", "state": "CLOSED"}]
    assert fingerprint_data(case([*HANDSHAKE, fin, *resends], dead, end=2.0))["segments"]["1"] == \
        ["c>FA(resent 2)"]
    acked = case([*HANDSHAKE, fin, *resends, seg(0.81, "server", "A", 1, 2)], end=2.0)
    assert fingerprint_data(acked)["segments"]["1"][0] == "c>FA"  # the ACK's timing decided the count


def test_a_series_counts_only_when_the_socket_ended_by_itself():
    """The socket gone soon after an ACK of the resent FIN (it got through: the case's drop rules decided when), or
    after a harness action (close() with SO_LINGER {1,0}, the peer's data), is not the retransmission budget: not
    counted. A captured ACK that the socket outlives by an RTO was dropped before it: the budget ended it, counted."""
    fin = seg(0.2, "client", "FA")
    resends = [seg(0.4, "client", "FA"), seg(0.8, "client", "FA")]
    gone_at = lambda t: [{"t": 0.1, "side": "client", "state": "FIN_WAIT1"},  # noqa: E731
                         {"t": t, "side": "client", "state": "CLOSED"}]
    by_budget = case([*HANDSHAKE, fin, *resends, seg(0.8003, "server", "A", 1, 2)], gone_at(1.6), end=2.0)
    assert fingerprint_data(by_budget)["segments"]["1"][0] == "c>FA(resent 2)"
    by_ack = case([*HANDSHAKE, fin, *resends, seg(0.8003, "server", "A", 1, 2)], gone_at(0.81), end=2.0)
    assert fingerprint_data(by_ack)["segments"]["1"][0] == "c>FA"
    old_ack = case([*HANDSHAKE, fin, *resends, seg(0.8003, "server", "A", 1, 1)], gone_at(0.81), end=2.0)
    assert fingerprint_data(old_ack)["segments"]["1"][0] == "c>FA(resent 2)", "an ACK below the FIN ends nothing"
    closed = [{"t": 0.9, "side": "client", "call": "close", "errno": None}]
    by_close = case([*HANDSHAKE, fin, *resends], gone_at(0.91), end=2.0, syscalls=closed)
    assert fingerprint_data(by_close)["segments"]["1"][0] == "c>FA"
    peer_sends = case([*HANDSHAKE, fin, *resends], gone_at(0.91), end=2.0,
                      syscalls=[{"t": 0.9, "side": "server", "call": "send", "errno": None}])
    assert fingerprint_data(peer_sends)["segments"]["1"][0] == "c>FA", "the orphan's RST to the peer's data"
    before = case([*HANDSHAKE, fin, *resends], gone_at(1.6), end=2.0,
                  syscalls=[{"t": 0.3, "side": "client", "call": "close", "errno": None}])
    assert fingerprint_data(before)["segments"]["1"][0] == "c>FA(resent 2)", "a syscall before the last resend"


def test_state_path_keeps_held_and_asserted_states_not_blips():
    rows = [{"t": 0.0, "side": "client", "state": "ESTABLISHED"},
            {"t": 0.2, "side": "client", "state": "FIN_WAIT1", "timer": "retrans"},
            {"t": 0.201, "side": "client", "state": "FIN_WAIT2", "timer": "timewait"},
            {"t": 0.4, "side": "client", "state": "TIME_WAIT", "timer": "timewait"}]
    data = fingerprint_data(case(HANDSHAKE + CLOSE, rows))
    assert data["states"]["client"] == []  # FIN_WAIT2 held 0.2 s, the ends cut by the scenario: none asserted
    held = [*rows[:3], {"t": 3.0, "side": "client", "state": "TIME_WAIT", "timer": "timewait"}]
    assert fingerprint_data(case(HANDSHAKE + CLOSE, held))["states"]["client"] == ["FIN_WAIT2/timewait"]
    server_closes = [{"t": 2.9, "side": "server", "call": "close", "errno": None}]
    assert fingerprint_data(case(HANDSHAKE + CLOSE, held, syscalls=server_closes))["states"]["client"] == [], \
        "a state the harness ended (the server's close(), its FIN) lasted as long as the harness took"
    injected = [*HANDSHAKE, *CLOSE, seg(1.5, "server", "A", origin="harness")]
    assert fingerprint_data(case(injected, held))["states"]["client"] == [], "a segment injected during it"
    seen_late = [{"t": 0.25, "side": "client", "call": "setsockopt", "errno": None}]
    assert fingerprint_data(case(HANDSHAKE + CLOSE, held, syscalls=seen_late))["states"]["client"] \
        == ["FIN_WAIT2/timewait"], "an act just after the state was first seen: the sampler may have been late"
    answered_late = [*rows[:3], {"t": 3.0, "t_end": 3.04, "side": "client", "state": "TIME_WAIT", "timer": "timewait"}]
    during_read = [{"t": 3.02, "side": "server", "call": "close", "errno": None}]
    assert fingerprint_data(case(HANDSHAKE + CLOSE, answered_late, syscalls=during_read))["states"]["client"] == [], \
        "an act while the read that saw the state end was out (a 6.1 guest's close() during a 31 ms query)"
    assert fingerprint_data(case(HANDSHAKE + CLOSE, held, syscalls=during_read))["states"]["client"] \
        == ["FIN_WAIT2/timewait"], "the same act after an instantaneous read"
    before = [{"t": 0.1, "side": "client", "call": "close", "errno": None}]
    assert fingerprint_data(case(HANDSHAKE + CLOSE, held, syscalls=before))["states"]["client"] \
        == ["FIN_WAIT2/timewait"], "an action before the state began"
    tw = {"kind": "reach", "expected": "TIME_WAIT", "ok": True, "what": "", "params":
          {"side": "client", "state": "TIME_WAIT"}}
    assert fingerprint_data(case(HANDSHAKE + CLOSE, rows, checks=[tw]))["states"]["client"] == ["TIME_WAIT"]
    closing = [*rows[:2], {"t": 0.201, "side": "client", "state": "CLOSING", "timer": "retrans"}, rows[3]]
    asserted = {"kind": "reach", "expected": "CLOSING", "ok": True, "what": "", "params":
                {"side": "client", "state": "CLOSING"}}
    path = fingerprint_data(case(HANDSHAKE + CLOSE, closing, checks=[asserted]))["states"]["client"]
    assert path == ["CLOSING"]


def test_calls_are_a_set_but_errnos_count():
    calls = [{"side": "server", "call": "recv", "errno": None}, {"side": "client", "call": "close", "errno": None}]
    a = case(HANDSHAKE, syscalls=calls)
    b = case(HANDSHAKE, syscalls=[calls[1], calls[0], calls[0]])
    c = case(HANDSHAKE, syscalls=[calls[1], {"side": "server", "call": "recv", "errno": "ECONNRESET"}])
    assert fingerprint(a)[0] == fingerprint(b)[0] != fingerprint(c)[0]


def test_durations_by_expected_value_inside_the_window_measured_outside():
    def with_duration(measured: float, expected: float) -> dict:
        d = {"name": "life", "measured_s": measured, "expected_s": expected, "low_s": expected * 0.95,
             "high_s": expected * 1.2}
        check = {"kind": "duration", "what": "life", "expected": "", "ok": True, "params": {"x": 1}}
        return case(HANDSHAKE, durations=[d], checks=[check])

    assert fingerprint(with_duration(60.2, 60.0))[0] == fingerprint(with_duration(61.9, 60.0))[0]
    assert fingerprint(with_duration(0.201, 0.2000))[0] == fingerprint(with_duration(0.2005, 0.2040))[0]
    assert fingerprint(with_duration(60.2, 60.0))[0] != fingerprint(with_duration(5.1, 5.0))[0]


def test_a_duration_computed_from_a_measured_rto_is_kept_by_its_make_up():
    """A loss probe expected at 0.4 s on the host and 0.41 s in an emulated guest (2·srtt + rto_min 0.4 s): the same
    behaviour; its make-up, which carries the configured floor, is what the fingerprint keeps."""
    def probe(measured: float, expected: float, basis: str) -> dict:
        d = {"name": "resend", "measured_s": measured, "expected_s": expected, "low_s": expected - 0.01,
             "high_s": expected * 1.2, "basis": basis}
        check = {"kind": "duration", "what": "resend", "expected": "", "ok": True, "params": {"x": 1}}
        return case(HANDSHAKE, durations=[d], checks=[check])

    host = probe(0.402, 0.4001, "2.0×RTO (rto_min 0.2 s)")
    guest = probe(0.414, 0.41, "2.0×RTO (rto_min 0.2 s)")
    assert fingerprint(host)[0] == fingerprint(guest)[0]
    assert "duration resend ~2.0×RTO (rto_min 0.2 s) ok" in fingerprint_data(host)["checks"]
    assert fingerprint(host)[0] != fingerprint(probe(1.0, 1.0, "2.0×RTO (rto_min 0.5 s)"))[0], "a tuned floor"
    assert fingerprint(host)[0] != fingerprint(probe(0.6, 0.6, "3.0×RTO (rto_min 0.2 s)"))[0], "one more backoff"
    outside = fingerprint_data(probe(0.9, 0.41, "2.0×RTO (rto_min 0.2 s)"))["checks"]
    assert "duration resend 0.9s! ok" in outside, "outside its window: the measurement, as for any duration"


def test_a_fin_acknowledged_by_a_fin_or_by_a_pure_ack_reads_the_same():
    pure = case([*HANDSHAKE, seg(0.2, "server", "FA"), seg(0.2005, "client", "A", 1, 2),
                 seg(0.3, "client", "FA", 1, 2), seg(0.3005, "server", "A", 2, 2)])
    riding = case([*HANDSHAKE, seg(0.2, "server", "FA"), seg(0.21, "client", "FA", 1, 2),
                   seg(0.2105, "server", "A", 2, 2)])
    assert fingerprint_data(pure)["segments"] == fingerprint_data(riding)["segments"] == \
        {"1": ["s>FA", "c>A(fin)", "c>FA", "s>A(fin)"]}


def test_window_updates_and_duplicate_acks_between_kernels_are_timing():
    updates = [seg(0.15, "client", "A", 1, 1), seg(0.16, "client", "A", 1, 1), seg(0.17, "client", "A", 1, 1)]
    assert fingerprint(case([*HANDSHAKE, *CLOSE]))[0] == fingerprint(case([*HANDSHAKE, *updates, *CLOSE]))[0]


def test_counter_deltas_are_behaviour_other_values_by_name():
    def with_value(what: str, expected: str) -> dict:
        return case(HANDSHAKE, checks=[{"kind": "value", "what": what, "expected": expected, "ok": True,
                                        "params": {}}])

    assert fingerprint(with_value("nstat client TcpExtTCPLossProbes delta", "1"))[0] != \
        fingerprint(with_value("nstat client TcpExtTCPLossProbes delta", "0"))[0]
    assert fingerprint(with_value("bytes the server read", "65536"))[0] == \
        fingerprint(with_value("bytes the server read", "61440"))[0]
