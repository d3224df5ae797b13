"""GET /v1/savings — the cache lens: what the gateway's response cache saved, per key and per local day."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from msgspec import Meta

from cost_api.aggregation.aggregator import Aggregator, Filters, Totals, dimension
from cost_api.aggregation.blocks import (
    AsOf,
    Block,
    DataQuality,
    GroupByName,
    Instant,
    Keyed,
    LatestRequestAt,
    Money,
    Pct,
    PricingCoverage,
    TimeRange,
    data_quality,
    money,
    pct,
    pricing_coverage,
    time_range,
)
from cost_api.lenses.trend import local_buckets
from cost_api.windows import Window, iso

GROUP_BY = ("endpoint", "model", "provider", "token", "cache_key", "tag")
NUMBERS = ("saved_by_cache", "saved_per_day", "cache_hits", "requests", "hit_rate_pct", "spend")


def csv_columns(group_by: str) -> tuple[str, ...]:
    return (*dimension(group_by, GROUP_BY).fields, *NUMBERS)


class SavingsItem(Keyed, kw_only=True):
    """One key: its key fields, then its figures (NUMBERS, in this order)."""

    saved_by_cache: Money
    saved_per_day: Annotated[Money, Meta(description="saved_by_cache ÷ the range's length in days")]
    cache_hits: int
    requests: int
    hit_rate_pct: Pct | None
    spend: Money


class SavingsOthers(Block):
    """The keys past `limit`, summed."""

    count: int
    saved_by_cache: Money
    cache_hits: int
    requests: int
    spend: Money


class SavingsDay(Block):
    """One local day of `tz` that overlaps the range (zero-filled)."""

    t: Annotated[Instant, Meta(description="the local day's start, as a UTC instant")]
    date: Annotated[str | None, Meta(description="the local date, YYYY-MM-DD")]
    saved_by_cache: Money
    cache_hits: int


class Savings(Block):
    """GET /v1/savings."""

    range: TimeRange
    group_by: GroupByName
    tz: str
    currency: Literal["USD"]
    saved_by_cache: Money
    saved_pct: Pct | None
    spend: Money
    cache_hits: int
    requests: int
    hit_rate_pct: Pct | None
    items: list[SavingsItem]
    others: SavingsOthers | None
    daily: list[SavingsDay]
    pricing: PricingCoverage
    data_quality: DataQuality
    as_of: AsOf
    latest_request_at: LatestRequestAt


def _order(item: tuple[Any, Totals]) -> tuple[float, int, int, str]:
    key, t = item
    return (-t.saved_by_cache, -t.cache_hits, -t.requests, str(key))


async def savings_answer(agg: Aggregator, window: Window, *, group_by: str, limit: int, filters: Filters) -> Savings:
    dim = dimension(group_by, GROUP_BY)
    rng, tz = window.range, window.tz
    days = local_buckets(rng, tz, "day")  # as /v1/trend's: where local days are UTC days, day groups
    directory = await agg.tokens()
    groups = await agg.groups(
        rng, filters=filters, directory=directory, dim=dim.dim, slot_ms=days.slot_ms, coarse=days.coarse
    )
    fresh = await agg.freshness()
    total = groups.total()
    length_days = rng.length / timedelta(days=1)
    rows = sorted(groups.by(*dim.columns).items(), key=_order)
    items = [
        SavingsItem(
            **dim.key_fields(key, directory),
            saved_by_cache=money(t.saved_by_cache),
            saved_per_day=money(t.saved_by_cache / length_days),
            cache_hits=t.cache_hits,
            requests=t.requests,
            hit_rate_pct=pct(t.cache_hits, t.requests),
            spend=money(t.spend),
        )
        for key, t in rows[:limit]
    ]
    rest = [t for _, t in rows[limit:]]
    others = None
    if rest:
        others = SavingsOthers(
            count=len(rest),
            saved_by_cache=money(sum(t.saved_by_cache for t in rest)),
            cache_hits=sum(t.cache_hits for t in rest),
            requests=sum(t.requests for t in rest),
            spend=money(sum(t.spend for t in rest)),
        )
    per_day = groups.buckets(days.starts_ms)
    return Savings(
        range=time_range(rng),
        group_by=group_by,
        tz=tz.key,
        currency="USD",
        saved_by_cache=money(total.saved_by_cache),
        saved_pct=pct(total.saved_by_cache, total.spend),
        spend=money(total.spend),
        cache_hits=total.cache_hits,
        requests=total.requests,
        hit_rate_pct=pct(total.cache_hits, total.requests),
        items=items,
        others=others,
        daily=[
            SavingsDay(
                t=iso(b.start),
                date=b.date.isoformat() if b.date else None,
                saved_by_cache=money(t.saved_by_cache),
                cache_hits=t.cache_hits,
            )
            for b, t in zip(days.buckets, per_day, strict=True)
        ],
        pricing=pricing_coverage(groups, agg.pricing),
        data_quality=data_quality(groups, fresh),
        as_of=iso(fresh.now),
        latest_request_at=iso(fresh.latest) if fresh.latest else None,
    )
