"""GET /v1/anomalies — the incidents of the window, the largest impact first (`view=episodes`: the raw
episodes, newest first): the rules replayed over it (watch/anomalies.py) and grouped
(watch/incidents.py), with the window's pricing and data-quality blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from cost_api.aggregation.aggregator import NO_FILTERS, Filters
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
from cost_api.watch.anomalies import Watched, replay
from cost_api.watch.incidents import coarse_alone, grouped
from cost_api.windows import Window, iso

if TYPE_CHECKING:
    from cost_api.watch.budgets import BudgetTracker


class AnomalyEpisode(Block, tag_field="kind", tag="episode"):
    """One episode of one rule on one value of a dimension (docs/alerts.md)."""

    id: Annotated[str, Meta(description="the same on every replica and after every restart")]
    rule: Rule
    dimension: Annotated[str, Meta(description="endpoint, token, provider or model")]
    key: Annotated[str, Meta(description="the value, as displayed (a token: prefix…)")]
    started_at: Instant
    ended_at: Annotated[Instant | None, Meta(description="null while open")]
    peak_ratio: Annotated[float | None, Meta(description="the highest ratio to the baseline; null: a zero baseline")]
    spend: Money
    extra: Annotated[Money, Meta(description="spend over the key's usual spend (B1) in its holding hours")]
    baseline_days: Annotated[
        int, Meta(description="the days of log its baselines covered in its last hour: 7, fewer in a young log")
    ]


class AnomalyIncident(Block, tag_field="kind", tag="incident"):
    """The episodes of one problem (docs/alerts.md): named by its root, ranked by its impact."""

    id: Annotated[str, Meta(description="the same on every replica and after every restart")]
    rule: Annotated[Rule, Meta(description="the root episode's rule")]
    dimension: Annotated[str, Meta(description="the root's dimension: the most specific that explains the spend")]
    key: Annotated[str, Meta(description="the root's value, as displayed")]
    started_at: Instant
    ended_at: Annotated[Instant | None, Meta(description="null while any of its episodes is open")]
    impact: Annotated[Money, Meta(description="the spend over the baseline so far (its episodes' largest extra)")]
    impact_per_hour: Annotated[Money, Meta(description="impact per hour from its start to its end (or now)")]
    related: Annotated[list[str], Meta(description="the other keys, as `dimension:key`")]
    episodes: list[AnomalyEpisode]


class Anomalies(Block):
    """GET /v1/anomalies."""

    range: TimeRange
    view: Annotated[str, Meta(description="incidents (the default) or episodes")]
    items: Annotated[
        list[AnomalyIncident | AnomalyEpisode],
        Meta(description="incidents (`kind` incident), or with view=episodes the episodes (`kind` episode)"),
    ]
    pricing: PricingCoverage
    data_quality: DataQuality
    as_of: AsOf
    latest_request_at: LatestRequestAt


async def anomalies_answer(
    service: Watched,
    window: Window,
    *,
    budgets: BudgetTracker | None = None,
    view: str = "incidents",
    filters: Filters = NO_FILTERS,
) -> Anomalies:
    """`GET /v1/anomalies`: the incidents of the window, the largest impact first, or (`view="episodes"`)
    the episodes, newest first."""
    agg = service.aggregator
    found, groups = await gather_or_cancel(
        replay(service, window.range, budgets=budgets), agg.groups(window.range, filters=filters)
    )
    fresh = await agg.freshness()
    items: Annotated[
        list[AnomalyIncident | AnomalyEpisode],
        Meta(description="incidents (`kind` incident), or with view=episodes the episodes (`kind` episode)"),
    ]
    if view == "episodes":
        items = [AnomalyEpisode(**e.as_json()) for e in found]
    else:
        now = min(window.range.end, fresh.now)
        cfg = service.settings.alerts
        kept = await grouped(service, found, cfg.min_impact, now, coarse=coarse_alone(cfg.dimensions))
        items = [_incident(i.as_json(now)) for i in kept]
    return Anomalies(
        range=time_range(window.range),
        view=view,
        items=items,
        pricing=pricing_coverage(groups, agg.pricing),
        data_quality=data_quality(groups, fresh),
        as_of=iso(fresh.now),
        latest_request_at=iso(fresh.latest) if fresh.latest else None,
    )


def _incident(raw: dict[str, Any]) -> AnomalyIncident:
    episodes = [AnomalyEpisode(**e) for e in raw.pop("episodes")]
    return AnomalyIncident(**raw, episodes=episodes)
