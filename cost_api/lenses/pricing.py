"""The price table over HTTP: the effective table, how one logged model resolves, and what is unpriced."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Literal

from msgspec import Meta

from cost_api.aggregation.aggregator import Aggregator, Filters
from cost_api.aggregation.blocks import (
    UNSET,
    AsOf,
    Block,
    Instant,
    TimeRange,
    UnpricedModel,
    UnsetType,
    pricing_coverage,
    time_range,
)
from cost_api.errors import BadParameter, Unpriced
from cost_api.pricing.file import SERVICE_TIERS, Price
from cost_api.pricing.rates import resolve_rates
from cost_api.pricing.table import Entry, PriceTable
from cost_api.windows import Window, iso

Rate = Annotated[float, Meta(description="USD per 1M tokens")]


class TierRates(Block):
    """Rates as billed, USD per 1M tokens: an absent cache rate shows as the input rate, an absent
    1-hour cache-write rate as the cache-write rate."""

    input: Rate
    output: Rate
    cache_read: Rate
    cache_write: Rate
    cache_write_1h: Rate


class AboveRates(Block):
    """A long-context cliff: above `input_tokens` of input the whole request bills at these rates."""

    input_tokens: int
    input: Rate
    output: Rate
    cache_read: Rate
    cache_write: Rate
    cache_write_1h: Rate


class ServiceTierRates(Block):
    """The service tiers the price has rates of its own for (only those)."""

    batch: TierRates | UnsetType = UNSET
    flex: TierRates | UnsetType = UNSET
    priority: TierRates | UnsetType = UNSET


class PriceRates(Block):
    """A price's rates: standard, long-context (`above`, null: none) and per service tier."""

    input: Rate
    output: Rate
    cache_read: Rate
    cache_write: Rate
    cache_write_1h: Rate
    above: AboveRates | None
    service_tiers: ServiceTierRates


class DatedPrice(Block):
    """A price and the UTC day it is in force from (null: from the start) until the next one."""

    since: Annotated[str | None, Meta(description="YYYY-MM-DD")]
    input: Rate
    output: Rate
    cache_read: Rate
    cache_write: Rate
    cache_write_1h: Rate
    above: AboveRates | None
    service_tiers: ServiceTierRates


class PricingEntry(Block):
    provider: str
    model: str
    aliases: list[str]
    prices: list[DatedPrice]
    source: Literal["builtin", "override"]


class PricingTable(Block):
    """GET /v1/pricing."""

    version: Annotated[str, Meta(description="<builtin>+<overrides>")]
    items: list[PricingEntry]


class ResolvedPrice(Block):
    """GET /v1/pricing/resolve."""

    provider: str
    model: str
    priced_as: Annotated[str, Meta(description="the entry the matcher picks, provider/model")]
    at: Instant
    price: PriceRates


class UnpricedModels(Block):
    """GET /v1/pricing/unpriced."""

    range: TimeRange
    version: str
    coverage_pct: float
    items: list[UnpricedModel]
    as_of: AsOf


def _above(price: Price) -> AboveRates | None:
    if price.above is None:
        return None
    return AboveRates(input_tokens=price.above.input_tokens, **asdict(resolve_rates(price.above)))


def _tiers(price: Price) -> ServiceTierRates:
    named = price.service_tiers
    tiers = {
        n: TierRates(**asdict(resolve_rates(getattr(named, n)))) for n in SERVICE_TIERS if named and getattr(named, n)
    }
    return ServiceTierRates(**tiers)


def _price(price: Price) -> PriceRates:
    return PriceRates(**asdict(resolve_rates(price)), above=_above(price), service_tiers=_tiers(price))


def _entry(entry: Entry) -> PricingEntry:
    prices = [
        DatedPrice(
            since=p.since.isoformat() if p.since else None,
            **asdict(resolve_rates(p)),
            above=_above(p),
            service_tiers=_tiers(p),
        )
        for p in entry.prices
    ]
    return PricingEntry(
        provider=entry.provider,
        model=entry.model,
        aliases=list(entry.aliases),
        prices=prices,
        source=entry.source,  # builtin or override
    )


def table(pricing: PriceTable) -> PricingTable:
    """GET /v1/pricing: every effective entry, with where it came from (builtin or override)."""
    return PricingTable(version=pricing.version, items=[_entry(e) for e in pricing.entries])


def resolve(pricing: PriceTable, provider: str, model: str, at: datetime) -> ResolvedPrice:
    """GET /v1/pricing/resolve: the entry a logged (provider, model) gets and its price at `at`."""
    if not provider:
        raise BadParameter("provider", "required, e.g. openai")
    if not model:
        raise BadParameter("model", "required, e.g. gpt-4o-mini-2024-07-18")
    entry = pricing.match(provider, model)
    if entry is None:
        raise Unpriced(
            f"{provider}/{model} is unpriced: no entry, alias or provider '*' matches it",
            extra={"provider": provider, "model": model},
        )
    return ResolvedPrice(
        provider=provider,
        model=model,
        priced_as=entry.key,
        at=iso(at),
        price=_price(entry.price_at(at.astimezone(UTC).date())),
    )


async def unpriced(agg: Aggregator, window: Window, *, filters: Filters) -> UnpricedModels:
    """GET /v1/pricing/unpriced: the logged models without a price over the window."""
    groups = await agg.groups(window.range, filters=filters, coarse=True)
    block = pricing_coverage(groups, agg.pricing)
    return UnpricedModels(
        range=time_range(window.range),
        version=block.version,
        coverage_pct=block.coverage_pct,
        items=block.unpriced,
        as_of=iso(agg.now()),
    )
