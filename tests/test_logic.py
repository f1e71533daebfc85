"""Pure logic of the harness: no namespaces, no root."""

from __future__ import annotations

import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from fixtures.config import ConfigError, Tuning, parse_sysctl, tuning_from
from fixtures.references import reference_url
from fixtures.tolerance import PROMPT_S, bucket, chain_window, timer_window
from fixtures.wire import Wire, WireExpectationError, flag_string, normalize
from netns.addresses import IPV4, IPV6, check_allowed
from netns.capture import Frame

# Explicit MACs: scapy would otherwise resolve them through the host's routes and neighbour tables (and may
# send ARP / neighbour solicitations from the host namespace to do it).
MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"


class FakeCapture:
    def __init__(self, frames: list[Frame]) -> None:
        self._frames = frames

    def frames(self) -> list[Frame]:
        return list(self._frames)


def frame(ts: float, outgoing: bool, flags: str, seq: int, ack: int = 0, payload: bytes = b"",
          v6: bool = False) -> Frame:
    fam = IPV6 if v6 else IPV4
    src, dst = (fam.client, fam.server) if outgoing else (fam.server, fam.client)
    ip = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
    sport, dport = (40000, 8080) if outgoing else (8080, 40000)
    pkt = Ether(src=MAC_A, dst=MAC_B) / ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack) / payload
    return Frame(ts, outgoing, bytes(pkt))


def handshake_then(t0: float, *extra: Frame, v6: bool = False) -> list[Frame]:
    return [frame(t0, True, "S", 1000, v6=v6), frame(t0 + 0.001, False, "SA", 5000, 1001, v6=v6),
            frame(t0 + 0.002, True, "A", 1001, 5001, v6=v6), *extra]


# tolerance ----------------------------------------------------------------------------------------

def test_timer_window_accepts_late_timer_and_rejects_double():
    w = timer_window(1.0)
    assert w.contains(1.0) and w.contains(1.031) and w.contains(1.12)
    assert not w.contains(2.0) and not w.contains(0.9)


def test_window_grows_with_the_timeout_by_wheel_slack():
    assert timer_window(10.0).high_s - 10.0 > timer_window(1.0).high_s - 1.0


def test_chain_window_allows_per_timer_jitter():
    assert chain_window(3.0, 4).high_s > timer_window(3.0).high_s


def test_bucket_hides_noise_inside_window_but_not_outside():
    w = timer_window(1.0)
    assert bucket(1.01, 1.01, w) == bucket(1.05, 1.05, w) == "~1s"
    assert bucket(2.0, 2.0, w) != bucket(1.01, 1.01, w)


def test_bucket_takes_a_span_that_meets_the_window_as_expected_and_names_the_nearest_end_otherwise():
    w = timer_window(1.0)
    assert bucket(0.9, 1.05, w) == "~1s"  # a read before the window saw the old state, one inside the new
    assert bucket(1.3, 1.9, w) == "1.3s!"  # the old state was still seen at 1.3 s: at least that late
    assert bucket(0.2, 0.4, w) == "0.4s!"  # the new state was answered by 0.4 s: at least that early


# references ----------------------------------------------------------------------------------------

def test_reference_urls():
    assert reference_url("RFC 9293 §3.10.4") == "https://www.rfc-editor.org/rfc/rfc9293#section-3.10.4"
    assert reference_url("RFC 1337") == "https://www.rfc-editor.org/rfc/rfc1337"
    assert reference_url("net/ipv4/tcp.c __tcp_close()").endswith("/net/ipv4/tcp.c")
    assert reference_url("something else") is None


# sysctl parsing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["tcp_fin_timeout", "net.ipv4.tcp_fin_timeout=", "=5", "kernel.pid_max=5",
                                 "peer:net.ipv4.tcp_fin_timeout=5"])
def test_bad_sysctl_syntax_is_a_usage_error(bad):
    with pytest.raises(ConfigError):
        parse_sysctl(bad)


def test_sysctl_for_both_sides_or_one():
    tuning = Tuning(settings=[parse_sysctl("net.ipv4.tcp_fin_timeout=5"),
                              parse_sysctl("server:net.ipv4.tcp_rfc1337=1"),
                              parse_sysctl("client:net.ipv4.tcp_fin_timeout=7")])
    assert tuning.side("client") == {"net.ipv4.tcp_fin_timeout": "7"}
    assert tuning.side("server") == {"net.ipv4.tcp_fin_timeout": "5", "net.ipv4.tcp_rfc1337": "1"}
    assert tuning.flat() == {"client:net.ipv4.tcp_fin_timeout": "7", "server:net.ipv4.tcp_fin_timeout": "5",
                             "server:net.ipv4.tcp_rfc1337": "1"}


