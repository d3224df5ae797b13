"""The anomaly rules on small hand-made matrices (docs/alerts.md states their arithmetic): no database.

A matrix row is one key's spend per hour; column HISTORY_H (192) is the first one a rule may judge,
its 8 days of history before it. Spends and rates are chosen exact in binary, so that "exactly at the
threshold" is exact.
"""

from __future__ import annotations

import math
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from cost_api.aggregation.aggregator import TokenDirectory
from cost_api.aggregation.groups import Groups, Vocab
from cost_api.aggregation.rollups import ceil_hour, floor_hour
from cost_api.config import Alerts
from cost_api.watch.anomalies import replay
from cost_api.watch.rules import (
    DAY_H,
    HISTORY_H,
    WEEK_H,
    Clock,
    Matrix,
    _matrix,
    burn_rate,
    enough_requests,
    hour_start,
    new_spender,
    spend_windows,
)
from cost_api.watch.storm import request_storm
from cost_api.windows import HOUR_MS, Range, epoch_ms

from ..aggregation.cells import cell, groups

CFG = Alerts(ratio=2.5, min_spend_per_hour=1.0, min_requests=3, min_requests_per_minute=60.0, dimensions=["endpoint"])
E = HISTORY_H  # the first column judged
F = 20_000 * 24  # the matrices' first hour (an epoch hour, for the storms' minutes)


def clock(columns: int, frac: float = 1.0) -> Clock:
    """Columns HISTORY_H … columns - 1 judged, the last at `frac` of its length."""
    return Clock(first=F, e0=E, last=columns - 1, frac=frac, end_minute=(F + columns) * 60, storm_from=0)


def judge(*rows: np.ndarray, frac: float = 1.0, cfg: Alerts = CFG, requests: float = 10.0) -> tuple[Any, Any]:
    """The spend rules over `rows`, each hour with `requests` requests."""
    s = np.array(rows, dtype=float)
    c = clock(s.shape[1], frac)
    windows = spend_windows(s, c)
    counts = spend_windows(np.full_like(s, requests), c)
    return burn_rate(windows, enough_requests(counts, cfg), cfg), new_spender(windows, counts[0], cfg, c)


def flat(value: float, columns: int = E + 1) -> np.ndarray:
    return np.full(columns, value, dtype=float)


# --------------------------------------------------------------------------- burn_rate


def test_burn_rate_holds_at_exactly_ratio_times_the_same_hour_of_the_7_days_before() -> None:
    s = flat(1.0)
    s[E] = 2.5  # R1 = 2.5 = 2.5 × B1; R24 = 25.5 / 24, about 1.06 × B24
    burn, new = judge(s)
    assert burn.holds.tolist() == [[True]]
    assert (burn.ratio[0, 0], burn.recent[0, 0], burn.baseline[0, 0]) == (2.5, 2.5, 1.0)
    assert burn.words(0, 0) == "$2.50/h over the last hour, 2.5× its baseline of $1.00/h"
    assert not new.holds.any()  # spend in the 7 days before


def test_burn_rate_below_the_ratio_does_not_hold() -> None:
    s = flat(1.0)
    s[E] = 2.5 - 1 / 64
    burn, _ = judge(s)
    assert burn.holds.tolist() == [[False]]


def test_burn_rate_needs_min_requests_in_its_window() -> None:
    s = flat(1.0)
    s[E] = 10.0  # 10× the hour's baseline; the 24 hours (33 / 24) only 1.4× theirs
    assert not judge(s, requests=2.0)[0].holds.any()  # 2 requests in the hour: under min_requests (3)
    assert judge(s, requests=3.0)[0].holds.tolist() == [[True]]
    s = flat(1.0, E + 24)
    s[E : E + 24] = 4.0  # a day at 4× its baseline, one request an hour: only the 24-hour window holds 3
    burn, _ = judge(s, requests=1.0)
    # the k-th hour's 24 hours: (4 (k + 1) + (23 − k)) / 24 ≥ 2.5 from k = 11
    assert burn.holds[0].tolist() == [False] * 11 + [True] * 13
    assert burn.words(0, 23) == "$4.00/h over the last 24 h, 4.0× its baseline of $1.00/h"


