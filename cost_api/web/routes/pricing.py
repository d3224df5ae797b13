"""The /v1/pricing routes: the effective price table, resolving one model, the unpriced models."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from cost_api.lenses import pricing as prices
from cost_api.lenses.pricing import PricingTable, ResolvedPrice, UnpricedModels
from cost_api.web.admission import LIGHT
from cost_api.web.routes.params import Common
from cost_api.web.service import Service
from cost_api.windows import parse_instant


class PricingController(Controller):
    path = "/v1/pricing"
    tags = ["pricing"]

    @get("", summary="The effective price table (built-in and overrides)", opt=LIGHT)
    async def table(self, service: NamedDependency[Service]) -> PricingTable:
        return prices.table(service.pricing)

    @get("/resolve", summary="Which entry and price a logged model gets", opt=LIGHT)
    async def resolve(
        self,
        service: NamedDependency[Service],
        provider: Annotated[str, QueryParameter(description="as logged, e.g. openai")] = "",
        model: Annotated[str, QueryParameter(description="as logged, e.g. gpt-4o-mini-2024-07-18")] = "",
        at: Annotated[str | None, QueryParameter(description="RFC 3339 or epoch ms; default now")] = None,
    ) -> ResolvedPrice:
        return prices.resolve(service.pricing, provider, model, parse_instant("at", at) if at else service.clock.now())

    @get("/unpriced", summary="Logged models without a price (window=30d)")
    async def unpriced(self, common: NamedDependency[Common], service: NamedDependency[Service]) -> UnpricedModels:
        return await prices.unpriced(service.aggregator, common.window("30d"), filters=common.filters)
