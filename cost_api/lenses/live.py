"""GET /v1/live — the last hour: spend, savings, errors and the current burn rate. Never cached."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from msgspec import Meta

from cost_api.aggregation.aggregator import Aggregator, Filters
from cost_api.aggregation.blocks import (
    AsOf,
    Block,
    DataQuality,
    LatestRequestAt,
    Money,
    PricingCoverage,
    TimeRange,
    data_quality,
    money,
    pricing_coverage,
    time_range,
)
from cost_api.windows import Range, Window, iso

RATE_SPAN = timedelta(minutes=5)


class Live(Block):
    """GET /v1/live."""

    range: TimeRange
    spend: Money
    saved_by_cache: Money
    requests: int
    cache_hits: int
    errors: Annotated[int, Meta(description="requests answered with status ≥ 400")]
    spend_rate_per_hour: Annotated[Money, Meta(description="the spend of the last 5 minutes × 12")]
    pricing: PricingCoverage
    data_quality: DataQuality
    as_of: AsOf
    latest_request_at: LatestRequestAt
    lag_seconds: Annotated[
        Annotated[float, Meta(ge=0)] | None, Meta(description="as_of − latest_request_at to 0.1 s; null: an empty log")
    ]


async def live_answer(agg: Aggregator, window: Window, *, filters: Filters) -> Live:
    rng = window.range
    recent = Range(max(rng.start, rng.end - RATE_SPAN), rng.end)
    directory = await agg.tokens() if filters.tokens or filters.tags else None  # read once for both windows
    common = {"filters": filters, "directory": directory}
    hour, last = await agg.groups_many((rng, common), (recent, common))
    fresh = await agg.freshness()  # lag from its exact instant: a row written this second has lag ≥ 0
    total = hour.total()
    return Live(
        range=time_range(rng),
        spend=money(total.spend),
        saved_by_cache=money(total.saved_by_cache),
        requests=total.requests,
        cache_hits=total.cache_hits,
        errors=total.errors,
        spend_rate_per_hour=money(last.total().spend * (timedelta(hours=1) / recent.length)),
        pricing=pricing_coverage(hour, agg.pricing),
        data_quality=data_quality(hour, fresh),
        as_of=iso(fresh.now),
        latest_request_at=iso(fresh.latest) if fresh.latest else None,
        # a row dated up to FUTURE_SKEW ahead (the gateway's clock runs ahead) is no negative lag
        lag_seconds=None if fresh.latest is None else max(round((fresh.now - fresh.latest).total_seconds(), 1), 0.0),
    )
