"""Mutation tests of the harness: recorded evidence of real cases (tests/data/recorded/, one case per area, made
by `python3 tests/data/record_evidence.py` as root) is decided again with one thing changed, and the case's own
checks must fail. No root needed: the checks are data (fixtures/checks.py) and are decided from evidence alone.

Each mutant is what a misbehaving kernel would have done: a FIN instead of the RST, an extra FIN before the RST,
a segment inside a "silent" window, a 30 s TIME_WAIT, a state skipped, a lifetime twice as long, one FIN
retransmission too many, a listener that FINs a queued child, a second FIN from shutdown().
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.checks import decide_again

RECORDED = Path(__file__).resolve().parent / "data" / "recorded"
Case = dict


def load(area: str) -> Case:
    path = RECORDED / f"{area}.json"
    return json.loads(path.read_text())


def recorded_areas() -> list[str]:
    return sorted(p.stem for p in RECORDED.glob("*.json"))


# --- changing evidence ---------------------------------------------------------------------------------------

def first_segment(case: Case, sender: str, flags: str) -> int:
    for i, s in enumerate(case["segments"]):
        if s["sender"] == sender and s["flags"].replace("P", "") == flags and s.get("origin", "kernel") == "kernel":
            return i
    raise LookupError(f"no {sender} [{flags}] in {case['id']}")


def insert_segment(case: Case, at: float, sender: str, flags: str, like: int) -> Case:
    """A kernel segment from `sender` at relative time `at`, on the connection of segment `like`."""
    base = case["segments"][like]
    seg = {**base, "t": round(at, 6), "sender": sender, "flags": flags, "len": 0, "origin": "kernel"}
    case["segments"] = sorted([*case["segments"], seg], key=lambda s: s["t"])
    return case


def syscall(case: Case, side: str, call: str) -> dict:
    return next(c for c in case["syscalls"] if c["side"] == side and c["call"] == call)


def fin_instead_of_rst(case: Case) -> Case:
    case["segments"][first_segment(case, "client", "RA")]["flags"] = "FA"
    return case


def extra_fin_before_rst(case: Case) -> Case:
    rst = first_segment(case, "client", "RA")
    return insert_segment(case, case["segments"][rst]["t"] - 0.0005, "client", "FA", rst)


def rst_after_close(case: Case) -> Case:
    """A segment inside the window the case calls silent: an RST 20 ms after close()."""
    close = syscall(case, "client", "close")
    return insert_segment(case, close["t"] + 0.020, "client", "R", 0)


def time_wait_of_30s(case: Case) -> Case:
    for row in case["states"]:
        if row["side"] == "client" and row["state"] == "TIME_WAIT":
            row["expires_ms"] = max(0, row["expires_ms"] - 30_000)
    return case


def fin_wait2_skipped(case: Case) -> Case:
    case["states"] = [r for r in case["states"] if not (r["side"] == "client" and r["state"] == "FIN_WAIT2")]
    return case


def lifetime_doubled(case: Case) -> Case:
    """The orphan is seen gone twice as late after its FIN's ACK."""
    gone = [r for r in case["states"] if r["side"] == "client" and r["state"] == "CLOSED"]
    ack = case["segments"][first_segment(case, "client", "FA")]["t"]
    for row in gone:
        row["t"] = round(ack + 2 * (row["t"] - ack), 6)
    case["states"].sort(key=lambda r: r["t"])
    return case


def one_fin_resend_too_many(case: Case) -> Case:
    fins = [i for i, s in enumerate(case["segments"]) if s["sender"] == "client" and s["flags"] == "FA"]
    last = case["segments"][fins[-1]]
    return insert_segment(case, last["t"] + 0.001, "client", "FA", fins[-1])


def listener_fins_a_child(case: Case) -> Case:
    case["segments"][first_segment(case, "server", "RA")]["flags"] = "FA"
    return case


def second_fin(case: Case) -> Case:
    fin = first_segment(case, "client", "FA")
    return insert_segment(case, case["segments"][fin]["t"] + 0.002, "client", "FA", fin)


MUTANTS: list[tuple[str, str, Callable[[Case], Case]]] = [
    ("close", "a FIN instead of the RST", fin_instead_of_rst),
    ("close", "an extra FIN before the RST", extra_fin_before_rst),
    ("close_data", "an RST inside the silent window after close() in SYN_SENT", rst_after_close),
    ("linger", "an RST from LAST_ACK, where {1,0} must send nothing", rst_after_close),
    ("time_wait", "a 30 s TIME_WAIT", time_wait_of_30s),
    ("orderings", "FIN_WAIT2 skipped", fin_wait2_skipped),
    ("timers", "an orphaned FIN_WAIT2 that lives twice as long", lifetime_doubled),
    ("timers_series", "one FIN retransmission too many", one_fin_resend_too_many),
    ("listener", "a FIN instead of the RST to a queued child", listener_fins_a_child),
    ("shutdown", "a second FIN", second_fin),
]


def test_every_area_has_a_recorded_case_and_a_mutant():
    areas = {area.split("_series")[0] for area in recorded_areas()}
    assert areas >= {"close", "close_data", "linger", "listener", "orderings", "shutdown", "time_wait", "timers"}
    assert {m[0] for m in MUTANTS} == set(recorded_areas())


@pytest.mark.parametrize("area", recorded_areas())
def test_recorded_case_passes_when_decided_again(area):
    """Offline and live decisions agree: the unchanged evidence passes every check of the case again."""
    case = load(area)
    assert case["outcome"] == "passed" and case["checks"], f"{area}: record a passing case with checks"
    assert decide_again(case) == []


@pytest.mark.parametrize(("area", "what", "mutate"), MUTANTS, ids=[f"{a}: {w}" for a, w, _ in MUTANTS])
def test_mutant_fails_the_cases_own_checks(area, what, mutate):
    case = mutate(copy.deepcopy(load(area)))
    failures = decide_again(case)
    assert failures, f"{area}: the case's checks still pass with {what}"
