"""The blocks every answer shares, typed once: numbers as answers show them (money, percentages,
instants), the range, the `pricing` coverage block, `data_quality`, and the key fields of a grouped
item. Each is a `msgspec.Struct`: litestar encodes it and documents its fields in the OpenAPI
document (`/schema`).

A Struct encodes its fields in declaration order, each as its value is (no coercion on encoding):
declared in the order the answers always had, a Struct answer is byte for byte the dict it replaces.
A field typed `... | UnsetType = UNSET` is left out while unset (the key fields of an item); every
other field is always written, `null` included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import numpy as np
from msgspec import UNSET, Meta, UnsetType

from cost_api.aggregation.groups import NO_TIER_RATE, Groups
from cost_api.windows import Range, iso

if TYPE_CHECKING:
    from cost_api.aggregation.aggregator import Freshness
    from cost_api.pricing.table import PriceTable

__all__ = [
    "UNSET",
    "AsOf",
    "Block",
    "Count",
    "DataQuality",
    "ExcludedReasons",
    "GroupByName",
    "Instant",
    "KeyCacheKey",
    "KeyEndpoint",
    "KeyModel",
    "KeyName",
    "KeyPricedAs",
    "KeyProvider",
    "KeyTag",
    "KeyToken",
    "Keyed",
    "LatestRequestAt",
    "Money",
    "NoTierRate",
    "Pct",
    "PreviousPeriod",
    "PricingCoverage",
    "TimeRange",
    "UnpricedModel",
    "UnsetType",
    "apportion",
    "change_pct",
    "data_quality",
    "data_quality_block",
    "micro_parts",
    "money",
    "money_parts",
    "pct",
    "pricing_block",
    "pricing_coverage",
    "share_tenths",
    "time_range",
]

# --------------------------------------------------------------------------- numbers

Money = Annotated[float, Meta(description="USD, rounded to 6 decimals")]
Pct = Annotated[float, Meta(description="a percentage, rounded to 1 decimal")]
Count = Annotated[int, Meta(ge=0)]
Instant = Annotated[
    str,
    Meta(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
        description="RFC 3339 UTC, second precision",
        examples=["2026-11-20T12:00:00Z"],
    ),
]

AsOf = Annotated[Instant, Meta(description="when the answer was computed")]
LatestRequestAt = Annotated[
    Instant | None,
    Meta(description="the newest row of the log dated up to as_of + 5 minutes, whatever the filters; null: none"),
]


def money(value: float) -> float:
    """USD as answers show it: 6 decimals, never -0.0."""
    return round(float(value), 6) + 0.0


def pct(part: float, whole: float) -> float | None:
    """`part` of `whole` in percent to 1 decimal; None where `whole` is 0."""
    return None if not whole else round(part / whole * 100, 1) + 0.0


def apportion(exact: Sequence[float] | np.ndarray, whole: int) -> list[int]:
    """Whole units per part, adding up to `whole` exactly (the largest remainder method): each part
    gets its exact value rounded down, then the units still missing go one each to the parts with
    the largest fractions (ties: the earlier part). Each part stays within one unit of its exact value
    (when the exact values add up to `whole`, as the parts of a total do), where rounding each part
    alone can miss the total by up to half a unit per part."""
    return [int(u) for u in apportioned(exact, whole).tolist()]


def apportioned(exact: Sequence[float] | np.ndarray, whole: int) -> np.ndarray:
    """`apportion` as an int64 array: a lens apportions 20,000 tokens' spend on every answer and shows
    a few of them."""
    values = np.asarray(exact, dtype=np.float64)
    units = np.floor(values).astype(np.int64)
    missing = whole - int(units.sum())
    if not len(units) or not missing:
        return units
    order = np.lexsort((np.arange(len(units)), units - values))  # largest fraction first, then the earlier
    step = 1 if missing > 0 else -1
    if step < 0:  # more than the whole: take back from the smallest fractions, never below 0
        backwards = order[::-1]
        above = backwards[units[backwards] > 0]
        order = above if len(above) else order
    rounds, extra = divmod(abs(missing), len(order))
    units[order] += step * rounds
    units[order[:extra]] += step
    return units


def money_parts(parts: Sequence[float], total: float) -> list[float]:
    """`parts` of `total` in USD as answers show them (6 decimals), adding up exactly to `money(total)`."""
    return [money(m / 1e6) for m in micro_parts(parts, total).tolist()]


def micro_parts(parts: Sequence[float] | np.ndarray, total: float) -> np.ndarray:
    """`money_parts` in micro-dollars (whole numbers, an int64 array): for a caller that shows a few of
    many parts."""
    return apportioned(np.asarray(parts, dtype=np.float64) * 1e6, round(money(total) * 1e6))


def share_tenths(parts: Sequence[float] | np.ndarray, total: float) -> np.ndarray | None:
    """Each part's share of `total` in tenths of a percent (an int64 array), adding up to 1000 exactly;
    None where `total` is 0. `share_pct` is tenths / 10."""
    if not total:
        return None
    return apportioned(np.asarray(parts, dtype=np.float64) / total * 1000, 1000)


def change_pct(current: float, previous: float) -> float | None:
    """The change from `previous` in percent to 1 decimal; None where there was nothing before."""
    return None if not previous else round((current - previous) / previous * 100, 1) + 0.0


# --------------------------------------------------------------------------- blocks


class Block(msgspec.Struct):
    """The base of every answer and block: its fields encoded in declaration order."""


class TimeRange(Block):
    """A half-open range `[from, to)`."""

    from_: Instant = msgspec.field(name="from")
    to: Instant


def time_range(rng: Range) -> TimeRange:
    return TimeRange(from_=iso(rng.start), to=iso(rng.end))


class PreviousPeriod(Block):
    """The period before the range (the same length, or the previous calendar span) and its spend."""

    range: TimeRange
    spend: Money


class UnpricedModel(Block):
    """A logged (provider, model) that no price matches, and what its requests used."""

    provider: str
    model: str
    requests: Count
    prompt_tokens: int
    completion_tokens: int
    prompt_tokens_avoided: int
    completion_tokens_avoided: int


class NoTierRate(Block):
    """Requests of a service tier their price has no rates for, priced at the standard rates."""

    provider: str
    model: str
    priced_as: Annotated[str, Meta(description="the price entry matched, provider/model")]
    service_tier: str
    requests: Count


class PricingCoverage(Block):
    """What the answer's figures could price: the table's version, the share of requests priced, the
    unpriced models, and the requests priced with a caveat (estimated usage, no rates for their tier)."""

    version: str
    coverage_pct: Annotated[float, Meta(description="priced requests ÷ requests × 100 (100 with none)")]
    unpriced: list[UnpricedModel]
    estimated_requests: Annotated[int, Meta(ge=0, description="requests logged with usage_exact false")]
    no_tier_rate_requests: Count
    no_tier_rate: list[NoTierRate]


def pricing_coverage(groups: Groups, pricing: PriceTable) -> PricingCoverage:
    """`pricing: {version, coverage_pct, unpriced, estimated_requests, no_tier_rate_requests,
    no_tier_rate}` for the groups of an answer's range: what is unpriced, the requests whose usage the
    gateway flagged as estimated (`usage_exact` false), and the requests of a service tier their price
    has no rates for, priced at standard (docs/pricing.md#service-tiers)."""
    total = groups.total()
    unpriced = []
    if total.unpriced_requests:
        sub = groups.subset(groups.unpriced)
        for (provider, model), t in sorted(sub.by("provider", "model").items(), key=lambda kv: -kv[1].requests):
            unpriced.append(
                UnpricedModel(
                    provider=provider,
                    model=model,
                    requests=t.requests,
                    prompt_tokens=t.prompt_tokens,
                    completion_tokens=t.completion_tokens,
                    prompt_tokens_avoided=t.prompt_tokens_avoided,
                    completion_tokens_avoided=t.completion_tokens_avoided,
                )
            )
    no_tier_rate = []
    if total.no_tier_rate_requests:
        sub = groups.subset(groups.counts[NO_TIER_RATE] > 0)
        for (provider, model, priced_as, tier), t in sorted(
            sub.by("provider", "model", "priced_as", "tier").items(), key=lambda kv: -kv[1].no_tier_rate_requests
        ):
            no_tier_rate.append(
                NoTierRate(
                    provider=provider,
                    model=model,
                    priced_as=priced_as,
                    service_tier=tier,
                    requests=t.no_tier_rate_requests,
                )
            )
    coverage = 100.0 if not total.requests else pct(total.requests - total.unpriced_requests, total.requests)
    assert coverage is not None
    return PricingCoverage(
        version=pricing.version,
        coverage_pct=coverage,
        unpriced=unpriced,
        estimated_requests=total.estimated_requests,
        no_tier_rate_requests=total.no_tier_rate_requests,
        no_tier_rate=no_tier_rate,
    )


class ExcludedReasons(Block):
    """The rows left out of every figure, per reason (docs/request-log.md#rows-the-api-leaves-out)."""

    negative_tokens: Annotated[int, Meta(ge=0, description="rows of the range with a token count below 0")]
    missing_provider_or_model: Annotated[
        int, Meta(ge=0, description="rows of the range without provider or model (NULL, empty or blank)")
    ]
    future_created_at: Annotated[
        int, Meta(ge=0, description="rows of the whole log dated after future_after, whatever the range")
    ]


class DataQuality(Block):
    """The rows every figure of the answer leaves out, never silently."""

    excluded_requests: Annotated[int, Meta(ge=0, description="the sum of the reasons")]
    reasons: ExcludedReasons
    future_after: Annotated[Instant, Meta(description="as_of + 5 minutes: rows dated later count in no range")]


def data_quality(groups: Groups, fresh: Freshness) -> DataQuality:
    """`data_quality: {excluded_requests, reasons: {...}, future_after}`: the rows left out of every
    figure of the answer: bad rows of its range (and filters) per reason, and the rows of the whole
    log dated after `future_after` (now + FUTURE_SKEW)."""
    reasons = {**groups.excluded(), "future_created_at": fresh.future}
    return DataQuality(
        excluded_requests=sum(reasons.values()),
        reasons=ExcludedReasons(**reasons),
        future_after=iso(fresh.cutoff),
    )


def pricing_block(groups: Groups, pricing: PriceTable) -> dict[str, Any]:
    """`pricing_coverage` as plain dicts and lists, for the callers that read it so."""
    plain: dict[str, Any] = msgspec.to_builtins(pricing_coverage(groups, pricing))
    return plain


def data_quality_block(groups: Groups, fresh: Freshness) -> dict[str, Any]:
    """`data_quality` as plain dicts, for the callers that read it so (`cost-api smoke`)."""
    plain: dict[str, Any] = msgspec.to_builtins(data_quality(groups, fresh))
    return plain


# --------------------------------------------------------------------------- grouped items

# The key fields of an item grouped by one dimension; each is present only under its `group_by` (unset:
# left out). `Keyed` declares them in their order; an answer whose items put something before them (a
# trend series' `key`) declares these same fields after it.
KeyProvider = Annotated[str | UnsetType, Meta(description="group_by provider or model")]
KeyModel = Annotated[str | UnsetType, Meta(description="group_by model: the model as logged")]
KeyPricedAs = Annotated[
    str | UnsetType | None,
    Meta(description="group_by model: the price entry it matched, provider/model; null: unpriced"),
]
KeyEndpoint = Annotated[str | UnsetType, Meta(description="group_by endpoint")]
KeyToken = Annotated[str | UnsetType, Meta(description="group_by token: prefix… or anonymous, never the id")]
KeyName = Annotated[str | UnsetType | None, Meta(description="group_by token: the api_tokens name")]
GroupByName = Annotated[str, Meta(description="the dimension: provider, endpoint, token, model, … or tag:<key>")]
KeyTag = Annotated[
    str | UnsetType,
    Meta(description="group_by tag:<key>: the key's value the tokens carried, `(untagged)` for none"),
]
KeyCacheKey = Annotated[
    str | UnsetType | None,
    Meta(description="group_by cache_key: its first 12 characters; null: the requests that were not cacheable"),
]


class Keyed(Block, kw_only=True):
    """The key fields of an item grouped by one dimension, in this order; only those of the answer's
    `group_by` are present: `provider`; `endpoint`; `token` and `name`; `provider`, `model` and
    `priced_as`; `cache_key`; `tag`. An item declares its figures after them, in a subclass that takes them by
    keyword (`class SpendItem(Keyed, kw_only=True)`: required fields after these optional ones)."""

    provider: KeyProvider = UNSET
    model: KeyModel = UNSET
    priced_as: KeyPricedAs = UNSET
    endpoint: KeyEndpoint = UNSET
    token: KeyToken = UNSET
    name: KeyName = UNSET
    cache_key: KeyCacheKey = UNSET
    tag: KeyTag = UNSET