def test_profiles_then_sysctls_override(tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text('description = "x"\n[sysctls]\n"net.ipv4.tcp_fin_timeout" = { value = 5, why = "w" }\n'
                       '[server.sysctls]\n"net.ipv4.tcp_abort_on_overflow" = 1\n')
    tuning = tuning_from([str(profile)], ["net.ipv4.tcp_fin_timeout=9"])
    assert tuning.profiles == ["p"] and tuning.descriptions == {"p": "x"}
    assert tuning.side("client") == {"net.ipv4.tcp_fin_timeout": "9"}
    assert tuning.side("server") == {"net.ipv4.tcp_fin_timeout": "9", "net.ipv4.tcp_abort_on_overflow": "1"}
    assert tuning.settings[0].why == "w"


@pytest.mark.parametrize(("text", "message"), [
    ("[sysctls\n", "not valid TOML"),
    ('[sysctls]\n"net.ipv4.tcp_fin_timeout" = { why = "w" }\n', "needs a value"),
    ('[sysctls]\n"kernel.pid_max" = 5\n', "only network sysctls"),
    ('[other]\n"net.ipv4.tcp_fin_timeout" = 5\n', "unknown keys"),
])
def test_bad_profile_is_one_line(tmp_path, text, message):
    profile = tmp_path / "bad.toml"
    profile.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        tuning_from([str(profile)], [])
    assert "\n" not in str(err.value)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"known profiles: .*no-time-wait"):
        tuning_from(["no-such-profile"], [])


def test_shipped_profiles_parse():
    from fixtures.config import available_profiles

    for name in available_profiles():
        tuning_from([name], [])


# address plan ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("addr", ["10.0.0.1", "172.16.0.1", "192.168.1.1", "fd00::1", "8.8.8.8", "::1"])
def test_addresses_outside_the_plan_are_refused(addr):
    with pytest.raises(ValueError):
        check_allowed(addr)


def test_plan_addresses_are_benchmarking_and_documentation_ranges():
    for fam in (IPV4, IPV6):
        check_allowed(fam.client)
        check_allowed(fam.server)


# wire -----------------------------------------------------------------------------------------------

def test_flag_letters_round_trip():
    assert flag_string(0x11) == "FA"
    assert normalize("AR") == "RA"
    with pytest.raises(ValueError):
        normalize("X")


@pytest.mark.parametrize("v6", [False, True])
def test_dissection_relative_numbers_and_direction(v6):
    t0 = time.time()
    cap = FakeCapture(handshake_then(t0, frame(t0 + 0.01, True, "FA", 1001, 5001, v6=v6),
                                     frame(t0 + 0.02, False, "PA", 5001, 1002, b"hello", v6=v6), v6=v6))
    segs = Wire(cap).segments()
    assert [(s.sender, s.flags) for s in segs] == [
        ("client", "S"), ("server", "SA"), ("client", "A"), ("client", "FA"), ("server", "PA")]
    assert (segs[3].seq, segs[3].ack) == (1, 1)
    assert (segs[4].seq, segs[4].ack, segs[4].length) == (1, 2, 5)


def test_expect_matches_exact_flags_ignoring_psh_and_moves_cursor():
    t0 = time.time()
    cap = FakeCapture(handshake_then(t0, frame(t0 + 0.01, False, "PA", 5001, 1001, b"x"),
                                     frame(t0 + 0.02, True, "RA", 1001, 5002)))
    checks = []
    wire = Wire(cap, record=checks.append)
    data = wire.expect("server", "A", within=1.0, since=t0)  # the SYN-ACK does not match "A"; the data does
    rst = wire.expect("client", "RA", within=1.0, since=t0)
    assert data.index == 3 and rst.index == 4
    assert [c.ok for c in checks] == [True, True] and checks[1].expected == "[RA]"
    with pytest.raises(WireExpectationError):  # the cursor is past the RST: nothing more to match
        wire.expect("client", "RA", within=0.0, since=t0)


def test_segments_that_race_are_expected_out_of_order():
    """Both sides resend in the same tick, the server's first: expected client first, the server's is behind the
    cursor (a failure); with in_order=False it is found, and the cursor stays where it was."""
    t0 = time.time() - 1
    wire = Wire(FakeCapture(handshake_then(t0, frame(t0 + 0.0100, False, "FA", 5001, 1002),
                                           frame(t0 + 0.0101, True, "FA", 1001, 5002))))
    wire.expect("client", "FA", within=1.0, since=t0)
    with pytest.raises(WireExpectationError):
        wire.expect("server", "FA", within=1.0, since=t0)
    wire = Wire(FakeCapture(handshake_then(t0, frame(t0 + 0.0100, False, "FA", 5001, 1002),
                                           frame(t0 + 0.0101, True, "FA", 1001, 5002))))
    client = wire.expect("client", "FA", within=1.0, since=t0, in_order=False)
    server = wire.expect("server", "FA", within=1.0, since=t0, in_order=False)
    assert server.ts < client.ts
    assert wire.expect("server", "FA", within=1.0, since=t0).ts == server.ts  # the cursor did not move


