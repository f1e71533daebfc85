"""Kernel versions and kernel-keyed expectations: pure, no namespaces, no root.

Every KernelKeyed in the registry is picked on both sides of every boundary it declares (mainline `since`
and each stable backport), so a wrong key in fixtures/kernel_changes.py fails here, not on a lab kernel."""

from __future__ import annotations

import json

import pytest

import fixtures.kernel_changes as kc
from fixtures.versions import REGISTRY, Change, KernelKeyed, KernelVersion, Picked, Untestable

V = KernelVersion.of

# parsing -----------------------------------------------------------------------------------------------


def test_debian_upstream_version_comes_from_uname_v():
    kv = KernelVersion.parse("6.1.0-28-cloud-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)")
    assert (kv.major, kv.minor, kv.patch) == (6, 1, 119)
    assert kv.exact and "Debian 6.1.119" in kv.source and kv.release == "6.1.0-28-cloud-amd64"


def test_debian_backports_kernel():
    kv = KernelVersion.parse("6.1.0-0.deb11.26-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1~bpo11+1 (2024-10-04)")
    assert kv == V("6.1.112")


def test_plain_and_vendor_suffixed_releases():
    assert KernelVersion.parse("6.18.44-fc-v1045", "#1 SMP PREEMPT_DYNAMIC @0") == V("6.18.44")
    assert KernelVersion.parse("4.19.0") == V("4.19.0")
    assert KernelVersion.parse("4.19.0").exact
    assert KernelVersion.parse("5.10") == V("5.10.0")
    assert KernelVersion.parse("6.6.30-rt30+") == V("6.6.30")


def test_ubuntu_has_no_upstream_patch_so_release_is_used_and_marked_inexact():
    kv = KernelVersion.parse("5.15.0-91-generic", "#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023")
    assert kv == V("5.15.0") and not kv.exact


def test_debian_release_without_uname_v_is_inexact():
    assert not KernelVersion.parse("6.1.0-28-amd64").exact


def test_debian_in_uname_v_of_another_series_is_ignored():
    # a kernel built elsewhere can carry a builder's string; only a matching X.Y series is trusted
    assert KernelVersion.parse("6.6.30", "#1 SMP Debian 6.1.119-1 (2024-11-22)") == V("6.6.30")


@pytest.mark.parametrize("bad", ["", "linux", "v6.1", "6"])
def test_unreadable_release_is_an_error(bad):
    with pytest.raises(ValueError):
        KernelVersion.parse(bad)


def test_versions_compare_numerically_not_by_text():
    assert V("5.4.251") > V("5.4.250") > V("5.4.99") > V("4.19.291")
    assert V("5.10") > V("5.9.99")
    assert KernelVersion.parse("6.1.0-28-amd64", "#1 Debian 6.1.119-1") == V("6.1.119")  # source not compared
    assert sorted([V("6.1"), V("4.19.290"), V("5.8")]) == [V("4.19.290"), V("5.8"), V("6.1")]
    assert str(V("5.8")) == "5.8.0" and V("5.4.251").series == (5, 4)


def test_running_reads_os_uname(monkeypatch):
    class Uname:
        release = "6.1.0-28-cloud-amd64"
        version = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)"

    monkeypatch.setattr("fixtures.versions.os.uname", lambda: Uname)
    assert KernelVersion.running() == V("6.1.119")


# the keyed-expectation mechanism ------------------------------------------------------------------------

LINGER2_LIKE = [Change("5.8", "new", "f0628c524fd1", "t", backports=("5.4.251", "4.19.291"))]


def test_pick_mainline_backport_and_other_series():
    data = KernelKeyed("t-linger2", "old", LINGER2_LIKE, register=False)
    assert data.pick(V("5.8")).value == "new"
    assert data.pick(V("5.7.19")).value == "old"
    assert data.pick(V("5.4.251")).value == "new"
    assert data.pick(V("5.4.250")).value == "old"
    assert data.pick(V("5.5.251")).value == "old", "a backport holds only in its own series"
    assert data.pick(V("5.3.300")).value == "old"
    assert data.pick(V("4.19.291")).value == "new"
    assert data.pick(V("4.20.0")).value == "old"


