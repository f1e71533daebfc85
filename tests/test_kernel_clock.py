"""fixtures/kernel_clock.py: the jiffies / HZ second a scenario acts in, and the proof that it stayed inside it."""

from __future__ import annotations

import time

import pytest

from fixtures.kernel_clock import JiffiesClock, JiffiesSample, hz_between, sample

OFFSET = 1_700_000_000.0  # CLOCK_REALTIME - CLOCK_MONOTONIC in these samples


def at(mono_s: float, jiffies: int) -> JiffiesSample:
    return JiffiesSample(mono_s, jiffies, OFFSET)


@pytest.mark.parametrize(("ticks", "hz"), [(10, 100), (24, 250), (26, 250), (30, 300), (99, 1000)])
def test_the_tick_rate_is_the_nearest_config_hz(ticks, hz):
    assert hz_between(at(100.0, 5000), at(100.1, 5000 + ticks)) == hz


def test_a_second_holds_what_fell_inside_it_and_nothing_else():
    clock = JiffiesClock(250)
    second = clock.second_of(at(100.0, 250 * 40 + 10))  # 10 ticks into the second 40
    assert second.value == 40
    # 240 ticks (0.96 s) are left at most; one of them may have begun just before the read, two may be owed
    assert second.ends_not_before_mono_s == pytest.approx(100.0 + 237 / 250)
    inside = [OFFSET + 100.0, OFFSET + 100.5, OFFSET + 100.9]
    assert second.holds(inside)
    assert not second.holds([*inside, OFFSET + 100.96]), "one RST after the second may have ended"
    assert not second.holds([OFFSET + 99.99, *inside]), "one RST before the second was seen to begin"
    assert not second.holds([]), "no evidence is not a proof"


def test_a_fresh_second_on_this_kernel_has_begun_and_does_not_end_before_its_bound():
    clock = JiffiesClock.measure()
    second = clock.fresh_second()
    assert 0 < second.seen.jiffies - second.value * clock.hz < clock.hz // 2
    while (now := sample()).jiffies // clock.hz == second.value:
        time.sleep(0.002)
    assert now.mono_s >= second.ends_not_before_mono_s
