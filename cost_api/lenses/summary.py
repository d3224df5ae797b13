"""GET /v1/summary — the headline block: spend, saved by cache, change, by provider, top lists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cost_api.aggregation.aggregator import (
    Aggregator,
    Filters,
    change_pct,
    data_quality_block,
    money,
    pct,
    pricing_block,
    ranked,
)
from cost_api.windows import Range, Window, iso


async def summary(
    agg: Aggregator, window: Window, *, top_window: timedelta, top: int, filters: Filters
) -> dict[str, Any]:
    end = window.range.end
    top_range = Range(end - top_window, end)
    top_previous = Range(end - 2 * top_window, end - top_window)
    directory = await agg.tokens()
    common = {"filters": filters, "directory": directory, "coarse": True}  # totals only: no buckets
    current, previous, ep_now, ep_before, tok_now, tok_before = await agg.groups_many(
        (window.range, common),
        (window.previous, common),
        (top_range, {**common, "dim": "endpoint"}),
        (top_previous, {**common, "dim": "endpoint"}),
        (top_range, {**common, "dim": "token"}),
        (top_previous, {**common, "dim": "token"}),
    )
    fresh = await agg.freshness()
    total = current.total()
    before = previous.total()
    change = total.spend - before.spend
    by_provider = sorted(current.by("provider").items(), key=lambda kv: (-kv[1].spend, kv[0]))
    endpoints = ranked(ep_now.by("key"), ep_before.by("key"), top)
    tokens = ranked(tok_now.by("key"), tok_before.by("key"), top)
    return {
        "range": window.range.as_json(),
        "currency": "USD",
        "spend": money(total.spend),
        "saved_by_cache": money(total.saved_by_cache),
        "saved_pct": pct(total.saved_by_cache, total.spend),
        "previous": {"range": window.previous.as_json(), "spend": money(before.spend)},
        "change": money(change),
        "change_pct": change_pct(total.spend, before.spend),
        "requests": total.requests,
        "cache_hits": total.cache_hits,
        "by_provider": [
            {"provider": p, "spend": money(t.spend), "share_pct": pct(t.spend, total.spend)} for p, t in by_provider
        ],
        "top_endpoints": {
            "range": top_range.as_json(),
            "items": [
                {"endpoint": key, "spend": money(t.spend), "change_pct": change_pct(t.spend, prev)}
                for key, t, prev in endpoints
            ],
        },
        "top_tokens": {
            "range": top_range.as_json(),
            "items": [
                {
                    "token": directory.display(key)[0],
                    "name": directory.display(key)[1],
                    "spend": money(t.spend),
                    "change_pct": change_pct(t.spend, prev),
                }
                for key, t, prev in tokens
            ],
        },
        "pricing": pricing_block(current, agg.pricing),
        "data_quality": data_quality_block(current, fresh),
        "as_of": iso(fresh.now),
        "latest_request_at": iso(fresh.latest) if fresh.latest else None,
    }
