"""The look-ahead routes: /v1/forecast (the current period projected) and /v1/whatif (re-pricing)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from cost_api.lenses.forecast import Forecast, forecast_answer
from cost_api.lenses.whatif import WhatIf, scenario, whatif_answer
from cost_api.web.routes.params import Common, GroupBy, Limit, limit_param
from cost_api.web.service import Service


class LookaheadController(Controller):
    path = "/v1"
    tags = ["analytics"]

    @get("/forecast", summary="The current day, week or month: spend so far, projected total, 80% band")
    async def forecast(
        self,
        common: NamedDependency[Common],
        service: NamedDependency[Service],
        period: Annotated[str, QueryParameter(description="day, week (ISO) or month, in tz")] = "month",
        group_by: Annotated[
            str | None, QueryParameter(description="provider, endpoint, token, model or tag:<key>: an item per key")
        ] = None,
        limit: Limit = 50,
    ) -> Forecast:
        return await forecast_answer(
            service.aggregator,
            period=period,
            tz=common.tz,
            group_by=group_by,
            limit=limit_param(limit),
            filters=common.filters,
        )

    @get("/whatif", summary="The window's spend re-priced: models substituted, discounts, a price book")
    async def whatif(
        self,
        common: NamedDependency[Common],
        service: NamedDependency[Service],
        map_: Annotated[
            list[str] | None,
            QueryParameter(name="map", description="provider/model=provider/model: the second instead; repeatable"),
        ] = None,
        discount: Annotated[
            list[str] | None, QueryParameter(description="provider:percent off (0–100); repeatable")
        ] = None,
        book: Annotated[str | None, QueryParameter(description="a price book of whatif_price_books")] = None,
        group_by: GroupBy = "provider",
        limit: Limit = 50,
    ) -> WhatIf:
        sc = scenario(
            service.aggregator.pricing, service.price_books, maps=map_ or [], discounts=discount or [], book=book
        )
        return await whatif_answer(
            service.aggregator,
            common.window("30d"),
            sc,
            group_by=group_by,
            limit=limit_param(limit),
            filters=common.filters,
        )