def test_key_text_reads_as_the_boundary():
    data = KernelKeyed("t-text", "old", LINGER2_LIKE, register=False)
    new = data.pick(V("6.1.119"))
    assert new.key_text == "from 5.8 (f0628c524fd1), and 5.4.251+ in 5.4.y, 4.19.291+ in 4.19.y"
    assert new.matched == "mainline 5.8" and new.commit == "f0628c524fd1"
    old = data.pick(V("5.4.250"))
    assert old.key_text == "before 5.8 (f0628c524fd1), and before 5.4.251 in 5.4.y, before 4.19.291 in 4.19.y"
    assert old.matched is None
    assert data.pick(V("5.4.251")).matched == "backport 5.4.251"
    plain = KernelKeyed("t-plain", 0, [Change("4.4", 1, "079096f103fa", "t")], register=False)
    assert plain.pick(V("4.3.9")).key_text == "before 4.4 (079096f103fa)"


def test_later_change_wins_and_backports_of_each_change_are_separate():
    data = KernelKeyed("t-chain", "a", [Change("5.0", "b", "aaaaaaaaaaaa", "b"),
                                        Change("6.0", "c", "bbbbbbbbbbbb", "c", backports=("5.15.70",))],
                       register=False)
    assert [data.pick(V(v)).value for v in ("4.20.9", "5.0", "5.15.69", "5.15.70", "5.19.9", "6.0")] == \
        ["a", "b", "b", "c", "b", "c"]


def test_inexact_version_notes_an_unknown_backport():
    data = KernelKeyed("t-inexact", "old", LINGER2_LIKE, register=False)
    picked = data.pick(KernelVersion.parse("5.4.0-150-generic", "#167-Ubuntu SMP"))
    assert picked.value == "old" and "5.4.y" in picked.note
    assert data.pick(KernelVersion.parse("5.15.0-91-generic")).note == ""  # no backport decides 5.15


def test_picked_as_dict_is_json_evidence():
    picked = kc.TCP_LINGER2_LIMIT.pick(V("6.1.119"))
    record = json.loads(json.dumps(picked.as_dict()))
    assert record["name"] == "tcp_linger2_limit" and record["kernel"] == "6.1.119"
    assert record["commit"] == "f0628c524fd1" and record["matched"] == "mainline 5.8"
    assert record["value"]["limit"] == "TCP_FIN_TIMEOUT_MAX" and "clamped" in record["value"]["describe"]
    assert str(picked).startswith("from 5.8 (f0628c524fd1)")
    skip = json.loads(json.dumps(kc.TCP_RTO_MIN_US_SYSCTL.pick(V("6.10.14")).as_dict()))
    assert skip["value"] == {"untestable": "net.ipv4.tcp_rto_min_us is absent before 6.11"}


def test_untestable_pick_skips_with_its_reason():
    picked = kc.TCP_RTO_MIN_US_SYSCTL.pick(V("6.6.30"))
    assert picked.untestable
    with pytest.raises(pytest.skip.Exception, match=r"absent before 6\.11"):
        picked.testable_or_skip()
    assert kc.TCP_RTO_MIN_US_SYSCTL.pick(V("6.11")).testable_or_skip() == "net.ipv4.tcp_rto_min_us"


def test_registry_rejects_a_duplicate_name():
    with pytest.raises(ValueError, match="already defined"):
        KernelKeyed("tcp_linger2_limit", "x", [Change("5.8", "y", "f0628c524fd1", "t")])


