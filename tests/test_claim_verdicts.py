"""The article's claims decide both ways, and verdicts() joins them to a run's observations (pure: no root)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

import conformance.claims as article
from fixtures.claims import (
    CONFIRMED,
    CONTRADICTED,
    INCONSISTENT,
    UNDECIDED,
    Claim,
    all_claims,
    judge,
    register,
    verdicts,
)

ARTICLE = Path(__file__).resolve().parents[2] / "shared" / "seed" / "tcp-close.md"
CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"
CLAIMS = {c.id: c for c in all_claims()}

E, FW1, FW2, TW, CW, LA, CLOSING, GONE = (
    "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK", "CLOSING", "CLOSED")
CLIENT_FIRST = {"active": ["client"], "states": {"client": [E, FW1, FW2, TW], "server": [E, CW, LA, GONE]}}
SERVER_FIRST = {"active": ["server"], "states": {"client": [E, CW, LA, GONE], "server": [E, FW1, FW2, TW]}}
SIMULTANEOUS = {"active": ["client", "server"],
                "states": {"client": [E, FW1, CLOSING, TW], "server": [E, FW1, CLOSING, TW]}}
UNSENT = {"written_bytes": 48_000, "unsent_at_close": 30_000, "delivered_bytes": 48_000, "fin_len": 1_448,
          "fin_ends_data": True}

# (claim id, a measured value where the article is right, one where it is wrong). "# linux: right" marks the
# claims Linux bears out today (their wrong value is a made-up counterexample); elsewhere the wrong value is
# what Linux measures today (sometimes only under the sysctl named).
TABLE: list[tuple[str, Any, Any]] = [
    ("fin-wait1-unacked-goes-to-closed", [E, FW1, GONE], [E, FW1, FW2, GONE]),  # linux: right
    ("fin-wait1-default-timeout-60s", {"lifetime_s": 61.3, "at_defaults": True},
     {"lifetime_s": 104.4, "at_defaults": True}),
    ("fin-wait1-peer-fin-goes-closing", [E, FW1, CLOSING, TW], [E, FW1, TW]),  # linux: right
    ("fin-wait2-default-timeout-60s", {"timeout_s": 60.03, "at_defaults": True},  # linux: right
     {"timeout_s": 120.0, "at_defaults": True}),
    ("fin-wait2-unanswered-goes-to-closed", [E, FW1, FW2, GONE], [E, FW2, TW, GONE]),  # linux: right
    ("fin-wait2-peer-fin-goes-time-wait", {"states": [E, FW1, FW2, TW], "ack_delay_s": 4e-5},  # linux: right
     {"states": [E, FW2, GONE], "ack_delay_s": 4e-5}),  # (Linux with tcp_max_tw_buckets=0)
    ("time-wait-then-last-ack", {"states": [E, FW2, TW], "ack_delay_s": 4e-5},  # linux: right
     {"states": [E, FW2, TW], "ack_delay_s": None}),
    ("time-wait-lasts-2msl", 241.0, 60.02),
    ("time-wait-discards-late-segments",
     {"late": "RST", "answered": False, "survived": True, "timer_restarted": False},  # (Linux with tcp_rfc1337=1)
     {"late": "FIN", "answered": True, "survived": True, "timer_restarted": True}),
    ("closed-closer-answers-peer-fin-with-rst", "R", "A"),  # linux: right
    ("client-passes-time-wait", CLIENT_FIRST, SERVER_FIRST),
    ("close-wait-only-passive", CLIENT_FIRST,  # linux: right
     {"active": ["client"], "states": {"client": [E, FW1, CW, GONE], "server": [E, CW, GONE]}}),
    ("close-wait-times-out", {"held_s": 70.0, "state": GONE, "timer": "none"},
     {"held_s": 1.23, "state": CW, "timer": "none"}),
    ("last-ack-only-passive", SIMULTANEOUS,  # linux: right
     {"active": ["client", "server"], "states": {"client": [E, FW1, LA, GONE], "server": [E, FW1, CLOSING, TW]}}),
    ("last-ack-unacked-goes-to-closed", [E, CW, LA, GONE], [E, CW, LA, TW]),  # linux: right
    ("listener-close-resets-half-open", {"rst_seen": True, "request_gone": True},
     {"rst_seen": False, "request_gone": True}),
    ("listener-close-removes-keepalive-timer", "keepalive", "none"),
    ("unread-data-close-sends-rst", {"unread_bytes": 1000, "flags": "RA"},  # linux: right
     {"unread_bytes": 1000, "flags": "FA"}),
    ("close-delivers-queued-data", UNSENT, {**UNSENT, "delivered_bytes": 30_000}),  # linux: right
    ("fin-on-last-data-segment", UNSENT, {**UNSENT, "fin_len": 0}),  # linux: right
    ("close-turns-nagle-off", {"bytes": 10, "delay_s": 6e-5}, {"bytes": 10, "delay_s": 0.212}),  # linux: right
    ("bare-fin-has-only-the-fin-flag", {"flags": "F", "len": 0}, {"flags": "FA", "len": 0}),
    ("so-linger-changes-close", {"linger_s": 1, "blocked_s": 1.02}, {"linger_s": 1, "blocked_s": 0.0002}),  # right
]

# Values that cannot decide a claim: the condition the claim is about was not met or not seen.
CANNOT_TELL: list[tuple[str, Any]] = [
    ("fin-wait1-unacked-goes-to-closed", [E, FW1]),  # still in FIN_WAIT1 when the case stopped watching
    ("fin-wait1-default-timeout-60s", {"lifetime_s": 1.4, "at_defaults": False}),
    ("fin-wait2-default-timeout-60s", {"timeout_s": 5.0, "at_defaults": False}),
    ("fin-wait2-peer-fin-goes-time-wait", {"states": [E, FW1, CLOSING, TW], "ack_delay_s": 4e-5}),
    ("time-wait-then-last-ack", {"states": [E, FW1], "ack_delay_s": None}),
    ("closed-closer-answers-peer-fin-with-rst", None),
    ("close-wait-only-passive", {"active": [], "states": {"client": [E], "server": [E]}}),
    ("close-wait-times-out", {"held_s": 2.0, "state": CW, "timer": "keepalive"}),
    ("listener-close-resets-half-open", {"rst_seen": False, "request_gone": False}),
    ("listener-close-removes-keepalive-timer", "retrans"),
    ("unread-data-close-sends-rst", {"unread_bytes": 0, "flags": "FA"}),
    ("close-turns-nagle-off", {"bytes": 10, "delay_s": None}),
    ("close-delivers-queued-data", {**UNSENT, "unsent_at_close": 0}),  # everything had left before close()
    ("fin-on-last-data-segment", {**UNSENT, "unsent_at_close": 0}),
    ("fin-wait1-default-timeout-60s", {"lifetime_s": None, "at_defaults": True}),  # it outlived the case's wait
    ("so-linger-changes-close", {"linger_s": 0, "blocked_s": 0.0001}),
]


def case(case_id: str, observations: dict[str, Any], outcome: str = "passed") -> dict[str, Any]:
    return {"id": case_id, "outcome": outcome,
            "observations": {key: {"value": value, "text": f"measured by {case_id}"}
                             for key, value in observations.items()}}


# every claim, both ways -----------------------------------------------------------------------------------

def test_the_table_covers_every_registered_claim():
    ids = [row[0] for row in TABLE]
    assert len(ids) == len(set(ids)), "a claim appears twice in the table"
    assert set(ids) == set(CLAIMS), f"missing: {set(CLAIMS) - set(ids)}; unknown: {set(ids) - set(CLAIMS)}"


@pytest.mark.parametrize(("claim_id", "right"), [(r[0], r[1]) for r in TABLE], ids=[r[0] for r in TABLE])
def test_article_right_is_confirmed(claim_id, right):
    decided, text = judge(CLAIMS[claim_id], right)
    assert decided is True, text
    assert text and "\n" not in text


@pytest.mark.parametrize(("claim_id", "wrong"), [(r[0], r[2]) for r in TABLE], ids=[r[0] for r in TABLE])
def test_article_wrong_is_contradicted(claim_id, wrong):
    decided, text = judge(CLAIMS[claim_id], wrong)
    assert decided is False, text
    assert text and "\n" not in text


@pytest.mark.parametrize(("claim_id", "value"), CANNOT_TELL, ids=[r[0] for r in CANNOT_TELL])
def test_a_value_outside_the_claims_condition_is_undecided(claim_id, value):
    assert judge(CLAIMS[claim_id], value)[0] is None


@pytest.mark.parametrize(("measured", "right"), [(54.5, True), (65.9, True), (53.9, False), (66.1, False),
                                                 (104.4, False)])
def test_fin_wait1_default_lifetime_is_judged_within_ten_percent_of_60_s(measured, right):
    value = {"lifetime_s": measured, "at_defaults": True}
    assert judge(CLAIMS["fin-wait1-default-timeout-60s"], value)[0] is right


@pytest.mark.parametrize(("measured", "right"), [(60.0, False), (120.0, False), (216.0, True), (264.0, True),
                                                 (265.0, False)])
def test_time_wait_is_judged_against_two_rfc_msl(measured, right):
    assert article.RFC_MSL_S == 120.0
    assert judge(CLAIMS["time-wait-lasts-2msl"], measured)[0] is right


def test_a_late_rst_that_destroys_time_wait_contradicts_the_discard_claim():
    killed = {"late": "RST", "answered": False, "survived": False, "timer_restarted": False}
    assert judge(CLAIMS["time-wait-discards-late-segments"], killed)[0] is False


def test_a_value_of_the_wrong_shape_is_undecided_and_says_why():
    decided, text = judge(CLAIMS["time-wait-lasts-2msl"], {"seconds": 60})
    assert decided is None and "cannot be read" in text


def test_every_claim_is_well_formed():
    keys = {v for k, v in vars(article.Key).items() if not k.startswith("_")}
    for claim in all_claims():
        assert claim.observation in keys, f"{claim.id}: {claim.observation} is not an article.Key"
        assert claim.cases, f"{claim.id} names no case that observes it"
        assert all("/" in p and "[" not in p for p in claim.cases), claim.cases
        assert " — " in claim.quote and claim.asserts, claim.id


def catalogue_case_ids() -> set[str]:
    """Case ids without parameters, as fixtures/plugin.py case_id() names them: "area/name-with-dashes" for each
    test function of conformance/test_<area>.py (read with ast: nothing is imported or run)."""
    ids = set()
    for path in sorted(CONFORMANCE.glob("test_*.py")):
        area = path.stem.removeprefix("test_")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                ids.add(f"{area}/{node.name.removeprefix('test_').replace('_', '-')}")
    return ids


def test_every_claims_cases_name_real_catalogue_cases():
    ids = catalogue_case_ids()
    assert ids, f"no conformance case found under {CONFORMANCE}"
    dangling = {f"{claim.id}: {prefix}" for claim in all_claims() for prefix in claim.cases
                if not any(case_id.startswith(prefix) for case_id in ids)}
    assert not dangling, f"claims naming no case of conformance/: {sorted(dangling)}"


@pytest.mark.skipif(not ARTICLE.exists(), reason=f"{ARTICLE} is not there")
def test_every_quote_is_the_articles_words():
    text = ARTICLE.read_text(encoding="utf-8")
    for claim in all_claims():
        words = claim.quote.split(" — ")[0]
        assert words in text, f"{claim.id}: {words!r} is not in the article"


# verdicts() over a run ------------------------------------------------------------------------------------

def _claim(**kw: Any) -> Claim:
    fields = {"id": "about-60", "quote": "大约60秒 — about 60 s", "asserts": "the thing lasts about 60 s",
              "observation": "thing.length_s", "decide": lambda v: abs(v - 60) <= 6 if v >= 0 else None,
              "evidence_text": lambda v: f"the thing lasted {v:.1f} s", "cases": ("area/thing-lasts",)}
    return Claim(**{**fields, **kw})


def test_undecided_when_no_case_of_the_run_observed_it():
    claim = _claim()
    run = [case("area/thing-lasts[ipv4]", {}, outcome="skipped"), case("area/other[ipv4]", {"other": 1})]
    (result,) = verdicts(run, [claim])
    assert result["verdict"] == UNDECIDED and result["evidence"] == []
    assert "thing.length_s" in result["note"] and "area/thing-lasts" in result["note"]
    assert result["cases_run"] == ["area/thing-lasts[ipv4]"]


def test_undecided_when_no_observation_can_decide():
    (result,) = verdicts([case("area/thing-lasts[ipv4]", {"thing.length_s": -1.0})], [_claim()])
    assert result["verdict"] == UNDECIDED
    assert [e["verdict"] for e in result["evidence"]] == [None]


def test_confirmed_when_every_deciding_case_agrees_and_undecidable_ones_are_kept_as_evidence():
    run = [case("area/thing-lasts[ipv4]", {"thing.length_s": 60.1}),
           case("area/thing-lasts[ipv6]", {"thing.length_s": 59.8}),
           case("area/thing-lasts-tuned[ipv4]", {"thing.length_s": -1.0})]
    (result,) = verdicts(run, [_claim()])
    assert result["verdict"] == CONFIRMED and result["note"] == ""
    assert [e["verdict"] for e in result["evidence"]] == [True, True, None]


def test_contradicted_when_cases_disagree_with_a_note():
    run = [case("area/thing-lasts[ipv4]", {"thing.length_s": 60.1}),
           case("area/thing-lasts[ipv6]", {"thing.length_s": 104.0})]
    (result,) = verdicts(run, [_claim()])
    assert result["verdict"] == CONTRADICTED and INCONSISTENT in result["note"]


def test_contradicted_without_the_note_when_every_case_says_wrong():
    (result,) = verdicts([case("area/thing-lasts[ipv4]", {"thing.length_s": 104.0})], [_claim()])
    assert result["verdict"] == CONTRADICTED and INCONSISTENT not in result["note"]


def test_evidence_carries_case_outcome_value_verdict_and_both_texts():
    run = [case("area/thing-lasts[ipv4]", {"thing.length_s": 104.4}, outcome="failed")]
    (result,) = verdicts(run, [_claim()])
    assert result["evidence"] == [{"case": "area/thing-lasts[ipv4]", "outcome": "failed", "value": 104.4,
                                   "verdict": False, "text": "the thing lasted 104.4 s",
                                   "observed": "measured by area/thing-lasts[ipv4]"}]
    assert "did not pass" in result["note"], "a failing case's measurement still counts, and the note says so"
    assert (result["id"], result["quote"], result["asserts"], result["observation"], result["cases"]) == (
        "about-60", "大约60秒 — about 60 s", "the thing lasts about 60 s", "thing.length_s", ["area/thing-lasts"])


def test_an_observation_from_a_case_the_claim_does_not_list_is_used_and_noted():
    (result,) = verdicts([case("area/elsewhere[ipv4]", {"thing.length_s": 60.0})], [_claim()])
    assert result["verdict"] == CONFIRMED
    assert "area/elsewhere[ipv4]" in result["note"]


def test_two_claims_can_share_one_observation():
    run = [case("close/x[ipv4]", {article.Key.CLOSE_ROLES: SERVER_FIRST})]
    by_id = {r["id"]: r for r in verdicts(run, [CLAIMS["close-wait-only-passive"], CLAIMS["client-passes-time-wait"]])}
    assert by_id["close-wait-only-passive"]["verdict"] == CONFIRMED
    assert by_id["client-passes-time-wait"]["verdict"] == CONTRADICTED


def test_verdicts_of_the_registry_cover_every_claim_and_are_json():
    run = [case("timers/orphaned-fin-wait1-blackholed-retransmits-until-orphan-retries-time[ipv4-retries1]",
                {article.Key.FIN_WAIT1_UNACKED_STATES: [E, FW1, GONE]}),
           case("time_wait/time-wait-timer-is-60s-whatever-tcp-fin-timeout[ipv4-1]",
                {article.Key.TIME_WAIT_LENGTH: 60.02})]
    results = verdicts(run)
    assert [r["id"] for r in results] == [c.id for c in all_claims()]
    by_id = {r["id"]: r["verdict"] for r in results}
    assert by_id["fin-wait1-unacked-goes-to-closed"] == CONFIRMED
    assert by_id["time-wait-lasts-2msl"] == CONTRADICTED
    assert by_id["fin-wait1-default-timeout-60s"] == UNDECIDED, "the slow case did not run: no measurement"
    assert json.loads(json.dumps(results)) == results
    for result in results:  # the shape reports/SCHEMA.md gives results["claims"]
        assert {"id", "quote", "asserts", "observation", "verdict", "note", "evidence"} <= set(result)
        assert result["verdict"] in (CONFIRMED, CONTRADICTED, UNDECIDED) and isinstance(result["note"], str)
        for ev in result["evidence"]:
            assert {"case", "outcome", "value", "verdict", "text"} <= set(ev) and ev["verdict"] in (True, False, None)


def test_register_refuses_a_second_claim_with_the_same_id():
    existing = all_claims()[0]
    assert register(existing) is existing
    with pytest.raises(ValueError, match="already registered"):
        register(_claim(id=existing.id))


def test_decide_must_answer_true_false_or_none():
    with pytest.raises(TypeError, match="not True, False or None"):
        judge(_claim(decide=lambda v: "yes"), 60.0)
