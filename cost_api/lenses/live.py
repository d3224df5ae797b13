"""GET /v1/live — the last hour: spend, savings, errors and the current burn rate. Never cached."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cost_api.aggregation.aggregator import Aggregator, Filters, data_quality_block, money, pricing_block
from cost_api.windows import Range, Window, iso

RATE_SPAN = timedelta(minutes=5)


async def live(agg: Aggregator, window: Window, *, filters: Filters) -> dict[str, Any]:
    rng = window.range
    recent = Range(max(rng.start, rng.end - RATE_SPAN), rng.end)
    directory = await agg.tokens() if filters.tokens else None
    common = {"filters": filters, "directory": directory}
    hour, last = await agg.groups_many((rng, common), (recent, common))
    fresh = await agg.freshness()  # lag from its exact instant: a row written this second has lag ≥ 0
    total = hour.total()
    return {
        "range": rng.as_json(),
        "spend": money(total.spend),
        "saved_by_cache": money(total.saved_by_cache),
        "requests": total.requests,
        "cache_hits": total.cache_hits,
        "errors": total.errors,
        "spend_rate_per_hour": money(last.total().spend * (timedelta(hours=1) / recent.length)),
        "pricing": pricing_block(hour, agg.pricing),
        "data_quality": data_quality_block(hour, fresh),
        "as_of": iso(fresh.now),
        "latest_request_at": iso(fresh.latest) if fresh.latest else None,
        # a row dated up to FUTURE_SKEW ahead (the gateway's clock runs ahead) is no negative lag
        "lag_seconds": None if fresh.latest is None else max(round((fresh.now - fresh.latest).total_seconds(), 1), 0.0),
    }