@pytest.mark.parametrize(("changes", "match"), [
    ([], "at least one"),
    ([Change("6.0", 1, "aaaaaaaaaaaa", "a"), Change("5.0", 2, "bbbbbbbbbbbb", "b")], "oldest first"),
    ([Change("6.0", 1, "aaaaaaaaaaaa", "a"), Change("6.0", 2, "bbbbbbbbbbbb", "b")], "oldest first"),
])
def test_bad_change_lists_are_rejected(changes, match):
    with pytest.raises(ValueError, match=match):
        KernelKeyed("t-bad", 0, changes, register=False)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(since="5.8", backports=("5.8.3",)), "not older than mainline"),
    (dict(since="5.8", backports=("5.10.3",)), "not older than mainline"),
    (dict(since="5.8", backports=("5.4",)), "stable release"),
    (dict(since="5.8", backports=("5.4.1", "5.4.9")), "two backports"),
    (dict(since="five"), "not a kernel version"),
    (dict(since="5.8", commit="HEAD"), "commit"),
])
def test_bad_changes_are_rejected(kwargs, match):
    args = dict(value=1, commit="f0628c524fd1", title="t") | kwargs
    with pytest.raises(ValueError, match=match):
        Change(**args)


# every registered expectation, on both sides of every boundary ------------------------------------------


def just_below(v: KernelVersion) -> KernelVersion:
    """The largest version below v (synthetic patch levels stand for "the last release of that series")."""
    if v.patch:
        return KernelVersion(v.major, v.minor, v.patch - 1)
    if v.minor:
        return KernelVersion(v.major, v.minor - 1, 9999)
    return KernelVersion(v.major - 1, 9999, 9999)


def change_index(keyed: KernelKeyed, picked: Picked) -> int:
    """Which change a pick came from: -1 for `before`."""
    if picked.matched is None:
        assert picked.value is keyed.before
        return -1
    i = next(i for i, c in enumerate(keyed.changes) if picked.commit == c.commit and picked.value is c.value)
    assert picked.key_text == keyed.changes[i].from_text()
    return i


def boundary_cases(keyed: KernelKeyed):
    """(version, index of the change expected at it) on each side of every boundary the data declares.
    Computed from the data's boundaries directly: mainline `since` holds for every later kernel, a
    backport only within its own series."""
    def expected(kv: KernelVersion) -> int:
        idx = -1
        for i, c in enumerate(keyed.changes):
            bp = next((b for b in c.backports if V(b).series == kv.series), None)
            if kv >= V(c.since) or (bp is not None and kv.patch >= V(bp).patch):
                idx = i
        return idx

    cases = set()
    for c in keyed.changes:
        since = V(c.since)
        cases |= {just_below(since), since, KernelVersion(since.major, since.minor, 1)}
        for b in c.backports:
            bp = V(b)
            cases |= {just_below(bp), bp, KernelVersion(bp.major, bp.minor, bp.patch + 100)}
            # the same patch level in the neighbouring series: the backport must not leak there
            cases |= {KernelVersion(bp.major, bp.minor + 1, bp.patch), KernelVersion(bp.major, bp.minor - 1, bp.patch)}
    return sorted((kv, expected(kv)) for kv in cases)


ENTRIES = sorted(REGISTRY)


def test_registry_holds_the_catalogue_entries():
    assert {"tcp_linger2_limit", "request_sock_on_listener_close", "challenge_ack_limit",
            "challenge_ack_count_per_netns", "tcp_rto_min_us_sysctl"} <= set(REGISTRY)
    assert all(not name.startswith("t-") for name in REGISTRY), "tests must not leave entries behind"


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_switches_exactly_at_its_boundaries(name):
    keyed = REGISTRY[name]
    for kv, want in boundary_cases(keyed):
        picked = keyed.pick(kv)
        assert change_index(keyed, picked) == want, f"{name} at {kv}: {picked.key_text}"
        want_value = keyed.before if want < 0 else keyed.changes[want].value
        assert picked.value is want_value
        assert picked.kernel == kv and json.dumps(picked.as_dict())


