"""The SVG ladder diagram: lanes, arrows, annotations, the arrow cap and idle-gap breaks."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from reports_sample import case_by_id, make_run

from reports import ladder
from reports.load import validate

SVG = "{http://www.w3.org/2000/svg}"


def sample_case(case_id: str) -> dict:
    data = make_run()
    validate(data, "sample")
    return case_by_id(data, case_id)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # must be well-formed XML


def arrows(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}line") if "sg" in (e.get("class") or "").split()]


def test_every_segment_is_an_arrow_with_its_label() -> None:
    case = sample_case("close/unread-data[ipv4]")
    svg, omitted = ladder.render(case)
    root = parse(svg)
    assert len(arrows(root)) == len(case["segments"]) and omitted["segments"] == 0
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "RA seq=1 ack=513 len=0" in texts and "PA seq=1 ack=1 len=512" in texts
    assert "CLOSED" in texts and "recv() = -1 ECONNRESET" in texts
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "hd"] == ["client", "server"]
    rst = next(a for a in arrows(root) if "k-r" in a.get("class", ""))
    # the server's RST goes right to left
    assert float(rst.get("x1")) > float(rst.get("x2"))


def test_times_run_down_the_page() -> None:
    svg, _ = ladder.render(sample_case("close/fin-handshake[ipv4]"))
    ys = [float(a.get("y2")) for a in arrows(parse(svg))]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)


def test_client_states_are_left_of_its_line_server_states_right() -> None:
    svg, _ = ladder.render(sample_case("close/fin-handshake[ipv4]"))
    root = parse(svg)
    lanes = {t.text: float(t.get("x")) for t in root.iter(f"{SVG}text") if t.get("class") == "hd"}
    for t in root.iter(f"{SVG}text"):
        if t.get("class") == "st" and t.text.startswith("FIN_WAIT2"):
            assert float(t.get("x")) < lanes["client"] and t.get("text-anchor") == "end"
        if t.get("class") == "st" and t.text.startswith("LAST_ACK"):
            assert float(t.get("x")) > lanes["server"]


def test_many_segments_are_capped_with_a_note() -> None:
    case = sample_case("close/bulk-then-close[ipv4]")
    assert len(case["segments"]) > 100
    svg, omitted = ladder.render(case)
    root = parse(svg)
    assert len(arrows(root)) == ladder.MAX_ARROWS
    assert omitted["segments"] == len(case["segments"]) - ladder.MAX_ARROWS
    assert "events not drawn" in svg
    # the first and the last segments (handshake and FIN exchange) are drawn
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "S seq=0 ack=0 len=0" in texts and any(t and t.startswith("FA seq=101361") for t in texts)


def test_idle_gap_becomes_a_break_marker_not_a_tall_drawing() -> None:
    case = sample_case("orphan/fin-wait2-timeout[ipv4]")
    svg, _ = ladder.render(case)
    assert re.search(r"⋯ 1\.0\d\ds idle ⋯", svg)
    height = float(parse(svg).get("height"))
    stretched = dict(case, segments=[dict(s, t=s["t"] * 1000) for s in case["segments"]],
                     states=[dict(s, t=s["t"] * 1000) for s in case["states"]])
    svg2, _ = ladder.render(stretched)
    assert float(parse(svg2).get("height")) < height * 1.6  # 1000x the time, about the same height
    quiet = dict(case, segments=case["segments"][:5], states=case["states"][:3], syscalls=[])
    assert "idle" not in ladder.render(quiet)[0]


def test_peer_gets_its_own_lane_and_talks_to_the_side_it_impersonates() -> None:
    case = sample_case("timewait/rst-assassination[ipv4]")
    svg, _ = ladder.render(case)
    root = parse(svg)
    lanes = {t.text: float(t.get("x")) for t in root.iter(f"{SVG}text") if t.get("class") == "hd"}
    assert list(lanes) == ["client", "server", "peer"]
    peer_rst = arrows(root)[-1]
    assert float(peer_rst.get("x1")) == lanes["peer"] - 1 and float(peer_rst.get("x2")) == lanes["client"] + 2
    assert ladder.receiver("peer", ["client", "server", "peer"], {}) == "server"
    assert ladder.receiver("client", ["client", "peer"], {}) == "peer"


def test_nothing_observed_gives_no_svg() -> None:
    case = sample_case("timewait/reuse-port[ipv4]")
    assert ladder.render(case) == ("", {"segments": 0, "state": 0, "call": 0})


def test_countdown_rows_are_not_drawn_but_a_socket_that_comes_back_is() -> None:
    """Real sock_diag samples: a timer counting down is one row; gone-then-back is drawn as it was seen."""
    case = sample_case("orphan/fin-wait2-timeout[ipv4]")
    fw2 = next(s for s in case["states"] if s["state"] == "FIN_WAIT2")
    flaps = []
    for i in range(1, 4):
        flaps.append(dict(fw2, t=fw2["t"] + i * 0.024, expires_ms=1000 - i * 24))
        flaps.append(dict(fw2, t=fw2["t"] + i * 0.024 + 0.012, state="CLOSED", timer="none", expires_ms=0))
    case["states"] += flaps
    svg, _ = ladder.render(case)
    notes = [t.text for t in parse(svg).iter(f"{SVG}text") if t.get("class") == "st"]
    # client: FIN_WAIT2, then gone/back twice, then gone for good (the last row repeats CLOSED: not redrawn)
    assert sum(n.startswith("FIN_WAIT2") for n in notes) == 3 and notes.count("CLOSED") == 3 + 1


def test_injected_segment_is_dashed_and_labelled_not_drawn_like_a_kernels() -> None:
    case = sample_case("timewait/rst-assassination[ipv4]")
    assert case["segments"][-1]["origin"] == "injected"
    svg, _ = ladder.render(case)
    root = parse(svg)
    lines = arrows(root)
    injected = lines[-1]
    assert injected.get("class").split() == ["sg", "k-r", "crafted", "o-injected"]
    assert all("crafted" not in a.get("class") for a in lines[:-1])  # the kernels' segments are solid
    assert ".ladder line.crafted{stroke-dasharray:" in ladder.CSS  # dashed
    group = next(g for g in root.iter(f"{SVG}g") if injected in list(g))
    labels = {t.get("class"): t.text for t in group.iter(f"{SVG}text")}
    assert labels["org"] == "injected" and labels["k-r"] == "R seq=2 ack=0 len=0"
    assert "injected by the harness, not sent by a kernel" in group.find(f"{SVG}title").text
    # a replayed frame: dashed too, with its own label
    case["segments"][-1]["origin"] = "replayed"
    root = parse(ladder.render(case)[0])
    replayed = arrows(root)[-1]
    assert "crafted" in replayed.get("class") and "o-replayed" in replayed.get("class")
    assert "replayed" in [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "org"]


def test_unexpected_segment_is_marked_red() -> None:
    case = sample_case("linger/zero-timeout-rst[ipv4]")
    assert case["unexpected"] == [5]
    root = parse(ladder.render(case)[0])
    lines = arrows(root)
    marked = [i for i, a in enumerate(lines) if "unx" in a.get("class").split()]
    assert marked == [5]
    assert ".ladder line.unx{stroke:#c62828" in ladder.CSS
    group = next(g for g in root.iter(f"{SVG}g") if lines[5] in list(g))
    texts = {t.text: t.get("class") for t in group.iter(f"{SVG}text")}
    assert texts["unexpected"] == "unx" and texts["FA seq=101 ack=1 len=0"] == "k-f unx"
    assert group.find(f"{SVG}rect").get("class") == "unxband"
    assert "UNEXPECTED" in group.find(f"{SVG}title").text
    # the index counts all segments, also when the middle of a long exchange is not drawn
    bulk = sample_case("close/bulk-then-close[ipv4]")
    bulk["unexpected"] = [len(bulk["segments"]) - 2]
    root = parse(ladder.render(bulk)[0])
    marked = [a for a in arrows(root) if "unx" in a.get("class").split()]
    assert len(marked) == 1 and marked[0] is arrows(root)[-2]


def test_scenario_is_shaded_behind_its_rows() -> None:
    case = sample_case("close/fin-handshake[ipv4]")
    root = parse(ladder.render(case)[0])
    band = next(r for r in root.iter(f"{SVG}rect") if r.get("class") == "scn")
    top, bottom = float(band.get("y")), float(band.get("y")) + float(band.get("height"))
    ys = [float(a.get("y2")) for a in arrows(root)]
    # the handshake's SYN and SYN-ACK come before the scenario (it starts at the third segment)
    assert ys[0] < top and ys[1] < top and all(top < y <= bottom for y in ys[2:])
    assert "scenario" not in ladder.render(dict(case, scenario=None))[0]