def test_burn_rate_compares_the_same_clock_hour_only() -> None:
    """A daily rhythm: the same hour was as high on each of the 7 days before."""
    s = flat(1.0)
    s[E - DAY_H * np.arange(1, 8)] = 4.0
    s[E] = 9.5  # 9.5 < 2.5 × 4; over 24 hours (23 + 9.5) / 24 ≈ 1.35 < 2.5 × B24 (≈ 1.13 × 2.5)
    burn, _ = judge(s)
    assert not burn.holds.any()
    s[E] = 10.0  # exactly 2.5 × 4
    burn, _ = judge(s)
    assert burn.holds.tolist() == [[True]] and burn.ratio[0, 0] == 2.5


def test_burn_rate_over_24_hours_at_exactly_the_ratio() -> None:
    """The last hour alone is no burn (2.5 < 2.5 × 2.0), the last 24 hours are: 2.5/h against the 168
    hours before them at 1.0/h on average."""
    s = flat(1.0)
    same_hour = E - DAY_H * np.arange(1, 8)  # B1's hours, within B24's: 2.0 each …
    s[same_hour] = 2.0
    s[same_hour - 1] = 0.0  # … and 7 other hours of B24 at 0: B24 stays 168 / 168
    s[E - 23 :] = 2.5
    burn, new = judge(s)
    assert burn.holds.tolist() == [[True]]
    assert (burn.recent[0, 0], burn.baseline[0, 0], burn.ratio[0, 0]) == (2.5, 1.0, 2.5)
    assert burn.words(0, 0) == "$2.50/h over the last 24 h, 2.5× its baseline of $1.00/h"
    assert not new.holds.any()
    s[E - 5] -= 0.25  # the 24 hours now spend 59.75 < 60
    burn, _ = judge(s)
    assert not burn.holds.any()


def test_burn_rate_reports_the_stronger_window_when_both_hold() -> None:
    s = flat(1.0)
    s[E - 23 :] = 3.0  # the whole day: R24 = 3.0, B24 = 1.0
    s[E] = 4.0  # the hour: R1 = 4.0, B1 = 1.0 (the stronger); R24 = 73 / 24
    burn, _ = judge(s)
    assert burn.holds.tolist() == [[True]]
    assert (burn.recent[0, 0], burn.ratio[0, 0]) == (4.0, 4.0)
    s[E] = 3.0  # both 3.0: the hour's is reported (the 24 hours' only when stronger)
    burn, _ = judge(s)
    assert "over the last hour" in burn.words(0, 0)


def test_a_zero_baseline_makes_an_infinite_ratio_held_on_the_floor_alone() -> None:
    s = flat(0.0)
    s[E] = 1.0  # exactly min_spend_per_hour
    burn, new = judge(s)
    assert burn.holds.tolist() == [[True]] and new.holds.tolist() == [[True]]
    assert math.isinf(burn.ratio[0, 0]) and math.isinf(new.ratio[0, 0])
    assert burn.baseline[0, 0] == 0.0
    assert burn.words(0, 0) == "$1.00/h over the last hour, nothing in its baseline"
    assert new.words(0, 0) == "$1.00 in the last hour, nothing in the 7 days before"


def test_spend_below_min_spend_per_hour_holds_nothing() -> None:
    new_key = flat(0.0)
    new_key[E] = 1.0 - 1 / 128  # against nothing
    burning = flat(0.125)
    burning[E - 23 :] = 0.875  # 7× its baseline, hour and day alike, but under $1 an hour
    burn, new = judge(new_key, burning)
    assert not burn.holds.any() and not new.holds.any()
    assert burn.ratio[1, 0] == 7.0
    cheap = Alerts(ratio=2.5, min_spend_per_hour=0.5)
    burn, new = judge(new_key, burning, cfg=cheap)
    assert burn.holds.tolist() == [[True], [True]] and new.holds.tolist() == [[True], [False]]


def test_no_spend_holds_nothing_even_without_a_floor() -> None:
    burn, new = judge(flat(0.0), cfg=Alerts(ratio=2.5, min_spend_per_hour=0.0))
    assert not burn.holds.any() and not new.holds.any()


