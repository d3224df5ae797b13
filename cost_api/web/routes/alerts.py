"""`GET /v1/anomalies` (the rules replayed over a window) and `GET /v1/alerts` (the live engine's events)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from cost_api.errors import BadParameter
from cost_api.lenses.anomalies import Anomalies, AnomalyEpisode, AnomalyIncident, anomalies_answer
from cost_api.watch.alerts import AlertEngine, Alerts
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.admission import LIGHT
from cost_api.web.routes.params import Common
from cost_api.web.scope import covers, key_scope, refuse
from cost_api.web.service import Service


class AlertsController(Controller):
    path = "/v1"
    tags = ["alerts"]

    @get(
        "/anomalies",
        summary="What would have alerted: the rules replayed hour by hour over the window (default 14d)",
        description="Incidents (the default; the largest impact first, under `alerts.min_impact` left out), "
        "each with its root, related keys and episodes; `view=episodes`: the raw episodes of `burn_rate`, "
        "`new_spender`, `request_storm` per value of each configured dimension and the budget rules of the "
        "current periods, newest first. `ended_at` is null while open. "
        "The filters do not apply: every rule watches every value of its dimension; a scoped key sees the "
        "incidents within its scope.",
    )
    async def anomalies(
        self,
        request: Request[Any, Any, Any],
        common: NamedDependency[Common],
        service: NamedDependency[Service],
        budgets: NamedDependency[BudgetTracker],
        view: Annotated[str, QueryParameter(description="incidents (default) or episodes")] = "incidents",
    ) -> Anomalies:
        if view not in ("incidents", "episodes"):
            raise BadParameter("view", f"expected incidents or episodes; got {view}")
        filters = common.asked
        for name, given in (
            ("provider", filters.providers),
            ("model", filters.models),
            ("endpoint", filters.endpoints),
            ("token", filters.tokens),
        ):
            if given:
                raise BadParameter(name, "filters do not apply to anomalies: each rule watches every value")
        key = key_scope(request.scope)
        answer = await anomalies_answer(
            service, common.window("14d"), budgets=budgets, view=view, filters=common.filters
        )
        if key is None:
            return answer
        directory = await service.aggregator.tokens()

        def seen(episodes: list[AnomalyEpisode]) -> bool:
            return all(covers(key, e.dimension, e.key, directory) for e in episodes)

        items = [i for i in answer.items if seen(i.episodes if isinstance(i, AnomalyIncident) else [i])]
        return msgspec.structs.replace(answer, items=items)

    @get(
        "/alerts",
        summary="Recent webhook events of the live engine, newest first, with their delivery state",
        opt=LIGHT,  # answered from memory
    )
    async def alerts(self, request: Request[Any, Any, Any], alerts: NamedDependency[AlertEngine]) -> Alerts:
        refuse(key_scope(request.scope), "/v1/alerts")
        return alerts.overview()
