"""The /v1 analytics routes: thin handlers that parse parameters and call a lens."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from ..service import Service
from ..summary import summary
from ..windows import parse_duration
from .params import Common, common, service


class AnalyticsController(Controller):
    path = "/v1"
    tags = ["analytics"]
    dependencies = {"common": Provide(common), "service": Provide(service, sync_to_thread=False)}

    @get("/summary", summary="The headline block")
    async def summary(
        self,
        common: NamedDependency[Common],
        service: NamedDependency[Service],
        top_window: Annotated[str, QueryParameter(description="duration for the top lists")] = "7d",
        top: Annotated[int, QueryParameter(ge=1, le=100, description="rows per top list")] = 3,
    ) -> dict[str, Any]:
        window = common.window("30d")
        return await summary(
            service.aggregator,
            window,
            top_window=parse_duration("top_window", top_window),
            top=top,
            filters=common.filters,
        )
