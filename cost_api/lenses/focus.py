"""GET /v1/spend?format=focus — the spend as a FinOps FOCUS dataset (FOCUS 1.2's column names and
meanings, docs/showback.md#focus-export): one row per local day of `tz`, value of the `group_by` tag
key and model, so that finance tools that read cloud bills in FOCUS take the gateway's spend as one
more provider.

The figures are the spend lens's groups folded per day (as /v1/trend folds them) and per tag value (as
`group_by=tag:<key>` folds them); `BilledCost` is apportioned like /v1/spend's items, so the rows add up
to /v1/spend's total exactly (`money_parts`).
"""

from __future__ import annotations

import dataclasses
import json

import msgspec
import numpy as np

from cost_api.aggregation.aggregator import Aggregator, Filters, dimension, is_tag
from cost_api.aggregation.blocks import Block, money_parts
from cost_api.config.tags import UNTAGGED
from cost_api.errors import BadParameter
from cost_api.lenses.spend import GROUP_BY
from cost_api.lenses.trend import local_buckets
from cost_api.windows import Window, iso

FOCUS_VERSION = "1.2"
TOKENS = "Tokens"


class FocusRow(Block, rename="pascal"):
    """One charge: FOCUS columns (PascalCase ids) first, then the custom ones (`x_`), in this order."""

    billing_period_start: str
    billing_period_end: str
    charge_period_start: str
    charge_period_end: str
    billed_cost: float
    effective_cost: float
    list_cost: float
    contracted_cost: float
    billing_currency: str
    provider_name: str
    publisher_name: str
    invoice_issuer_name: str
    service_name: str
    service_category: str
    service_subcategory: str
    sku_id: str | None
    charge_category: str
    charge_class: str | None
    charge_frequency: str
    charge_description: str
    pricing_category: str
    pricing_quantity: int
    pricing_unit: str
    consumed_quantity: int
    consumed_unit: str
    tags: str
    x_requests: int = msgspec.field(name="x_Requests")
    x_cache_hits: int = msgspec.field(name="x_CacheHits")
    x_unpriced_requests: int = msgspec.field(name="x_UnpricedRequests")
    x_saved_by_cache: float = msgspec.field(name="x_SavedByCache")
    x_prompt_tokens: int = msgspec.field(name="x_PromptTokens")
    x_completion_tokens: int = msgspec.field(name="x_CompletionTokens")
    x_cache_read_tokens: int = msgspec.field(name="x_CacheReadTokens")
    x_cache_write_tokens: int = msgspec.field(name="x_CacheWriteTokens")


COLUMNS = tuple(f.encode_name for f in msgspec.structs.fields(FocusRow))


async def focus_rows(agg: Aggregator, window: Window, *, group_by: str, filters: Filters) -> list[FocusRow]:
    """The FOCUS rows of `window`: per local day, tag value and (provider, model), oldest day first."""
    dim = dimension(group_by, GROUP_BY)
    if not is_tag(dim.dim):
        raise BadParameter("group_by", f"format=focus takes group_by=tag:<key> (e.g. tag:team); got {group_by!r}")
    key = group_by[4:]
    rng = window.range
    spec = local_buckets(rng, window.tz, "day")
    groups = await agg.groups(rng, filters=filters, dim=dim.dim, slot_ms=spec.slot_ms, coarse=spec.coarse)
    days = np.searchsorted(np.asarray(spec.starts_ms, dtype=np.int64), groups.slot_starts(), side="right") - 1
    per = dataclasses.replace(groups, slot=np.clip(days, 0, None)).by("slot", "key", "provider", "model", "priced_as")
    cells = sorted(per.items(), key=lambda kv: (kv[0][0], *(str(v) for v in kv[0][1:])))
    billed = money_parts([t.spend for _, t in cells], groups.total().spend)
    saved = money_parts([t.saved_by_cache for _, t in cells], groups.total().saved_by_cache)
    period = (iso(rng.start), iso(rng.end))
    rows = []
    for i, ((day, value, provider, model, priced_as), t) in enumerate(cells):
        bucket = spec.buckets[day]
        tokens = t.prompt_tokens + t.completion_tokens + t.cache_read_tokens + t.cache_write_tokens
        rows.append(
            FocusRow(
                billing_period_start=period[0],
                billing_period_end=period[1],
                charge_period_start=iso(max(bucket.start, rng.start)),
                charge_period_end=iso(min(bucket.end, rng.end)),
                billed_cost=billed[i],
                effective_cost=billed[i],
                list_cost=billed[i],
                contracted_cost=billed[i],
                billing_currency="USD",
                provider_name=provider,
                publisher_name=provider,
                invoice_issuer_name=provider,
                service_name=model,
                service_category="AI and Machine Learning",
                service_subcategory="Generative AI",
                sku_id=priced_as,
                charge_category="Usage",
                charge_class=None,
                charge_frequency="Usage-Based",
                charge_description=f"{provider}/{model} requests through the gateway",
                pricing_category="Standard",
                pricing_quantity=tokens,
                pricing_unit=TOKENS,
                consumed_quantity=tokens,
                consumed_unit=TOKENS,
                tags=json.dumps({} if value == UNTAGGED else {key: value}, ensure_ascii=False),
                x_requests=t.requests,
                x_cache_hits=t.cache_hits,
                x_unpriced_requests=t.unpriced_requests,
                x_saved_by_cache=saved[i],
                x_prompt_tokens=t.prompt_tokens,
                x_completion_tokens=t.completion_tokens,
                x_cache_read_tokens=t.cache_read_tokens,
                x_cache_write_tokens=t.cache_write_tokens,
            )
        )
    return rows
