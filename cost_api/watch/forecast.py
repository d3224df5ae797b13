"""The forecast method: what the rest of a calendar period will cost, with an 80% band (pure numpy).

`fit` learns a `Profile` from up to four weeks of hourly spend before now: the mean spend of each
UTC hour of the week (168 of them) over those weeks, scaled to the recent level (the last 7 days'
spend ÷ what the profile expected of them), and how far single days stray from it. `Profile.ahead`
sums the profile over any span ahead; `Profile.band` widens the expectation of a span into its 80%
band: the day-to-day scatter averages out over a long span, the level's own error does not.
`Profile.exceeds` finds when a running total crosses a limit. `hourly_history` reads, over
`history_range`, what the budget tracker fits one profile per budget from (its projections).
docs/forecast.md describes the method and its backtest (bench/forecast.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from cost_api.aggregation.aggregator import Aggregator, Filters, TokenDirectory
from cost_api.windows import HOUR_MS, Range, epoch_ms, from_ms

WEEK_HOURS = 168
HISTORY_HOURS = 4 * WEEK_HOURS  # the profile's history: the last four weeks
RECENT_HOURS = WEEK_HOURS  # the level: the last week against the profile
Z80 = 1.2815515655446004  # the normal quantile of 90%: a central 80% band
# The level's error relative to the day scatter (σ_level = LEVEL_SHARE × σ_day), and the scatter assumed
# with too little history to measure it: both set by the backtest (docs/forecast.md).
LEVEL_SHARE = 1.5
DEFAULT_SCATTER = 0.3
MIN_SCATTER = 0.05


@dataclass(frozen=True, slots=True)
class Profile:
    """Expected spend per hour ahead, by UTC hour of the week (`rate[epoch_hour % 168]`: epoch hour 0
    was a Thursday, the index needs no calendar), and the log-scatter of a day's spend around it."""

    rate: np.ndarray  # float64[168], USD per hour
    scatter: float

    def ahead(self, start_ms: int, end_ms: int) -> float:
        """The expected spend over [start_ms, end_ms): whole hours at their rate, cut hours pro rata."""
        if end_ms <= start_ms:
            return 0.0
        first, last = start_ms // 3_600_000, (end_ms - 1) // 3_600_000
        hours = np.arange(first, last + 1)
        weight = np.ones(len(hours))
        weight[0] -= (start_ms - first * 3_600_000) / 3_600_000
        weight[-1] -= ((last + 1) * 3_600_000 - end_ms) / 3_600_000
        return float(np.dot(self.rate[hours % WEEK_HOURS], weight))

    def band(self, expected: float, hours: float) -> tuple[float, float]:
        """The 80% band of a span of `hours` whose expected spend is `expected`."""
        if expected <= 0 or hours <= 0:
            return 0.0, 0.0
        days = max(hours / 24, 1.0)
        sd = math.sqrt(self.scatter**2 / days + (LEVEL_SHARE * self.scatter) ** 2)
        return expected * math.exp(-Z80 * sd), expected * math.exp(Z80 * sd)

    def exceeds(self, spent: float, limit: float, now_ms: int, end_ms: int) -> int | None:
        """The epoch ms at which `spent` plus the expected spend from `now_ms` on reaches `limit`,
        if before `end_ms` (the hour it does, pro rata within it); None if it does not."""
        if spent >= limit:
            return now_ms
        if end_ms <= now_ms:
            return None
        inner = np.arange(now_ms // 3_600_000 + 1, -(-end_ms // 3_600_000)) * 3_600_000  # hour starts between
        edges = np.concatenate(([now_ms], inner, [end_ms]))
        hours = edges[:-1] // 3_600_000
        per = self.rate[hours % WEEK_HOURS] * np.diff(edges) / 3_600_000
        running = spent + np.cumsum(per)
        crossed = np.flatnonzero(running >= limit)
        if not len(crossed):
            return None
        i = int(crossed[0])
        before = running[i] - per[i]
        share = (limit - before) / per[i] if per[i] > 0 else 0.0
        return int(edges[i] + share * (edges[i + 1] - edges[i]))


def projection(profile: Profile, spent: float, limit: float, at_ms: int, end_ms: int) -> tuple[float, int | None]:
    """A budget's projected spend at `end_ms` (`spent` by `at_ms`, plus what the profile expects), and
    the instant it reaches `limit` (None: not before `end_ms`, or reached already)."""
    projected = spent + profile.ahead(at_ms, end_ms)
    return projected, None if spent >= limit else profile.exceeds(spent, limit, at_ms, end_ms)


def fit(hourly: np.ndarray, first_hour: int) -> Profile:
    """The profile of `hourly` (spend per UTC hour, the first one epoch hour `first_hour`, the last one
    the hour before now): its last HISTORY_HOURS count. Less than a day of history projects nothing
    (a rate of 0: too little to tell a rhythm from a burst); hours of the week not seen yet take the
    mean of those seen."""
    hourly = np.asarray(hourly, dtype=np.float64)
    if len(hourly) > HISTORY_HOURS:
        first_hour += len(hourly) - HISTORY_HOURS
        hourly = hourly[-HISTORY_HOURS:]
    n = len(hourly)
    if n < 24:
        return Profile(np.zeros(WEEK_HOURS), DEFAULT_SCATTER)
    how = (first_hour + np.arange(n)) % WEEK_HOURS
    sums = np.bincount(how, weights=hourly, minlength=WEEK_HOURS)
    seen = np.bincount(how, minlength=WEEK_HOURS)
    mean = float(hourly.mean())
    rate = np.where(seen > 0, sums / np.maximum(seen, 1), mean)
    expected = rate[how]
    recent = slice(max(0, n - RECENT_HOURS), n)
    base = float(expected[recent].sum())
    level = float(hourly[recent].sum()) / base if base > 0 else 1.0
    return Profile(rate * level, _scatter(hourly, expected * level))


def _scatter(actual: np.ndarray, expected: np.ndarray) -> float:
    """The standard deviation of log(actual day ÷ expected day) over the whole days of the history
    (days with nothing expected or nothing spent left out); DEFAULT_SCATTER with fewer than 7."""
    days = len(actual) // 24
    if days < 7:
        return DEFAULT_SCATTER
    cut = len(actual) - days * 24  # whole days, ending with the last hour
    a = actual[cut:].reshape(days, 24).sum(axis=1)
    e = expected[cut:].reshape(days, 24).sum(axis=1)
    ok = (a > 0) & (e > 0)
    if ok.sum() < 7:
        return DEFAULT_SCATTER
    return max(float(np.std(np.log(a[ok] / e[ok]))), MIN_SCATTER)


async def history_range(agg: Aggregator, now: datetime) -> Range | None:
    """The whole hours a profile is fitted from: the four weeks (at most) of the log before `now`."""
    hour_now = epoch_ms(now) // HOUR_MS
    oldest = (await agg.log_bounds())[0]
    first = max(hour_now - HISTORY_HOURS, hour_now if oldest is None else oldest // HOUR_MS)
    return None if first >= hour_now else Range(from_ms(first * HOUR_MS), from_ms(hour_now * HOUR_MS))


async def hourly_history(
    agg: Aggregator, rng: Range, dim: str, filters: Filters, directory: TokenDirectory | None = None
) -> dict[str, np.ndarray]:
    """The spend per hour of `rng` (whole hours) of each `dim` value (an endpoint, a token id, a tag
    value): one read of the aggregator's hourly groups."""
    first, hours = epoch_ms(rng.start) // HOUR_MS, (epoch_ms(rng.end) - epoch_ms(rng.start)) // HOUR_MS
    groups = (await agg.groups(rng, filters=filters, directory=directory, dim=dim)).counted()
    hour = groups.slot_starts() // HOUR_MS - first
    out: dict[str, np.ndarray] = {}
    for code in np.unique(groups.key).tolist():
        mine = groups.key == code
        out[str(agg.vocab.value(code))] = np.bincount(hour[mine], weights=groups.spend[mine], minlength=hours)
    return out
