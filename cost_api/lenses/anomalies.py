"""GET /v1/anomalies — the episodes of the window, newest first: the rules replayed over it
(watch/anomalies.py), with the window's pricing and data-quality blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from msgspec import Meta

from cost_api.aggregation.blocks import (
    AsOf,
    Block,
    DataQuality,
    Instant,
    LatestRequestAt,
    Money,
    PricingCoverage,
    TimeRange,
    data_quality,
    pricing_coverage,
    time_range,
)
from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.watch.alerts import Rule
from cost_api.watch.anomalies import Watched, episodes
from cost_api.windows import Window, iso

if TYPE_CHECKING:
    from cost_api.watch.budgets import BudgetTracker


class AnomalyEpisode(Block):
    """One episode of one rule on one value of a dimension (docs/alerts.md)."""

    id: Annotated[str, Meta(description="the same on every replica and after every restart")]
    rule: Rule
    dimension: Annotated[str, Meta(description="endpoint, token, provider or model")]
    key: Annotated[str, Meta(description="the value, as displayed (a token: prefix…)")]
    started_at: Instant
    ended_at: Annotated[Instant | None, Meta(description="null while open")]
    peak_ratio: Annotated[float | None, Meta(description="the highest ratio to the baseline; null: a zero baseline")]
    spend: Money


class Anomalies(Block):
    """GET /v1/anomalies."""

    range: TimeRange
    items: list[AnomalyEpisode]
    pricing: PricingCoverage
    data_quality: DataQuality
    as_of: AsOf
    latest_request_at: LatestRequestAt


async def anomalies_answer(service: Watched, window: Window, *, budgets: BudgetTracker | None = None) -> Anomalies:
    """`GET /v1/anomalies`: the episodes of the window, newest first."""
    agg = service.aggregator
    found, groups = await gather_or_cancel(episodes(service, window.range, budgets=budgets), agg.groups(window.range))
    fresh = await agg.freshness()
    return Anomalies(
        range=time_range(window.range),
        items=[AnomalyEpisode(**episode) for episode in found],
        pricing=pricing_coverage(groups, agg.pricing),
        data_quality=data_quality(groups, fresh),
        as_of=iso(fresh.now),
        latest_request_at=iso(fresh.latest) if fresh.latest else None,
    )