def test_a_partial_last_hour_counts_the_hours_its_windows_cut_in_proportion() -> None:
    s = flat(1.0)
    s[E] = 2.0  # half an hour in: the last 60 minutes are it and half of the hour before
    burn, _ = judge(s, frac=0.5)
    assert (burn.recent[0, 0], burn.baseline[0, 0]) == (2.5, 1.0)  # 2.0 + 1.0 / 2; each baseline hour halved too
    assert burn.holds.tolist() == [[True]]
    burn, _ = judge(s, frac=1.0)  # the whole hour: 2.0 against 1.0
    assert burn.holds.tolist() == [[False]]


# --------------------------------------------------------------------------- new_spender


def test_new_spender_looks_exactly_168_hours_back() -> None:
    inside, outside = flat(0.0), flat(0.0)
    inside[E - WEEK_H] = 1 / 64  # 168 hours before: in the window
    outside[E - WEEK_H - 1] = 1 / 64  # 169 hours before: not
    for s in (inside, outside):
        s[E] = 2.0
    _, new = judge(inside, outside)
    assert new.holds.tolist() == [[False], [True]]


def test_new_spender_holds_for_one_hour_then_the_burn_against_nothing_goes_on() -> None:
    s = flat(0.0, E + 3)
    s[E:] = 2.0
    burn, new = judge(s)
    assert new.holds.tolist() == [[True, False, False]]
    assert burn.holds.tolist() == [[True, True, True]]
    assert np.isinf(burn.ratio).all()


# --------------------------------------------------------------------------- the first 8 days


class FakeAggregator:
    """What the replay reads: the log's bounds, hourly groups per dimension, no minutes."""

    def __init__(self, oldest_ms: int, cells: list[dict[str, Any]]) -> None:
        self.vocab = Vocab()
        self.oldest_ms = oldest_ms
        self.cells = cells
        self.minute_reads: list[tuple[int, int, int]] = []
        self.minutes: dict[tuple[int, str], int] = {}

    async def log_bounds(self) -> tuple[int | None, int | None]:
        return self.oldest_ms, None

    async def tokens(self) -> TokenDirectory:
        return TokenDirectory([])

    async def groups(self, rng: Range, *, dim: str | None = None, **_: Any) -> Groups:
        assert dim == "endpoint"
        h0, h1 = floor_hour(epoch_ms(rng.start)), ceil_hour(epoch_ms(rng.end))
        return groups(self.vocab, [c for c in self.cells if h0 <= c["slot"] < h1])

    async def minute_counts(self, start: datetime, end: datetime, dim: str, at_least: int) -> list[tuple[Any, ...]]:
        a, b = epoch_ms(start) // 60_000, epoch_ms(end) // 60_000
        self.minute_reads.append((a, b, at_least))
        return [(m, key, n) for (m, key), n in sorted(self.minutes.items()) if a <= m < b and n >= at_least]


def service(agg: FakeAggregator, cfg: Alerts = CFG) -> Any:
    return SimpleNamespace(aggregator=agg, settings=SimpleNamespace(alerts=cfg))


def episodes_of(found: list[Any]) -> list[tuple[Any, ...]]:
    return sorted((e.rule, e.key, e.started_at, e.ended_at, e.last.baseline_days, e.last.words) for e in found)


@pytest.mark.parametrize("minute", [0, 30])
async def test_a_young_log_is_judged_from_its_second_day(minute: int) -> None:
    """The log's first (maybe partial) hour is history for no rule; its first day has no baseline; from
    its second day the rules compare with the days it has."""
    start = F + 1  # the log's first whole hour
    spends = [
        cell(F, key="/steady", spend=4.0),  # the first hour: left out
        cell(start + 10, key="/early", spend=5.0, requests=3),  # new, but in the log's first day
        cell(start + 30, key="/second", spend=2.0, requests=3),  # new, on its second day
    ]
    agg = FakeAggregator(F * HOUR_MS + minute * 60_000, spends)
    end = hour_start(start + 40)
    found = await replay(service(agg), Range(hour_start(F), end), now=end)
    h = hour_start(start + 30), hour_start(start + 31)
    assert episodes_of(found) == [
        ("burn_rate", "/second", *h, 1,
         "$2.00/h over the last hour, nothing in its baseline (a young log: a baseline of 1 day)"),
        ("new_spender", "/second", *h, 1, "$2.00 in the last hour, nothing in the 1 day before"),
    ]  # fmt: skip
    assert not any(e.clipped for e in found)
    assert agg.minute_reads == []  # a few requests: no storm possible, no minute read


