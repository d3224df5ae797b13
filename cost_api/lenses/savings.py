"""GET /v1/savings — the cache lens: what the gateway's response cache saved, per key and per local day."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cost_api.aggregation.aggregator import (
    Aggregator,
    Filters,
    Totals,
    data_quality_block,
    dimension,
    money,
    pct,
    pricing_block,
)
from cost_api.windows import Window, buckets, epoch_ms, iso, slot_ms

GROUP_BY = ("endpoint", "model", "provider", "token", "cache_key")
NUMBERS = ("saved_by_cache", "saved_per_day", "cache_hits", "requests", "hit_rate_pct", "spend")


def csv_columns(group_by: str) -> tuple[str, ...]:
    return (*dimension(group_by, GROUP_BY).fields, *NUMBERS)


def _order(item: tuple[Any, Totals]) -> tuple[float, int, int, str]:
    key, t = item
    return (-t.saved_by_cache, -t.cache_hits, -t.requests, str(key))


async def savings(agg: Aggregator, window: Window, *, group_by: str, limit: int, filters: Filters) -> dict[str, Any]:
    dim = dimension(group_by, GROUP_BY)
    rng, tz = window.range, window.tz
    days = buckets(rng, tz, "day")
    directory = await agg.tokens()
    slot = slot_ms(tz, rng)
    groups = await agg.groups(rng, filters=filters, directory=directory, dim=dim.dim, slot_ms=slot)
    fresh = await agg.freshness()
    total = groups.total()
    length_days = rng.length / timedelta(days=1)
    rows = sorted(groups.by(*dim.columns).items(), key=_order)
    items = [
        {
            **dim.key_fields(key, directory),
            "saved_by_cache": money(t.saved_by_cache),
            "saved_per_day": money(t.saved_by_cache / length_days),
            "cache_hits": t.cache_hits,
            "requests": t.requests,
            "hit_rate_pct": pct(t.cache_hits, t.requests),
            "spend": money(t.spend),
        }
        for key, t in rows[:limit]
    ]
    rest = [t for _, t in rows[limit:]]
    others = None
    if rest:
        others = {
            "count": len(rest),
            "saved_by_cache": money(sum(t.saved_by_cache for t in rest)),
            "cache_hits": sum(t.cache_hits for t in rest),
            "requests": sum(t.requests for t in rest),
            "spend": money(sum(t.spend for t in rest)),
        }
    per_day = groups.buckets([epoch_ms(b.start) for b in days])
    return {
        "range": rng.as_json(),
        "group_by": group_by,
        "tz": tz.key,
        "currency": "USD",
        "saved_by_cache": money(total.saved_by_cache),
        "saved_pct": pct(total.saved_by_cache, total.spend),
        "spend": money(total.spend),
        "cache_hits": total.cache_hits,
        "requests": total.requests,
        "hit_rate_pct": pct(total.cache_hits, total.requests),
        "items": items,
        "others": others,
        "daily": [
            {
                "t": iso(b.start),
                "date": b.date.isoformat() if b.date else None,
                "saved_by_cache": money(t.saved_by_cache),
                "cache_hits": t.cache_hits,
            }
            for b, t in zip(days, per_day, strict=True)
        ],
        "pricing": pricing_block(groups, agg.pricing),
        "data_quality": data_quality_block(groups, fresh),
        "as_of": iso(fresh.now),
        "latest_request_at": iso(fresh.latest) if fresh.latest else None,
    }
