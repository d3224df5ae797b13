"""GET /v1/tags — the tokens' tag keys, each with its values and their spend over the range."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from cost_api.aggregation.aggregator import Aggregator, Filters, ranked
from cost_api.aggregation.blocks import AsOf, Block, Money, Pct, TimeRange, money, pct, time_range
from cost_api.windows import Window, epoch_ms, iso


class TagValue(Block):
    value: Annotated[str, Meta(description="(untagged): tokens without the key, and anonymous requests")]
    spend: Money
    share_pct: Pct | None
    requests: int
    tokens: Annotated[int, Meta(description="tokens that carry this value now (0 for (untagged))")]


class TagKey(Block):
    key: str
    values: Annotated[list[TagValue], Meta(description="by spend over the range, descending")]


class Tags(Block):
    """GET /v1/tags."""

    range: TimeRange
    currency: str
    spend: Money
    keys: list[TagKey]
    as_of: AsOf


async def tags_answer(agg: Aggregator, window: Window, *, filters: Filters) -> Tags:
    directory = await agg.tokens()
    book = await agg.tag_book(directory)
    common = {"filters": filters, "directory": directory, "whole": True}
    current, *per_key = await agg.groups_many(
        (window.range, common), *((window.range, {**common, "dim": f"tag:{key}"}) for key in book.keys)
    )
    carriers: dict[tuple[str, str], int] = {}
    for tags in book.epochs[book.epoch_at(epoch_ms(agg.now()))].values():
        for key, value in tags.items():
            carriers[key, value] = carriers.get((key, value), 0) + 1
    total = current.total().spend
    keys = []
    for key, groups in zip(book.keys, per_key, strict=True):
        rows = ranked(groups.by("key"), {})
        values = [
            TagValue(
                value=value,
                spend=money(t.spend),
                share_pct=pct(t.spend, total),
                requests=t.requests,
                tokens=carriers.get((key, value), 0),
            )
            for value, t, _ in rows
        ]
        keys.append(TagKey(key=key, values=values))
    return Tags(
        range=time_range(window.range),
        currency="USD",
        spend=money(total),
        keys=keys,
        as_of=iso(agg.now()),
    )
