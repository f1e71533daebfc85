"""The scripted peer's segment building and parsing, and the grid table (pure: no root, no namespace)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
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
    parse_frame,
    seq_after,
)

MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"
ADDRS = {"ipv4": ("198.18.0.2", "198.18.0.1"), "ipv6": ("2001:db8::2", "2001:db8::1")}

# Frames the hand-written (struct) encoder built before the peer moved to scapy: the option layout and every
# other byte the kernel sees must stay the same. (family, sport, dport, flags, seq, ack, window, options, payload,
# the frame as hex)
OLD_ENCODER_FRAMES = [
    pytest.param("ipv4", 8080, 40000, "R", 1000, 0, 0,
                 None, b"",
                 "020000000002020000000001080045000028000040004006aea8c6120002c61200011f909c40000003e80000000050040000"
                 "64000000", id="v4-rst-no-options"),
    pytest.param("ipv4", 40000, 8080, "S", 2**32 - 5, 0, 65535,
                 Options(mss=1460, wscale=7, sack_perm=True, ts=(123456, 654321)), b"",
                 "02000000000202000000000108004500003c000040004006ae94c6120002c61200019c401f90fffffffb00000000a002ffff"
                 "21cf0000020405b40402080a0001e2400009fbf101030307", id="v4-syn-every-option"),
    pytest.param("ipv4", 8080, 40000, "PA", 5, 2**32 + 7, 512,
                 Options(ts=(2**32 + 1, 99)), b"x" * 100,
                 "020000000002020000000001080045000098000040004006ae38c6120002c61200011f909c40000000050000000780180200"
                 "a46100000101080a000000010000006378787878787878787878787878787878787878787878787878787878787878787878"
                 "7878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878"
                 "78787878787878787878787878787878", id="v4-ack-timestamp-data"),
    pytest.param("ipv4", 8080, 40000, "SA", 1, 2, 29200,
                 Options(mss=536, sack_perm=True), b"",
                 "020000000002020000000001080045000030000040004006aea0c6120002c61200011f909c40000000010000000270127210"
                 "cc9f00000204021801010402", id="v4-syn-ack-mss-and-sack-permitted-without-timestamps"),
    pytest.param("ipv4", 8080, 40000, "S", 1, 0, 1024,
                 Options(wscale=0), b"",
                 "02000000000202000000000108004500002c000040004006aea4c6120002c61200011f909c40000000010000000060020400"
                 "4fe2000001030300", id="v4-window-scale-only"),
    pytest.param("ipv4", 8080, 40000, "A", 10, 20, 300,
                 Options(sack=((100, 200), (300, 400), (500, 2**32 + 3))), b"",
                 "020000000002020000000001080045000044000040004006ae8cc6120002c61200011f909c400000000a00000014c010012c"
                 "ea7b00000101051a00000064000000c80000012c00000190000001f400000003",
                 id="v4-sack-blocks-without-timestamps"),
    pytest.param("ipv6", 8080, 40000, "SA", 77, 2**32 - 1, 65535,
                 Options(mss=1440, wscale=14, sack_perm=True, ts=(1, 2)), b"",
                 "02000000000202000000000186dd600000000028064020010db800000000000000000000000220010db80000000000000000"
                 "000000011f909c400000004dffffffffa012ffff30680000020405a00402080a00000001000000020103030e",
                 id="v6-syn-ack-every-option"),
    pytest.param("ipv6", 1, 2, "FPA", 1000, 2000, 512,
                 Options(ts=(1, 2), sack=((10, 20), (30, 40))), b"y" * 33,
                 "02000000000202000000000186dd600000000055064020010db800000000000000000000000220010db80000000000000000"
                 "0000000100010002000003e8000007d0d0190200a63d00000101080a0000000100000002010105120000000a000000140000"
                 "001e00000028797979797979797979797979797979797979797979797979797979797979797979",
                 id="v6-fin-timestamp-and-sack-data"),
    pytest.param("ipv6", 40000, 8080, "RA", 0, 0, 0,
                 None, b"z",
                 "02000000000202000000000186dd600000000015064020010db800000000000000000000000220010db80000000000000000"
                 "000000019c401f900000000000000000501400001e8a00007a", id="v6-rst-ack-no-options-odd-data"),
    pytest.param("ipv6", 5, 6, "FSRPAUEC", 9, 10, 11,
                 Options(mss=1220), b"",
                 "02000000000202000000000186dd600000000018064020010db800000000000000000000000220010db80000000000000000"
                 "0000000100050006000000090000000a60ff000b3c7c0000020404c4", id="v6-every-flag-mss-only"),
]


@pytest.mark.parametrize(("family", "sport", "dport", "flags", "seq", "ack", "window", "options", "payload", "old"),
                         OLD_ENCODER_FRAMES)
def test_frames_are_byte_for_byte_what_the_old_encoder_built(family, sport, dport, flags, seq, ack, window, options,
                                                             payload, old):
    src, dst = ADDRS[family]
    frame = build_frame(MAC_A, MAC_B, src, dst, sport, dport, flags, seq, ack, window, options, payload)
    assert frame.hex() == old
    p = parse_frame(frame)
    assert p is not None and p.checksum_ok
    assert (p.sport, p.dport, p.flags, p.seq, p.ack, p.window) == (sport, dport, flags, seq % 2**32, ack % 2**32,
                                                                   window)
    assert p.options == Options.from_scapy((options or Options()).to_scapy())
    assert p.payload == payload


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
    if family == "ipv4":
        assert (pkt[IP].ttl, str(pkt[IP].flags), pkt[IP].id) == (64, "DF", 0)
    else:
        assert pkt[IPv6].hlim == 64


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


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_a_corrupted_checksum_is_detected(family):
    src, dst = ADDRS[family]
    frame = build_frame(MAC_A, MAC_B, src, dst, 1, 2, "PA", 1, 1, 512, Options(ts=(5, 6)), b"data")
    for index in (len(frame) - 1, len(frame) - 20):  # a data byte, an option byte
        broken = bytearray(frame)
        broken[index] ^= 0xFF
        p = parse_frame(bytes(broken))
        assert p is not None and p.checksum_ok is False


def test_parse_reads_a_scapy_frame():
    frame = bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src="198.18.0.1", dst="198.18.0.2") /
                  TCP(sport=5, dport=6, flags="S", seq=9, options=[("MSS", 1448), ("SAckOK", b""),
                                                                    ("Timestamp", (7, 0)), ("NOP", None),
                                                                    ("WScale", 10)]))
    p = parse_frame(frame)
    assert p is not None and p.checksum_ok and p.flags == "S" and p.seg_len == 1
    assert p.options == Options(mss=1448, wscale=10, sack_perm=True, ts=(7, 0))


def test_ethernet_padding_is_not_payload():
    frame = build_frame(MAC_A, MAC_B, *ADDRS["ipv4"], 1, 2, "R", 1, 0, 0)
    assert len(frame) == 54
    p = parse_frame(frame + b"\x00" * 6)  # padded to the 60-byte minimum on a real wire
    assert p is not None and p.checksum_ok and p.payload == b"" and p.seg_len == 0


def test_what_is_not_a_whole_tcp_segment_gives_none():
    frame = build_frame(MAC_A, MAC_B, *ADDRS["ipv4"], 1, 2, "A", 1, 1, 512, Options(ts=(1, 2)))
    assert parse_frame(b"") is None
    assert parse_frame(b"\x00" * 10) is None
    assert parse_frame(frame[:14 + 20 + 10]) is None  # the TCP header cut
    assert parse_frame(frame[:-4]) is None  # the options cut: the header is longer than what came
    assert parse_frame(bytes(Ether() / IP() / b"no tcp")) is None
    assert parse_frame(bytes(Ether() / IPv6() / b"no tcp")) is None
    assert parse_frame(bytes(Ether(type=0x0806) / frame[14:])) is None  # not IP
    assert parse_frame(bytes(Ether() / IPv6(src="::1", dst="::2") / IPv6ExtHdrHopByHop() / TCP())) is None


def test_malformed_options_never_raise():
    # an MSS option announcing length 0 (kind 2, length 0), then NOPs: what the kernel calls silly options
    frame = bytes(Ether() / IP(src="198.18.0.1", dst="198.18.0.2") / TCP(dataofs=6, options=[]) /
                  b"\x02\x00\x01\x01")
    p = parse_frame(frame)
    assert p is not None and p.checksum_ok and p.options == Options() and p.payload == b""


def test_options_to_and_from_scapy():
    assert Options().to_scapy() == []
    # NOP NOP before the timestamps unless SACK permitted takes their place, as Linux sends them
    assert Options(ts=(1, 2)).to_scapy() == [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
    assert Options(mss=1460, wscale=7, sack_perm=True, ts=(1, 2)).to_scapy() == [
        ("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 2)), ("NOP", None), ("WScale", 7)]
    assert Options(sack_perm=True).to_scapy() == [("NOP", None), ("NOP", None), ("SAckOK", b"")]
    assert Options(sack=((2**32 + 1, 5),)).to_scapy() == [("NOP", None), ("NOP", None), ("SAck", (1, 5))]
    with pytest.raises(ValueError, match="at most 40"):
        Options(ts=(1, 2), sack=((1, 2), (3, 4), (5, 6), (7, 8))).to_scapy()
    every = Options(mss=1, wscale=2, sack_perm=True, ts=(3, 4), sack=((5, 6), (7, 8)))
    assert Options.from_scapy(every.to_scapy()) == every
    # values of the wrong size stay bytes in scapy's list (or an int for one SACK edge): ignored
    wrong = [("MSS", b"\x01"), ("WScale", b""), ("SAckOK", b"\x00"), ("Timestamp", b"\x00" * 4), ("SAck", 5),
             ("SAck", (1, 2, 3)), (99, b"x")]
    assert Options.from_scapy(wrong) == Options()
    assert Options.from_scapy([("MSS", 1000), ("MSS", b"\x01"), ("MSS", 1200)]) == Options(mss=1200)


def test_flags_and_sequence_arithmetic():
    for flags in ("", "S", "SA", "FPA", "R", "RA", "FSRPAUEC"):
        frame = build_frame(MAC_A, MAC_B, *ADDRS["ipv6"], 1, 2, flags, 1, 1, 512)
        assert parse_frame(frame).flags == flags  # type: ignore[union-attr]
    for bad in ("X", "N", "SAx"):
        with pytest.raises(ValueError, match="unknown TCP flag"):
            build_frame(MAC_A, MAC_B, *ADDRS["ipv4"], 1, 2, bad, 1, 1, 512)
    ae = bytes(Ether() / IP(src="198.18.0.1", dst="198.18.0.2") / TCP(flags="SAN"))  # the AE (ex-NS) bit
    assert parse_frame(ae).flags == "SA"  # type: ignore[union-attr]
    assert seq_after(1, 0) and not seq_after(0, 1) and not seq_after(5, 5)
    assert seq_after(3, 2**32 - 3)  # wraps


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


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_a_forwarded_copy_differs_only_in_its_hop_count(family):
    """lab.replay(hops=1): the TTL / hop limit one lower, the IPv4 header checksum valid again, every other byte
    (the TCP segment with its options and checksum) the same."""
    from fixtures.peer import forwarded, hop_limit

    src, dst = ADDRS[family]
    frame = build_frame(MAC_A, MAC_B, src, dst, 8080, 40000, "FA", 1000, 2000, 502,
                        Options(ts=(123456, 654321)), b"")
    copy = forwarded(frame)
    assert (hop_limit(frame), hop_limit(copy)) == (64, 63)
    assert len(copy) == len(frame)
    changed = [i for i, (a, b) in enumerate(zip(frame, copy, strict=True)) if a != b]
    ip_start = 14
    if family == "ipv4":
        assert set(changed) <= {ip_start + 8, ip_start + 10, ip_start + 11} and ip_start + 8 in changed
        ip = Ether(copy)[IP]
        recomputed = IP(bytes(ip))
        del recomputed.chksum
        assert IP(bytes(recomputed)).chksum == ip.chksum != Ether(frame)[IP].chksum
    else:
        assert changed == [ip_start + 7]
    assert bytes(Ether(copy)[TCP]) == bytes(Ether(frame)[TCP])
    assert parse_frame(copy) == parse_frame(frame)