def test_expect_fails_with_wire_in_message_when_absent():
    t0 = time.time() - 1
    wire = Wire(FakeCapture(handshake_then(t0)), context=lambda: "ss: nothing")
    with pytest.raises(WireExpectationError) as err:
        wire.expect("client", "F", has="", within=0.01, since=t0)
    text = str(err.value)
    assert "expected client to send [F]" in text and "[SA]" in text and "ss: nothing" in text


def test_expect_fails_when_segment_came_too_late():
    t0 = time.time() - 1
    wire = Wire(FakeCapture(handshake_then(t0, frame(t0 + 0.5, True, "RA", 1001, 5001))))
    with pytest.raises(WireExpectationError, match=r"it came 0\.5"):
        wire.expect("client", "RA", within=PROMPT_S, since=t0)


def test_expect_no_detects_forbidden_segment():
    t0 = time.time() - 1
    wire = Wire(FakeCapture(handshake_then(t0, frame(t0 + 0.01, True, "FA", 1001, 5001))))
    with pytest.raises(WireExpectationError, match="expected no"):
        wire.expect_no("client", has="F", during=0.1, since=t0)
    wire.expect_no("server", has="F", during=0.1, since=t0)


def test_expect_no_window_ignores_the_cursor():
    """A FIN sent before an expected RST is caught by a negative check starting at the close()."""
    t0 = time.time() - 1
    wire = Wire(FakeCapture(handshake_then(t0, frame(t0 + 0.010, True, "FA", 1001, 5001),
                                           frame(t0 + 0.011, True, "RA", 1001, 5001))))
    wire.expect("client", "RA", within=1.0, since=t0)
    with pytest.raises(WireExpectationError, match="expected no"):
        wire.expect_no("client", has="F", during=0.1, since=t0 + 0.005)


@pytest.mark.parametrize("during", [0.0, -1.0])
def test_expect_no_needs_a_real_window(during):
    wire = Wire(FakeCapture(handshake_then(time.time() - 1)))
    with pytest.raises(ValueError, match="longer than zero"):
        wire.expect_no("client", during=during)


def test_injected_frames_never_match_a_kernel_expectation():
    t0 = time.time() - 1
    rst = frame(t0 + 0.01, False, "R", 5001)
    wire = Wire(FakeCapture(handshake_then(t0, rst)))
    wire.note_sent(rst.data, "injected", t0 + 0.009)
    with pytest.raises(WireExpectationError):
        wire.expect("server", "R", within=0.5, since=t0)
    seg = wire.expect("server", "R", within=0.5, since=t0, origin="injected")
    assert seg.origin == "injected" and seg.as_dict(t0)["origin"] == "injected"


def test_two_connections_have_their_own_numbers_and_cursors():
    t0 = time.time()

    def seg(ts, outgoing, flags, seq, ack, cport):
        src, dst = (IPV4.client, IPV4.server) if outgoing else (IPV4.server, IPV4.client)
        pkt = (Ether(src=MAC_A, dst=MAC_B) / IP(src=src, dst=dst)
               / TCP(sport=cport if outgoing else 8080, dport=8080 if outgoing else cport, flags=flags, seq=seq,
                     ack=ack))
        return Frame(ts, outgoing, bytes(pkt))

    cap = FakeCapture([seg(t0, True, "S", 100, 0, 40001), seg(t0 + 0.001, True, "S", 9000, 0, 40002),
                       seg(t0 + 0.002, False, "SA", 500, 101, 40001), seg(t0 + 0.003, False, "SA", 7000, 9001, 40002),
                       seg(t0 + 0.004, False, "RA", 7001, 9001, 40002), seg(t0 + 0.005, False, "RA", 501, 101, 40001)])
    wire = Wire(cap)
    second = wire.conn(40002).expect("server", "RA", within=1.0, since=t0)
    first = wire.conn(40001).expect("server", "RA", within=1.0, since=t0)
    assert (second.client_port, second.seq, second.ack) == (40002, 1, 1)
    assert (first.client_port, first.seq, first.ack) == (40001, 1, 1)
    assert [s.index for s in wire.conn(40001).all("server")] == [2, 5]


def test_case_variant_drops_only_the_family():
    from fixtures.plugin import case_variant

    assert case_variant("close/x[ipv4-linger-off]", "ipv4") == "linger-off"
    assert case_variant("close/x[SHUT_RD-ipv6-peer-first]", "ipv6") == "SHUT_RD-peer-first"
    assert case_variant("close/x[ipv6]", "ipv6") == ""


def test_bucket_rounds_expected_values_computed_from_measurements():
    assert bucket(0.2001, 0.2001, timer_window(0.200032)) == bucket(0.2001, 0.2001, timer_window(0.20016)) == "~0.2s"


