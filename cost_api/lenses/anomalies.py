"""GET /v1/anomalies — the episodes of the window, newest first: the rules replayed over it
(watch/anomalies.py), with the window's pricing and data-quality blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cost_api.aggregation.aggregator import data_quality_block, pricing_block
from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.watch.anomalies import Watched, episodes
from cost_api.windows import Window, iso

if TYPE_CHECKING:
    from cost_api.watch.budgets import BudgetTracker


async def anomalies(service: Watched, window: Window, *, budgets: BudgetTracker | None = None) -> dict[str, Any]:
    """`GET /v1/anomalies`: the episodes of the window, newest first."""
    agg = service.aggregator
    found, groups = await gather_or_cancel(episodes(service, window.range, budgets=budgets), agg.groups(window.range))
    fresh = await agg.freshness()
    return {
        "range": window.range.as_json(),
        "items": found,
        "pricing": pricing_block(groups, agg.pricing),
        "data_quality": data_quality_block(groups, fresh),
        "as_of": iso(fresh.now),
        "latest_request_at": iso(fresh.latest) if fresh.latest else None,
    }