async def test_a_young_log_s_baselines_are_the_days_it_has() -> None:
    """$1 an hour for two days and a half; on the third day an hour at $4 (4× the mean of the same hour
    on the two days before) holds, one at $2 (2×) does not."""
    start = F + 1
    spends = [cell(start + h, key="/k", spend=1.0, requests=3) for h in range(60) if h not in (50, 55)]
    spends += [cell(start + 50, key="/k", spend=4.0, requests=3), cell(start + 55, key="/k", spend=2.0, requests=3)]
    agg = FakeAggregator(F * HOUR_MS, spends)  # the log begins with hour F: `start` is its first whole hour
    end = hour_start(start + 60)
    found = await replay(service(agg), Range(hour_start(start), end), now=end)
    assert episodes_of(found) == [
        ("burn_rate", "/k", hour_start(start + 50), hour_start(start + 51), 2,
         "$4.00/h over the last hour, 4.0× its baseline of $1.00/h (a young log: a baseline of 2 days)"),
    ]  # fmt: skip


async def test_a_spend_ceiling_holds_from_the_log_s_first_hour() -> None:
    start = F + 1
    cfg = Alerts(dimensions=["endpoint"], max_spend_per_hour={"endpoint": 50.0})
    agg = FakeAggregator(F * HOUR_MS, [cell(start, key="/big", spend=60.0), cell(start, key="/small", spend=40.0)])
    end = hour_start(start + 3)
    found = await replay(service(agg, cfg), Range(hour_start(start), end), now=end)
    assert episodes_of(found) == [
        ("spend_ceiling", "/big", hour_start(start), hour_start(start + 1), 0,
         "$60.00 in the last hour, at or over its ceiling of $50.00/h"),
    ]  # fmt: skip
    assert found[0].peak_ratio == 1.2 and found[0].extra == 60.0  # no baseline yet: all of it is extra


async def test_a_range_before_the_log_s_first_whole_hour_has_no_episode() -> None:
    agg = FakeAggregator(F * HOUR_MS, [cell(F, key="/k", spend=500.0)])
    end = hour_start(F + 1)  # the first judged hour has not begun
    assert await replay(service(agg), Range(hour_start(F), end), now=end) == []


# --------------------------------------------------------------------------- request_storm


def storm_matrix(requests: int) -> Matrix:
    """One endpoint, `requests` in the judged hour (spend 0: a storm costs nothing to notice)."""
    req = np.zeros((1, E + 1))
    req[0, E] = requests
    return Matrix("endpoint", ["/loop"], [None], np.zeros((1, E + 1)), req, {"/loop": 0})


async def storm(agg: FakeAggregator, requests: int) -> Any:
    m = storm_matrix(requests)
    c = clock(E + 1)
    return await request_storm(service(agg), m, TokenDirectory([]), c, spend_windows(m.spend, c), CFG)


def burst(agg: FakeAggregator, per_minute: int, days_before: int = 0, key: str = "/loop") -> None:
    """`per_minute` requests in minutes :10 … :14 of the judged hour, `days_before` days earlier."""
    start = (F + E) * 60 + 10 - days_before * 1440
    for m in range(start, start + 5):
        agg.minutes[(m, key)] = per_minute


async def test_request_storm_holds_at_exactly_ratio_times_the_same_minutes_of_the_7_days_before() -> None:
    agg = FakeAggregator(0, [])
    burst(agg, 120)
    for d in range(1, 8):
        burst(agg, 48, d)  # 120 = 2.5 × 48
    judged = await storm(agg, 600)
    assert judged.holds.tolist() == [[True]]
    assert judged.ratio[0, 0] == 2.5
    assert judged.words(0, 0) == "120 requests/min over 5 minutes, 2.5× its baseline of 48.0/min"


async def test_request_storm_below_the_ratio_does_not_hold() -> None:
    agg = FakeAggregator(0, [])
    burst(agg, 120)
    for d in range(1, 8):
        burst(agg, 49, d)
    assert (await storm(agg, 600)).holds.tolist() == [[False]]


