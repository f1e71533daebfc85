"""The scripted peer's segment building and parsing, and the grid table (pure: no root, no namespace)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from conformance.grid import (
    DEVIATIONS,
    GRID,
    MEASURED,
    PROBES,
    SEGMENTS,
    STATE_NAMES,
    Probe,
    ack_at,
    describe_answer,
    seq_at,
)
from fixtures.refindex import check_reference
from fixtures.scripted import (
    KERNEL_STATE,
    STATES,
    Options,
    build_frame,
    checksum,
    flags_text,
    flags_value,
    parse_frame,
    seq_after,
)

MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"
ADDRS = {"ipv4": ("198.18.0.2", "198.18.0.1"), "ipv6": ("2001:db8::2", "2001:db8::1")}


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_a_built_frame_is_what_scapy_reads(family):
    src, dst = ADDRS[family]
    opts = Options(mss=1460, wscale=7, sack_perm=True, ts=(123456, 654321))
    frame = build_frame(MAC_A, MAC_B, src, dst, 8080, 40000, "SA", 2**32 - 5, 77, 65535, opts, b"")
    pkt = Ether(frame)
    tcp = pkt[TCP]
    assert (pkt.src, pkt.dst) == (MAC_A, MAC_B)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.window) == (8080, 40000, 2**32 - 5, 77, 65535)
    assert str(tcp.flags) == "SA"
    got = dict((k, v) for k, v in tcp.options if k != "NOP")
    assert got == {"MSS": 1460, "WScale": 7, "SAckOK": b"", "Timestamp": (123456, 654321)}
    # scapy recomputes the checksums of a copy with them cleared: they must agree with ours
    ip = pkt[IP] if family == "ipv4" else pkt[IPv6]
    again = ip.copy()
    del again[TCP].chksum
    if family == "ipv4":
        del again.chksum
    again = again.__class__(bytes(again))
    assert again[TCP].chksum == tcp.chksum
    if family == "ipv4":
        assert again.chksum == ip.chksum


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_build_then_parse_round_trips(family):
    src, dst = ADDRS[family]
    opts = Options(ts=(1, 2), sack=((10, 20),))
    frame = build_frame(MAC_A, MAC_B, src, dst, 1, 2, "FPA", 1000, 2000, 512, opts, b"x" * 100)
    p = parse_frame(frame)
    assert p is not None and p.checksum_ok
    assert (p.src, p.dst, p.sport, p.dport, p.seq, p.ack, p.flags, p.window) == (src, dst, 1, 2, 1000, 2000, "FPA",
                                                                                   512)
    assert p.options == opts
    assert p.payload == b"x" * 100
    assert p.seg_len == 101


def test_parse_reads_a_scapy_frame_and_flags_a_bad_checksum():
    frame = bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src="198.18.0.1", dst="198.18.0.2") /
                  TCP(sport=5, dport=6, flags="S", seq=9, options=[("MSS", 1448), ("SAckOK", b""),
                                                                    ("Timestamp", (7, 0)), ("NOP", None),
                                                                    ("WScale", 10)]))
    p = parse_frame(frame)
    assert p is not None and p.checksum_ok and p.flags == "S" and p.seg_len == 1
    assert p.options == Options(mss=1448, wscale=10, sack_perm=True, ts=(7, 0))
    broken = bytearray(frame)
    broken[-1] ^= 0xFF
    assert parse_frame(bytes(broken)).checksum_ok is False  # type: ignore[union-attr]
    assert parse_frame(b"\x00" * 10) is None
    assert parse_frame(bytes(Ether() / IP() / b"no tcp")) is None


def test_options_layout_and_limits():
    assert Options(ts=(1, 2)).encode()[:4] == b"\x01\x01\x08\x0a"  # NOP NOP TS, as Linux sends it
    assert len(Options(mss=1460, wscale=7, sack_perm=True, ts=(1, 2)).encode()) == 20
    assert Options().encode() == b""
    assert Options.decode(b"\x02") == Options()  # truncated: stop, never raise
    with pytest.raises(ValueError):
        Options(ts=(1, 2), sack=((1, 2), (3, 4), (5, 6), (7, 8))).encode()


def test_flags_and_sequence_arithmetic():
    assert flags_value("SA") == 0x12 and flags_text(0x12) == "SA"
    assert flags_text(flags_value("FPA")) == "FPA"
    with pytest.raises(ValueError):
        flags_value("X")
    assert seq_after(1, 0) and not seq_after(0, 1) and not seq_after(5, 5)
    assert seq_after(3, 2**32 - 3)  # wraps
    assert checksum(b"\x00\x01\xf2\x03\xf4\xf5\xf6\xf7") == 0x220D


# the grid table --------------------------------------------------------------------------------------------

def test_every_state_has_every_probe_once():
    assert set(MEASURED) == set(STATES) == set(STATE_NAMES)
    for state, row in MEASURED.items():
        assert set(row) == {p.id for p in PROBES}, state
    ids = [c.id for c in GRID]
    assert len(ids) == len(set(ids)) == len(STATES) * len(PROBES)
    assert len(GRID) * 2 >= 300, "at least 300 grid cases over both families"


def test_every_answer_and_state_is_known():
    for cell in GRID:
        assert cell.answer in ("CH", "-", "R", "RA") or cell.answer.startswith("A+"), cell.id
        assert cell.after in {*STATE_NAMES.values(), "CLOSED"}, cell.id
        assert describe_answer(cell.answer)
    assert KERNEL_STATE == STATE_NAMES


def test_every_cell_names_resolving_references():
    for cell in GRID:
        assert any(r.startswith("RFC ") for r in cell.refs), cell.id
        assert any(r.startswith("net/") for r in cell.refs), cell.id
        bad = [check_reference(r) for r in cell.refs if check_reference(r)]
        assert not bad, bad


def test_deviations_name_real_cells_and_differ_from_what_linux_does():
    probe_ids = {p.id for p in PROBES}
    for states, pid, rfc, text in DEVIATIONS:
        assert pid in probe_ids and set(states) <= set(MEASURED) and text
        for state in states:
            linux = MEASURED[state][pid]
            assert ">" in rfc and rfc != linux, (state, pid)
    marked = [c for c in GRID if c.deviation]
    assert marked and all(c.rfc_answer for c in marked)


def test_positions_and_ack_values():
    assert seq_at("left", 100, 1000) == 100
    assert seq_at("left-1", 100, 1000) == 99
    assert seq_at("right", 100, 1000) == 1099
    assert seq_at("right-out", 100, 1000) == 1100
    assert seq_at("left-out", 100, 1000) < 100
    assert ack_at("ok", 5, 9) == 5 and ack_at("old", 5, 9) == 4
    assert ack_at("ahead", 5, 9) > 9 and ack_at("ancient", 5, 9) < 5 - 2**24
    assert Probe("data", "left", "ancient").id == "data@left-ack-ancient"
    assert all(SEGMENTS[p.segment] for p in PROBES)
