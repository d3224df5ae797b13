"""GET /v1/forecast — the current calendar period: spend so far, the projected total and its 80% band.

One read of priced groups (the rollups, warm) covers the period so far and the four weeks before
now; the method (cost_api/watch/forecast.py, docs/forecast.md) projects each key's rest of the
period from its own hourly history, and the total from the total's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from msgspec import Meta

from cost_api.aggregation.aggregator import Aggregator, Filters, dimension
from cost_api.aggregation.blocks import (
    AsOf,
    Block,
    DataQuality,
    GroupByName,
    Instant,
    Keyed,
    LatestRequestAt,
    Money,
    PricingCoverage,
    TimeRange,
    data_quality,
    money,
    pricing_coverage,
    time_range,
)
from cost_api.errors import BadParameter
from cost_api.lenses.trend import key_codes
from cost_api.watch.budgets import period_at
from cost_api.watch.forecast import HISTORY_HOURS, Profile, fit
from cost_api.windows import HOUR_MS, Range, buckets, epoch_ms, from_ms, iso, slot_ms

GROUP_BY = ("provider", "endpoint", "token", "model", "tag")
PeriodKind = Literal["day", "week", "month"]
PERIODS: tuple[PeriodKind, ...] = ("day", "week", "month")
Low = Annotated[Money, Meta(description="the 80% band's lower end")]
High = Annotated[Money, Meta(description="the 80% band's upper end")]


class ForecastDay(Block):
    """One local day of the period: what it spent so far and what it is projected to end at."""

    t: Annotated[Instant, Meta(description="the local day's start, as a UTC instant")]
    date: Annotated[str | None, Meta(description="the local date, YYYY-MM-DD")]
    spend: Annotated[Money, Meta(description="spent so far (0 for days ahead)")]
    projected: Money
    low: Low
    high: High


class ForecastItem(Keyed, kw_only=True):
    """One key: spent so far in the period, the projected total at its end and the band."""

    spend: Money
    projected: Money
    low: Low
    high: High


class ForecastOthers(Block):
    """The keys past `limit`, summed."""

    count: int
    spend: Money
    projected: Money


class Forecast(Block):
    """GET /v1/forecast."""

    period: PeriodKind
    tz: str
    range: Annotated[TimeRange, Meta(description="the whole current period")]
    history: Annotated[TimeRange, Meta(description="the hours the projection learnt from")]
    group_by: GroupByName | None
    currency: Literal["USD"]
    spend: Annotated[Money, Meta(description="spent from the period's start to as_of")]
    projected: Annotated[Money, Meta(description="spend + the expected spend of the rest of the period")]
    low: Low
    high: High
    band_pct: Annotated[int, Meta(description="the band's nominal coverage")]
    days: list[ForecastDay]
    items: list[ForecastItem]
    others: ForecastOthers | None
    pricing: PricingCoverage
    data_quality: DataQuality
    as_of: AsOf
    latest_request_at: LatestRequestAt


def _projected(profile: Profile, spent: float, now_ms: int, end_ms: int) -> tuple[float, float, float]:
    """(projected, low, high) of a total that has spent `spent` by `now_ms` and ends at `end_ms`."""
    expected = profile.ahead(now_ms, end_ms)
    low, high = profile.band(expected, (end_ms - now_ms) / HOUR_MS)
    return spent + expected, spent + low, spent + high


async def forecast_answer(
    agg: Aggregator, *, period: str, tz: ZoneInfo, group_by: str | None, limit: int, filters: Filters
) -> Forecast:
    if period not in PERIODS:
        raise BadParameter("period", f"expected day, week or month; got {period!r}")
    dim = dimension(group_by, GROUP_BY) if group_by is not None else None
    now = agg.now()
    span = period_at(period, now, tz)
    if not span.start < span.end or not span.start <= now:
        raise BadParameter("period", f"the {period} holding {iso(now)} in {tz.key} has no unambiguous start and end")
    now_ms, start_ms, end_ms = epoch_ms(now), epoch_ms(span.start), epoch_ms(span.end)
    oldest = (await agg.log_bounds())[0]
    hour_now = now_ms // HOUR_MS
    first_hour = max(hour_now - HISTORY_HOURS, (oldest if oldest is not None else now_ms) // HOUR_MS)
    rng = Range(from_ms(min(start_ms, first_hour * HOUR_MS)), now)
    directory = await agg.tokens()
    groups = await agg.groups(
        rng, filters=filters, directory=directory, dim=dim.dim if dim else None, slot_ms=slot_ms(tz, rng)
    )
    fresh = await agg.freshness()
    counted = groups.counted()
    starts = counted.slot_starts()
    keys: list[tuple[str, dict[str, Any]]] = [("total", {})]
    codes = np.zeros(len(counted), dtype=np.int64)
    if dim is not None:
        codes, keys = key_codes(counted, dim, directory) if len(counted) else (np.zeros(0, dtype=np.int64), [])
    n, hours = len(keys), hour_now - first_hour
    in_period = starts >= start_ms
    spent = np.bincount(codes[in_period], weights=counted.spend[in_period], minlength=n)
    hour = starts // HOUR_MS - first_hour
    past = (hour >= 0) & (hour < hours)
    flat = np.bincount(codes[past] * hours + hour[past], weights=counted.spend[past], minlength=n * hours)
    hourly = flat.reshape(n, hours)
    total_profile = fit(hourly.sum(axis=0), first_hour)
    total = _projected(total_profile, float(spent.sum()), now_ms, end_ms)
    rows = []
    for k, (_, fields) in enumerate(keys):
        figures = _projected(fit(hourly[k], first_hour), float(spent[k]), now_ms, end_ms)
        rows.append((fields, float(spent[k]), figures))
    rows.sort(key=lambda r: (-r[2][0], str(r[0])))
    items = [
        ForecastItem(**fields, spend=money(s), projected=money(p), low=money(lo), high=money(hi))
        for fields, s, (p, lo, hi) in rows[:limit]
        if dim is not None
    ]
    rest = rows[limit:] if dim is not None else []
    others = None
    if rest:
        others = ForecastOthers(
            count=len(rest), spend=money(sum(r[1] for r in rest)), projected=money(sum(r[2][0] for r in rest))
        )
    period_groups = counted.subset(in_period)
    return Forecast(
        period=PERIODS[PERIODS.index(period)],  # its Literal
        tz=tz.key,
        range=time_range(Range(span.start, span.end)),
        history=time_range(Range(from_ms(first_hour * HOUR_MS), from_ms(hour_now * HOUR_MS))),
        group_by=group_by,
        currency="USD",
        spend=money(spent.sum()),
        projected=money(total[0]),
        low=money(total[1]),
        high=money(total[2]),
        band_pct=80,
        days=_days(
            Range(span.start, span.end), tz, now_ms, period_groups.slot_starts(), period_groups.spend, total_profile
        ),
        items=items,
        others=others,
        pricing=pricing_coverage(groups.subset(groups.slot_starts() >= start_ms), agg.pricing),
        data_quality=data_quality(groups.subset(groups.slot_starts() >= start_ms), fresh),
        as_of=iso(fresh.now),
        latest_request_at=iso(fresh.latest) if fresh.latest else None,
    )


def _days(
    span: Range, tz: ZoneInfo, now_ms: int, starts: np.ndarray, spend: np.ndarray, profile: Profile
) -> list[ForecastDay]:
    """Each local day of the period: its spend so far, and its projection from now on."""
    days = buckets(span, tz, "day")
    bounds = np.array([epoch_ms(d.start) for d in days], dtype=np.int64)
    index = np.clip(np.searchsorted(bounds, starts, side="right") - 1, 0, None)
    spent = np.bincount(index, weights=spend, minlength=len(days))
    out = []
    for d, s in zip(days, spent.tolist(), strict=True):
        d0, d1 = epoch_ms(d.start), epoch_ms(d.end)
        p, lo, hi = _projected(profile, s, max(d0, now_ms), d1) if d1 > now_ms else (s, s, s)
        out.append(
            ForecastDay(
                t=iso(d.start),
                date=d.date.isoformat() if d.date else None,
                spend=money(s),
                projected=money(p),
                low=money(lo),
                high=money(hi),
            )
        )
    return out
