"""GET /v1/spend — one lens: spend per provider, endpoint, token or model, against the previous period."""

from __future__ import annotations

from typing import Any

from cost_api.aggregation.aggregator import (
    Aggregator,
    Filters,
    change_pct,
    data_quality_block,
    dimension,
    money,
    pct,
    pricing_block,
    ranked,
)
from cost_api.windows import Window, iso

GROUP_BY = ("provider", "endpoint", "token", "model")
NUMBERS = (
    "spend",
    "share_pct",
    "requests",
    "cache_hits",
    "unpriced_requests",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "saved_by_cache",
    "previous_spend",
    "change_pct",
)


def csv_columns(group_by: str) -> tuple[str, ...]:
    return (*dimension(group_by, GROUP_BY).fields, *NUMBERS)


async def spend(agg: Aggregator, window: Window, *, group_by: str, limit: int, filters: Filters) -> dict[str, Any]:
    dim = dimension(group_by, GROUP_BY)
    directory = await agg.tokens()
    common = {"filters": filters, "directory": directory, "dim": dim.dim, "coarse": True}  # totals only
    current, previous = await agg.groups_many((window.range, common), (window.previous, common))
    fresh = await agg.freshness()
    total = current.total()
    rows = ranked(current.by(*dim.columns), previous.by(*dim.columns))
    items = [
        {
            **dim.key_fields(key, directory),
            "spend": money(t.spend),
            "share_pct": pct(t.spend, total.spend),
            "requests": t.requests,
            "cache_hits": t.cache_hits,
            "unpriced_requests": t.unpriced_requests,
            "prompt_tokens": t.prompt_tokens,
            "completion_tokens": t.completion_tokens,
            "cache_read_tokens": t.cache_read_tokens,
            "cache_write_tokens": t.cache_write_tokens,
            "saved_by_cache": money(t.saved_by_cache),
            "previous_spend": money(prev),
            "change_pct": change_pct(t.spend, prev),
        }
        for key, t, prev in rows[:limit]
    ]
    rest = [t for _, t, _ in rows[limit:]]
    others = None
    if rest:
        others = {
            "count": len(rest),
            "spend": money(sum(t.spend for t in rest)),
            "requests": sum(t.requests for t in rest),
            "saved_by_cache": money(sum(t.saved_by_cache for t in rest)),
        }
    return {
        "range": window.range.as_json(),
        "group_by": group_by,
        "currency": "USD",
        "spend": money(total.spend),
        "previous": {"range": window.previous.as_json(), "spend": money(previous.total().spend)},
        "items": items,
        "others": others,
        "pricing": pricing_block(current, agg.pricing),
        "data_quality": data_quality_block(current, fresh),
        "as_of": iso(fresh.now),
        "latest_request_at": iso(fresh.latest) if fresh.latest else None,
    }
