"""GET /v1/summary — the headline block: spend, saved by cache, change, by provider, top lists."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from msgspec import Meta

from cost_api.aggregation.aggregator import Aggregator, Filters, top_ranked
from cost_api.aggregation.blocks import (
    AsOf,
    Block,
    DataQuality,
    LatestRequestAt,
    Money,
    Pct,
    PreviousPeriod,
    PricingCoverage,
    TimeRange,
    change_pct,
    data_quality,
    money,
    pct,
    pricing_coverage,
    time_range,
)
from cost_api.windows import Range, Window, iso


class ProviderShare(Block):
    provider: str
    spend: Money
    share_pct: Pct | None


class TopEndpoint(Block):
    endpoint: str
    spend: Money
    change_pct: Pct | None


class TopEndpoints(Block):
    """The endpoints that spent most over `top_window` ending at `to`, against the `top_window` before."""

    range: TimeRange
    items: list[TopEndpoint]


class TopToken(Block):
    token: str
    name: str | None
    spend: Money
    change_pct: Pct | None


class TopTokens(Block):
    """The tokens that spent most over `top_window` ending at `to`, against the `top_window` before."""

    range: TimeRange
    items: list[TopToken]


class TopTag(Block):
    tag: Annotated[str, Meta(description="the key's value; (untagged): tokens without it and anonymous requests")]
    spend: Money
    change_pct: Pct | None


class TopTags(Block):
    """`top_tags=<key>`: the key's values that spent most over `top_window` ending at `to`, against the
    `top_window` before."""

    key: str
    range: TimeRange
    items: list[TopTag]


class Summary(Block):
    """GET /v1/summary."""

    range: TimeRange
    currency: Literal["USD"]
    spend: Money
    saved_by_cache: Money
    saved_pct: Pct | None
    previous: PreviousPeriod
    change: Money
    change_pct: Pct | None
    requests: int
    cache_hits: int
    by_provider: list[ProviderShare]
    top_endpoints: TopEndpoints
    top_tokens: TopTokens
    top_tags: Annotated[TopTags | None, Meta(description="with `top_tags=<key>` (or its setting), else null")]
    pricing: PricingCoverage
    data_quality: DataQuality
    as_of: AsOf
    latest_request_at: LatestRequestAt


async def summary_answer(
    agg: Aggregator, window: Window, *, top_window: timedelta, top: int, filters: Filters, top_tags: str | None = None
) -> Summary:
    end = window.range.end
    top_range = Range(end - top_window, end)
    top_previous = Range(end - 2 * top_window, end - top_window)
    directory = await agg.tokens()
    common = {"filters": filters, "directory": directory, "whole": True}  # totals only: no buckets
    current, previous, ep_now, ep_before, tok_now, tok_before = await agg.groups_many(
        (window.range, common),
        (window.previous, common),
        (top_range, {**common, "dim": "endpoint"}),
        (top_previous, {**common, "dim": "endpoint"}),
        (top_range, {**common, "dim": "token"}),
        (top_previous, {**common, "dim": "token"}),
    )
    tags = None
    if top_tags is not None:
        (await agg.tag_book(directory)).check(top_tags, "top_tags")
        by_tag = {**common, "dim": f"tag:{top_tags}"}
        tag_now, tag_before = await agg.groups_many((top_range, by_tag), (top_previous, by_tag))
        tags = TopTags(
            key=top_tags,
            range=time_range(top_range),
            items=[
                TopTag(tag=key, spend=money(t.spend), change_pct=change_pct(t.spend, prev))
                for key, t, prev in top_ranked(tag_now, tag_before, top)
            ],
        )
    fresh = await agg.freshness()
    total = current.total()
    before = previous.total()
    by_provider = sorted(current.by("provider").items(), key=lambda kv: (-kv[1].spend, kv[0]))
    endpoints = top_ranked(ep_now, ep_before, top)
    tokens = top_ranked(tok_now, tok_before, top)
    return Summary(
        range=time_range(window.range),
        currency="USD",
        spend=money(total.spend),
        saved_by_cache=money(total.saved_by_cache),
        saved_pct=pct(total.saved_by_cache, total.spend),
        previous=PreviousPeriod(range=time_range(window.previous), spend=money(before.spend)),
        change=money(total.spend - before.spend),
        change_pct=change_pct(total.spend, before.spend),
        requests=total.requests,
        cache_hits=total.cache_hits,
        by_provider=[
            ProviderShare(provider=p, spend=money(t.spend), share_pct=pct(t.spend, total.spend)) for p, t in by_provider
        ],
        top_endpoints=TopEndpoints(
            range=time_range(top_range),
            items=[
                TopEndpoint(endpoint=key, spend=money(t.spend), change_pct=change_pct(t.spend, prev))
                for key, t, prev in endpoints
            ],
        ),
        top_tokens=TopTokens(
            range=time_range(top_range),
            items=[
                TopToken(
                    token=directory.display(key)[0],
                    name=directory.display(key)[1],
                    spend=money(t.spend),
                    change_pct=change_pct(t.spend, prev),
                )
                for key, t, prev in tokens
            ],
        ),
        top_tags=tags,
        pricing=pricing_coverage(current, agg.pricing),
        data_quality=data_quality(current, fresh),
        as_of=iso(fresh.now),
        latest_request_at=iso(fresh.latest) if fresh.latest else None,
    )