async def test_request_storm_against_a_zero_baseline_holds_on_the_floor_alone() -> None:
    agg = FakeAggregator(0, [])
    burst(agg, 60)  # exactly min_requests_per_minute, nothing on the days before
    burst(agg, 500, days_before=8)  # 8 days before: outside the baseline
    judged = await storm(agg, 1000)
    assert judged.holds.tolist() == [[True]]
    assert math.isinf(judged.ratio[0, 0])
    assert judged.words(0, 0) == "60 requests/min over 5 minutes, nothing in its baseline"


async def test_request_storm_below_min_requests_per_minute_does_not_hold() -> None:
    agg = FakeAggregator(0, [])
    burst(agg, 59)
    judged = await storm(agg, 1000)  # the hour's requests allow a storm: its minutes are read
    assert not judged.holds.any()
    assert agg.minute_reads and all(at_least == 60 for *_, at_least in agg.minute_reads)


async def test_request_storm_reads_no_minute_where_the_hour_cannot_hold_one() -> None:
    agg = FakeAggregator(0, [])
    burst(agg, 1000)
    judged = await storm(agg, 5 * 60 - 1)  # fewer than 5 × min_requests_per_minute in two hours
    assert not judged.holds.any()
    assert agg.minute_reads == []


async def test_request_storm_counts_only_its_own_key() -> None:
    agg = FakeAggregator(0, [])
    burst(agg, 500, key="/other")  # not a row of the matrix
    judged = await storm(agg, 1000)
    assert not judged.holds.any()


# --------------------------------------------------------------------------- the matrices


def test_keys_shown_alike_are_one_row() -> None:
    vocab = Vocab()
    g = groups(
        vocab,
        [
            cell(F, key="pg_live_abcdefgh1", spend=1.0, requests=1),
            cell(F + 1, key="pg_live_abcdefgh2", spend=2.0, requests=2),  # the same 11-character prefix
            cell(F + 1, key=None, spend=4.0, requests=4),
        ],
    )
    m = _matrix("token", g, TokenDirectory([]), F, 3)
    assert m.labels == ["anonymous", "pg_live_abc…"]
    assert m.spend.tolist() == [[0.0, 4.0, 0.0], [1.0, 2.0, 0.0]]
    assert m.requests.tolist() == [[0, 4, 0], [1, 2, 0]]
    named = _matrix("token", g, TokenDirectory([("pg_live_abcdefgh1", "pg_live_abc", "ci")]), F, 3)
    assert named.names == [None, "ci"]


def test_the_model_dimension_labels_provider_slash_model() -> None:
    vocab = Vocab()
    g = groups(vocab, [cell(F, provider="openai", model="gpt-4o", spend=1.0), cell(F, provider="x", model="gpt-4o")])
    m = _matrix("model", g, TokenDirectory([]), F, 1)
    assert sorted(m.labels) == ["openai/gpt-4o", "x/gpt-4o"]
    assert m.spend[m.rows["openai/gpt-4o"]].tolist() == [1.0]


def test_new_spender_in_an_unfinished_hour_is_judged_over_its_elapsed_part() -> None:
    """A new key's spend in the last, unfinished hour all lies in its elapsed part: $0.30 in the first 15
    minutes is $1.20/h; the part is at least 15 minutes (one early call is no rate); 3 calls at least."""

    def new(spend: float, frac: float, calls: float) -> Any:
        s, q = flat(0.0), flat(0.0)
        s[E], q[E] = spend, calls
        c = clock(E + 1, frac)
        return new_spender(spend_windows(s[None, :], c), spend_windows(q[None, :], c)[0], CFG, c)

    held = new(0.3, 0.25, 3)
    assert held.holds.tolist() == [[True]] and held.recent[0, 0] == 1.2
    assert held.words(0, 0) == "$1.20/h over the hour's first 15 minutes ($0.30), nothing in the 7 days before"
    assert new(0.3, 0.1, 3).recent[0, 0] == 1.2  # 6 minutes in: judged over 15
    assert not new(0.3, 0.25, 2).holds.any()  # two calls
    assert not new(0.3, 0.5, 3).holds.any()  # $0.60/h over 30 minutes
    assert not new(0.3, 1.0, 3).holds.any()  # a whole hour: $0.30
    assert new(1.0, 1.0, 3).holds.tolist() == [[True]] and not new(1.0, 1.0, 2).holds.any()
