"""GET /v1/live — the last hour: spend, savings, errors and the current burn rate. Never cached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .aggregate import Aggregator, Filters, money, pricing_block
from .windows import Range, Window, iso

RATE_SPAN = timedelta(minutes=5)


async def live(agg: Aggregator, window: Window, *, filters: Filters) -> dict[str, Any]:
    rng = window.range
    recent = Range(max(rng.start, rng.end - RATE_SPAN), rng.end)
    directory = await agg.tokens() if filters.tokens else None
    common = {"filters": filters, "directory": directory}
    hour, last = await agg.groups_many((rng, common), (recent, common))
    latest = await agg.latest_request_at()
    now = datetime.now(UTC)  # lag from the exact instant: a row written this second has lag ≥ 0
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
        "as_of": iso(now),
        "latest_request_at": iso(latest) if latest else None,
        "lag_seconds": None if latest is None else round((now - latest).total_seconds(), 1),
    }
