"""GET /v1/whatif — re-pricing: the window's actual spend, and what the same token sums would have cost
with other models substituted, negotiated discounts, or another price book.

The groups are the window's priced groups (hourly, so each keeps its size class and UTC day); the
what-if copies them with the substituted provider and model and prices the copy with the same engine
(`aggregation.priced.price`, the rates in force on each group's day) under the live table or the
named book; a discount then scales a provider's what-if spend. Requests the what-if cannot price are
counted (`unpriced_requests`, `unpriced`), never $0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
import numpy as np
from msgspec import Meta

from cost_api.aggregation.aggregator import Aggregator, Filters, Groups, dimension
from cost_api.aggregation.blocks import (
    AsOf,
    Block,
    Count,
    DataQuality,
    GroupByName,
    Keyed,
    LatestRequestAt,
    Money,
    Pct,
    PricingCoverage,
    TimeRange,
    change_pct,
    data_quality,
    money,
    pricing_coverage,
    time_range,
)
from cost_api.aggregation.priced import price
from cost_api.errors import BadParameter
from cost_api.lenses.trend import key_codes
from cost_api.pricing.table import Entry, PriceTable
from cost_api.windows import Window, iso

GROUP_BY = ("provider", "endpoint", "token", "model", "tag")
WhatIfMoney = Annotated[Money, Meta(description="the same requests re-priced; requests it cannot price count in none")]


@dataclass(frozen=True, slots=True)
class Scenario:
    """What to re-price with: the rate table, substitutions (price entry → price entry), discounts
    (provider → percent off)."""

    table: PriceTable
    book: str | None
    maps: tuple[tuple[Entry, Entry], ...]
    discounts: tuple[tuple[str, float], ...]


def _entry(table: PriceTable, name: str, text: str) -> Entry:
    provider, _, model = text.strip().partition("/")
    entry = table.match(provider, model) if provider and model else None
    if entry is None:
        raise BadParameter(name, f"unknown model {text!r}: expected provider/model of the price table")
    return entry


def scenario(
    live: PriceTable,
    books: Mapping[str, PriceTable],
    *,
    maps: Sequence[str],
    discounts: Sequence[str],
    book: str | None,
) -> Scenario:
    """The checked parameters: each a 400 naming it when wrong."""
    table = live
    if book is not None:
        if book not in books:
            known = ", ".join(sorted(books)) or "none configured (whatif_price_books)"
            raise BadParameter("book", f"unknown price book {book!r}; known: {known}")
        table = books[book]
    pairs: list[tuple[Entry, Entry]] = []
    for raw in maps:
        source, sep, target = raw.partition("=")
        if not sep:
            raise BadParameter("map", f"expected provider/model=provider/model; got {raw!r}")
        pair = (_entry(live, "map", source), _entry(table, "map", target))
        if any(p[0].key == pair[0].key for p in pairs):
            raise BadParameter("map", f"{pair[0].key} is substituted twice")
        pairs.append(pair)
    off: dict[str, float] = {}
    for raw in discounts:
        provider, sep, value = raw.partition(":")
        try:
            pct = float(value)
        except ValueError:
            pct = math.nan
        if not sep or not provider.strip() or not 0 <= pct <= 100:
            raise BadParameter("discount", f"expected provider:percent with a percent from 0 to 100; got {raw!r}")
        off[provider.strip()] = pct
    return Scenario(table, book, tuple(pairs), tuple(off.items()))


def repriced(groups: Groups, sc: Scenario) -> Groups:
    """A copy of (good) `groups` with the substitutions made, priced by `sc.table`, discounts applied."""
    vocab = groups.vocab
    out = groups.subset(np.ones(len(groups), dtype=bool))  # a copy: pricing writes its columns
    for source, target in sc.maps:
        hit = groups.priced_as == vocab.code(source.key)
        out.provider[hit] = vocab.code(target.provider)
        out.model[hit] = vocab.code(target.model)
    if len(out):
        price(out, sc.table)
    for provider, pct in sc.discounts:
        out.spend = np.where(out.provider == vocab.code(provider), out.spend * (1 - pct / 100), out.spend)
    return out


class Substitution(Block):
    """One `map`: the requests it moved, what they cost, and what they would have."""

    from_: Annotated[str, Meta(description="the price entry substituted, provider/model")] = msgspec.field(name="from")
    to: str
    requests: Count
    spend: Money
    whatif: WhatIfMoney


class Discount(Block):
    provider: str
    pct: Pct


class WhatIfUnpriced(Block):
    """Requests the what-if has no price for (by the provider and model it would have used)."""

    provider: str
    model: str
    requests: Count


class WhatIfItem(Keyed, kw_only=True):
    spend: Money
    whatif: WhatIfMoney
    difference: Annotated[Money, Meta(description="whatif − spend")]
    change_pct: Pct | None
    unpriced_requests: Annotated[int, Meta(ge=0, description="requests the what-if cannot price")]


class WhatIfOthers(Block):
    count: int
    spend: Money
    whatif: WhatIfMoney


class WhatIf(Block):
    """GET /v1/whatif."""

    range: TimeRange
    group_by: GroupByName
    currency: Literal["USD"]
    book: Annotated[str | None, Meta(description="the price book the what-if used; null: the live table")]
    substitutions: list[Substitution]
    discounts: list[Discount]
    spend: Annotated[Money, Meta(description="what the window cost")]
    whatif: WhatIfMoney
    difference: Money
    change_pct: Pct | None
    unpriced_requests: Annotated[int, Meta(ge=0, description="requests the what-if cannot price, in no figure")]
    unpriced: list[WhatIfUnpriced]
    items: list[WhatIfItem]
    others: WhatIfOthers | None
    pricing: PricingCoverage
    data_quality: DataQuality
    as_of: AsOf
    latest_request_at: LatestRequestAt


async def whatif_answer(
    agg: Aggregator, window: Window, sc: Scenario, *, group_by: str, limit: int, filters: Filters
) -> WhatIf:
    dim = dimension(group_by, GROUP_BY)
    directory = await agg.tokens()
    # hourly groups (not coarse): each keeps its size class, which a substitute's rates may need
    groups = await agg.groups(window.range, filters=filters, directory=directory, dim=dim.dim)
    fresh = await agg.freshness()
    actual = groups.counted()
    what = repriced(actual, sc)
    requests = actual.counts["requests"]
    lost = np.where(what.unpriced, requests, 0)
    codes, keys = key_codes(actual, dim, directory) if len(actual) else (np.zeros(0, dtype=np.int64), [])
    n = len(keys)
    spend = np.bincount(codes, weights=actual.spend, minlength=n)
    whatif = np.bincount(codes, weights=what.spend, minlength=n)
    unpriced = np.bincount(codes, weights=lost, minlength=n)
    order = sorted(range(n), key=lambda k: (-spend[k], keys[k][0]))
    items = [
        WhatIfItem(
            **keys[k][1],
            spend=money(spend[k]),
            whatif=money(whatif[k]),
            difference=money(whatif[k] - spend[k]),
            change_pct=change_pct(whatif[k], spend[k]),
            unpriced_requests=round(unpriced[k]),
        )
        for k in order[:limit]
    ]
    rest = order[limit:]
    others = None
    if rest:
        others = WhatIfOthers(count=len(rest), spend=money(spend[rest].sum()), whatif=money(whatif[rest].sum()))
    substitutions = []
    for source, target in sc.maps:
        hit = actual.priced_as == agg.vocab.code(source.key)
        substitutions.append(
            Substitution(
                from_=source.key,
                to=target.key,
                requests=int(requests[hit].sum()),
                spend=money(actual.spend[hit].sum()),
                whatif=money(what.spend[hit].sum()),
            )
        )
    missing = what.subset(what.unpriced & (requests > 0))
    total_spend, total_whatif = float(spend.sum()), float(whatif.sum())
    return WhatIf(
        range=time_range(window.range),
        group_by=group_by,
        currency="USD",
        book=sc.book,
        substitutions=substitutions,
        discounts=[Discount(provider=p, pct=v) for p, v in sc.discounts],
        spend=money(total_spend),
        whatif=money(total_whatif),
        difference=money(total_whatif - total_spend),
        change_pct=change_pct(total_whatif, total_spend),
        unpriced_requests=int(lost.sum()),
        unpriced=[
            WhatIfUnpriced(provider=p, model=m, requests=t.requests)
            for (p, m), t in sorted(missing.by("provider", "model").items(), key=lambda kv: -kv[1].requests)
        ],
        items=items,
        others=others,
        pricing=pricing_coverage(groups, agg.pricing),
        data_quality=data_quality(groups, fresh),
        as_of=iso(fresh.now),
        latest_request_at=iso(fresh.latest) if fresh.latest else None,
    )
