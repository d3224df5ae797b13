"""The forecast method (cost_api/watch/forecast.py) on hand-made hourly series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cost_api.watch.forecast import DEFAULT_SCATTER, LEVEL_SHARE, MIN_SCATTER, WEEK_HOURS, Z80, fit, projection

HOUR = 3_600_000
MONDAY = 96  # epoch hour 96 is 1970-01-05T00:00Z, a Monday: hour of the week 96 % 168 = 96


def weeks(pattern: list[float], n: int) -> np.ndarray:
    return np.tile(np.asarray(pattern, dtype=float), n)


def test_hour_of_week_profile_and_its_sums() -> None:
    """Four weeks of $1 an hour on weekdays and nothing at weekends: the profile is that week."""
    week = [1.0] * 120 + [0.0] * 48  # Monday 00:00 to Friday 24:00, then the weekend
    p = fit(weeks(week, 4), MONDAY)
    assert p.rate[MONDAY % WEEK_HOURS] == 1.0
    assert p.rate[(MONDAY + 120) % WEEK_HOURS] == 0.0  # Saturday 00:00
    start = (MONDAY + 4 * WEEK_HOURS) * HOUR  # the Monday after
    assert p.ahead(start, start + WEEK_HOURS * HOUR) == 120.0
    assert p.ahead(start + HOUR // 4, start + 2 * HOUR) == 1.75  # cut hours pro rata
    assert p.ahead(start + 120 * HOUR, start + 168 * HOUR) == 0.0
    assert p.scatter == MIN_SCATTER  # workdays exactly as expected; weekend days (0 spent) left out


def test_the_level_follows_the_last_week() -> None:
    """Three weeks at $1 an hour, the last at $2: profile $1.25, level 2 ÷ 1.25 = 1.6, so $2 an hour."""
    series = np.concatenate([np.full(3 * WEEK_HOURS, 1.0), np.full(WEEK_HOURS, 2.0)])
    p = fit(series, MONDAY)
    assert np.allclose(p.rate, 2.0)


def test_only_the_last_four_weeks_count() -> None:
    series = np.concatenate([np.full(WEEK_HOURS, 100.0), np.full(4 * WEEK_HOURS, 1.0)])
    assert np.allclose(fit(series, MONDAY).rate, 1.0)


def test_too_little_history() -> None:
    assert not fit(np.full(23, 5.0), MONDAY).rate.any()  # less than a day: nothing projected
    two_days = fit(np.full(48, 0.5), MONDAY)
    assert np.allclose(two_days.rate, 0.5)  # hours of the week not seen take the mean
    assert two_days.scatter == DEFAULT_SCATTER  # fewer than 7 days to measure it


def test_scatter_of_days() -> None:
    """Days alternating $12 and $36 (every hour of the week sees both twice): the profile is flat at
    the last week's mean hour, and the scatter is the spread of log(day ÷ that day's expectation)."""
    days = np.repeat([0.5, 1.5] * 14, 24)  # 28 days; each hour of the week sees 0.5 and 1.5 twice
    p = fit(days, MONDAY)
    last = days[-WEEK_HOURS:].sum() / WEEK_HOURS
    assert np.allclose(p.rate, last)
    ratios = np.log(np.array([0.5, 1.5] * 14) / last)
    assert p.scatter == pytest.approx(float(np.std(ratios)))


def test_band_and_projection() -> None:
    p = fit(np.full(4 * WEEK_HOURS, 1.0), MONDAY)
    sd = math.sqrt(MIN_SCATTER**2 / 10 + (LEVEL_SHARE * MIN_SCATTER) ** 2)  # 240 hours: 10 days
    low, high = p.band(240.0, 240)
    assert (low, high) == pytest.approx((240 * math.exp(-Z80 * sd), 240 * math.exp(Z80 * sd)))
    assert p.band(0.0, 10) == (0.0, 0.0)
    now = (MONDAY + 4 * WEEK_HOURS) * HOUR + HOUR // 2
    # $5 spent, limit $10: $5 more takes 5 hours at $1 an hour
    assert projection(p, 5.0, 10.0, now, now + 10 * HOUR) == (15.0, now + 5 * HOUR)
    assert projection(p, 5.0, 100.0, now, now + 10 * HOUR) == (15.0, None)  # not before the end
    assert projection(p, 12.0, 10.0, now, now + 10 * HOUR) == (22.0, None)  # reached already