@pytest.mark.parametrize("name", ENTRIES)
def test_every_change_is_new_at_since_and_old_just_below(name):
    keyed = REGISTRY[name]
    for i, c in enumerate(keyed.changes):
        since = V(c.since)
        assert change_index(keyed, keyed.pick(since)) >= i
        below = just_below(since)
        if not any(V(b).series == below.series for ch in keyed.changes for b in ch.backports):
            assert change_index(keyed, keyed.pick(below)) == i - 1, f"{name}: {below} is before {c.since}"
        for b in c.backports:
            bp = V(b)
            assert change_index(keyed, keyed.pick(bp)) == i, f"{name}: {b} has the backport"
            assert change_index(keyed, keyed.pick(just_below(bp))) == i - 1, f"{name}: {just_below(bp)} has not"


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_is_documented(name):
    keyed = REGISTRY[name]
    assert keyed.reference
    for c in keyed.changes:
        assert c.title and len(c.commit) >= 12


# TCP_LINGER2 ------------------------------------------------------------------------------------------

OLD, NEW = kc.LINGER2_LIMITED_BY_FIN_TIMEOUT, kc.LINGER2_CLAMPED_TO_MAX


@pytest.mark.parametrize(("kernel", "rule"), [
    ("5.4.250", OLD), ("5.4.251", NEW), ("5.4.302", NEW), ("5.7.19", OLD), ("5.8.0", NEW), ("6.1.119", NEW),
    ("4.19.289", OLD), ("4.19.290", OLD), ("4.19.291", NEW), ("4.14.336", OLD), ("5.5.19", OLD),
])
def test_tcp_linger2_era_by_kernel(kernel, rule):
    assert kc.TCP_LINGER2_LIMIT.pick(V(kernel)).value is rule


def test_tcp_linger2_era_for_a_debian_kernel():
    kv = KernelVersion.parse("6.1.0-28-cloud-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)")
    assert kc.TCP_LINGER2_LIMIT.pick(kv).value is NEW


@pytest.mark.parametrize(("rule", "requested", "fin_timeout", "readback", "lifetime"), [
    # old: the sysctl is the limit; above it linger2 = 0, read back (and lived) as tcp_fin_timeout
    (OLD, 1, 3, 1, 1),
    (OLD, 3, 3, 3, 3),
    (OLD, 2, 1, 1, 1),
    (OLD, 90, 60, 60, 60),
    (OLD, 1000, 60, 60, 60),
    (OLD, 0, 60, 60, 60),
    (OLD, -1, 60, -1, None),
    # new: TCP_FIN_TIMEOUT_MAX (120 s) is the limit, whatever the sysctl
    (NEW, 1, 3, 1, 1),
    (NEW, 2, 1, 2, 2),
    (NEW, 90, 60, 90, 90),
    (NEW, 120, 60, 120, 120),
    (NEW, 1000, 60, 120, 120),
    (NEW, 1000, 200, 120, 120),
    (NEW, 0, 60, 60, 60),
    (NEW, -1, 60, -1, None),
])
def test_tcp_linger2_model(rule, requested, fin_timeout, readback, lifetime):
    assert rule.readback_s(requested, fin_timeout) == readback
    assert rule.fin_wait2_s(requested, fin_timeout) == lifetime


def test_challenge_ack_defaults_and_isolation():
    before = kc.CHALLENGE_ACK_LIMIT.pick(V("5.19.17")).value
    after = kc.CHALLENGE_ACK_LIMIT.pick(V("6.0")).value
    assert (before.default_limit, before.counter_scope) == (1000, "host")
    assert (after.default_limit, after.counter_scope) == (2**31 - 1, "netns")
    assert isinstance(kc.CHALLENGE_ACK_COUNT_PER_NETNS.pick(V("5.15.170")).value, Untestable)
    assert not kc.CHALLENGE_ACK_COUNT_PER_NETNS.pick(V("6.1.119")).untestable
