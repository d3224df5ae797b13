"""GET /v1/spend — one lens: spend per provider, endpoint, token or model, against the previous period."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Literal

import numpy as np

from cost_api.aggregation.aggregator import Aggregator, Filters, Totals, dimension
from cost_api.aggregation.blocks import (
    AsOf,
    Block,
    DataQuality,
    GroupByName,
    Keyed,
    LatestRequestAt,
    Money,
    Pct,
    PreviousPeriod,
    PricingCoverage,
    TimeRange,
    change_pct,
    data_quality,
    micro_parts,
    money,
    pricing_coverage,
    share_tenths,
    time_range,
)
from cost_api.aggregation.groups import totals_at
from cost_api.windows import Window, iso

GROUP_BY = ("provider", "endpoint", "token", "model", "tag")
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


class SpendItem(Keyed, kw_only=True):
    """One key: its key fields, then its figures (NUMBERS, in this order)."""

    spend: Money
    share_pct: Pct | None
    requests: int
    cache_hits: int
    unpriced_requests: int
    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    saved_by_cache: Money
    previous_spend: Money
    change_pct: Pct | None


class SpendOthers(Block):
    """The keys past `limit`, summed."""

    count: int
    spend: Money
    requests: int
    saved_by_cache: Money


class Spend(Block):
    """GET /v1/spend."""

    range: TimeRange
    group_by: GroupByName
    currency: Literal["USD"]
    spend: Money
    previous: PreviousPeriod
    items: list[SpendItem]
    others: SpendOthers | None
    pricing: PricingCoverage
    data_quality: DataQuality
    as_of: AsOf
    latest_request_at: LatestRequestAt


TOTAL = "(total)"  # the CSV's last line, in the first key column
OTHERS = "(others)"  # the CSV's line of the keys past `limit`, before the total


@dataclass(frozen=True, slots=True)
class SpendTable:
    """The answer, and the lines a table of it adds below the items: the keys past `limit` summed
    (`others`, when there are any) and the `total`, each with every figure of an item."""

    answer: Spend
    others: SpendItem | None
    total: SpendItem

    def rows(self) -> list[SpendItem]:
        """The items, then `(others)`, then `(total)`: the rows add up to the total line exactly."""
        return [*self.answer.items, *([self.others] if self.others else []), self.total]


_TOTALS = attrgetter(*(f.name for f in fields(Totals)))


def rest_of(whole: Totals, shown: Sequence[Totals]) -> Totals:
    """`whole` less the `shown` keys: the keys past them, summed (without a pass over 20,000 tokens)."""
    taken = [sum(column) for column in zip(*map(_TOTALS, shown), strict=True)] if shown else [0] * len(fields(Totals))
    return Totals(*(w - t for w, t in zip(_TOTALS(whole), taken, strict=True)))


def _usd(micro: np.integer) -> float:
    return money(int(micro) / 1e6)


def _pct(tenths: np.ndarray | None, a: int, b: int) -> float | None:
    """The share in percent of the keys ranked a…b-1 (None: a total of 0)."""
    return None if tenths is None else int(tenths[a:b].sum()) / 10 + 0.0


def _item(
    key_fields: dict[str, Any], t: Totals, spend: float, saved: float, share: float | None, prev: float
) -> SpendItem:
    return SpendItem(
        **key_fields,
        spend=spend,
        share_pct=share,
        requests=t.requests,
        cache_hits=t.cache_hits,
        unpriced_requests=t.unpriced_requests,
        prompt_tokens=t.prompt_tokens,
        completion_tokens=t.completion_tokens,
        cache_read_tokens=t.cache_read_tokens,
        cache_write_tokens=t.cache_write_tokens,
        saved_by_cache=saved,
        previous_spend=money(prev),
        change_pct=change_pct(t.spend, prev),
    )


async def spend_answer(agg: Aggregator, window: Window, *, group_by: str, limit: int, filters: Filters) -> Spend:
    return (await spend_table(agg, window, group_by=group_by, limit=limit, filters=filters)).answer


async def spend_table(agg: Aggregator, window: Window, *, group_by: str, limit: int, filters: Filters) -> SpendTable:
    """Spend per key against the previous period. The keys' `spend`, `saved_by_cache` and `share_pct`
    are the total's apportioned (`micro_parts`, `share_tenths`: the largest remainder method), so that they
    add up to the total exactly as shown (docs/showback.md#rows-that-add-up)."""
    dim = dimension(group_by, GROUP_BY)
    directory = await agg.tokens()
    common = {"filters": filters, "directory": directory, "dim": dim.dim, "whole": True}  # totals only
    current, previous = await agg.groups_many((window.range, common), (window.previous, common))
    fresh = await agg.freshness()
    total = current.total()
    previous_total = previous.total().spend
    # columns, not a Totals per key: 20,000 tokens are ranked and apportioned, `limit` of them shown
    keys, sums = current.sums_by(*dim.columns)
    was = previous.spend_by(*dim.columns)
    order = np.lexsort((np.array([str(k) for k in keys], dtype=str), -sums["spend"]))
    by_spend = sums["spend"][order]  # by spend, descending; ties by key, as `ranked` orders them
    spends = micro_parts(by_spend, total.spend)
    saved = micro_parts(sums["saved_by_cache"][order], total.saved_by_cache)
    tenths = share_tenths(by_spend, total.spend)
    shown = [(keys[i], totals_at(sums, i), was.get(keys[i], 0.0)) for i in order[:limit].tolist()]
    items = [
        _item(dim.key_fields(key, directory), t, _usd(spends[n]), _usd(saved[n]), _pct(tenths, n, n + 1), prev)
        for n, (key, t, prev) in enumerate(shown)
    ]
    first = dim.fields[0]
    others = others_line = None
    if len(keys) > limit:
        rest = rest_of(total, [t for _, t, _ in shown])  # total's bad rows count only in `excluded`
        rest_spend, rest_saved = _usd(spends[limit:].sum()), _usd(saved[limit:].sum())
        others = SpendOthers(
            count=len(keys) - limit, spend=rest_spend, requests=rest.requests, saved_by_cache=rest_saved
        )
        # the previous spend of the keys past `limit`: all of it, less the keys shown and those gone since
        gone = set(was).difference(keys)
        rest_prev = math.fsum(was.values()) - math.fsum(p for _, _, p in shown) - math.fsum(was[k] for k in gone)
        others_line = _item({first: OTHERS}, rest, rest_spend, rest_saved, _pct(tenths, limit, len(keys)), rest_prev)
    answer = Spend(
        range=time_range(window.range),
        group_by=group_by,
        currency="USD",
        spend=money(total.spend),
        previous=PreviousPeriod(range=time_range(window.previous), spend=money(previous_total)),
        items=items,
        others=others,
        pricing=pricing_coverage(current, agg.pricing),
        data_quality=data_quality(current, fresh),
        as_of=iso(fresh.now),
        latest_request_at=iso(fresh.latest) if fresh.latest else None,
    )
    whole = _item(
        {first: TOTAL},
        total,
        money(total.spend),
        money(total.saved_by_cache),
        100.0 if total.spend else None,
        previous_total,
    )
    return SpendTable(answer, others_line, whole)
