"""The price table over HTTP: the effective table, how one logged model resolves, and what is unpriced."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from cost_api.aggregation.aggregator import Aggregator, Filters, pricing_block
from cost_api.errors import BadParameter, Unpriced
from cost_api.pricing.file import SERVICE_TIERS, Price
from cost_api.pricing.rates import resolve_rates
from cost_api.pricing.table import Entry, PriceTable
from cost_api.windows import Window, iso, now_utc


def _rates(price: Price) -> dict[str, Any]:
    above = None
    if price.above is not None:
        above = {"input_tokens": price.above.input_tokens, **asdict(resolve_rates(price.above))}
    named = price.service_tiers
    tiers = {n: asdict(resolve_rates(getattr(named, n))) for n in SERVICE_TIERS if named and getattr(named, n)}
    return {**asdict(resolve_rates(price)), "above": above, "service_tiers": tiers}


def _entry(entry: Entry) -> dict[str, Any]:
    return {
        "provider": entry.provider,
        "model": entry.model,
        "aliases": list(entry.aliases),
        "prices": [{"since": p.since.isoformat() if p.since else None, **_rates(p)} for p in entry.prices],
        "source": entry.source,
    }


def table(pricing: PriceTable) -> dict[str, Any]:
    """GET /v1/pricing: every effective entry, with where it came from (builtin or override)."""
    return {"version": pricing.version, "items": [_entry(e) for e in pricing.entries]}


def resolve(pricing: PriceTable, provider: str, model: str, at: datetime | None) -> dict[str, Any]:
    """GET /v1/pricing/resolve: the entry a logged (provider, model) gets and its price at `at`."""
    if not provider:
        raise BadParameter("provider", "required, e.g. openai")
    if not model:
        raise BadParameter("model", "required, e.g. gpt-4o-mini-2024-07-18")
    at = at or datetime.now(UTC)
    entry = pricing.match(provider, model)
    if entry is None:
        raise Unpriced(
            f"{provider}/{model} is unpriced: no entry, alias or provider '*' matches it",
            extra={"provider": provider, "model": model},
        )
    return {
        "provider": provider,
        "model": model,
        "priced_as": entry.key,
        "at": iso(at),
        "price": _rates(entry.price_at(at.astimezone(UTC).date())),
    }


async def unpriced(agg: Aggregator, window: Window, *, filters: Filters) -> dict[str, Any]:
    """GET /v1/pricing/unpriced: the logged models without a price over the window."""
    groups = await agg.groups(window.range, filters=filters, coarse=True)
    block = pricing_block(groups, agg.pricing)
    return {
        "range": window.range.as_json(),
        "version": block["version"],
        "coverage_pct": block["coverage_pct"],
        "items": block["unpriced"],
        "as_of": iso(now_utc()),
    }
