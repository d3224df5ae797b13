"""The /v1 analytics routes: thin handlers that parse parameters and call a lens."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from cost_api.lenses import focus, live, savings, spend, trend
from cost_api.lenses import requests as audit
from cost_api.lenses.live import Live
from cost_api.lenses.requests import Requests
from cost_api.lenses.savings import Savings
from cost_api.lenses.spend import Spend
from cost_api.lenses.summary import Summary, summary_answer
from cost_api.lenses.tags import Tags, tags_answer
from cost_api.lenses.trend import Trend
from cost_api.web.csv import answer_format, csv_response, filename, wants_csv
from cost_api.web.routes.params import Common, GroupBy, Limit, limit_param
from cost_api.web.service import Service
from cost_api.windows import parse_duration

Format = Annotated[
    str | None,
    QueryParameter(name="format", description="json (default) or csv; `Accept: text/csv` also gives CSV"),
]
SPEND_FORMATS = ("json", "csv", "focus")


class AnalyticsController(Controller):
    path = "/v1"
    tags = ["analytics"]

    @get("/summary", summary="The headline block")
    async def summary(
        self,
        common: NamedDependency[Common],
        service: NamedDependency[Service],
        top_window: Annotated[str, QueryParameter(description="duration for the top lists")] = "7d",
        top: Annotated[int, QueryParameter(ge=1, le=100, description="rows per top list")] = 3,
        top_tags: Annotated[
            str | None, QueryParameter(description="a tag key: its top values too (default: summary_top_tags)")
        ] = None,
    ) -> Summary:
        window = common.window("30d")
        return await summary_answer(
            service.aggregator,
            window,
            top_window=parse_duration("top_window", top_window),
            top=top,
            filters=common.filters,
            top_tags=top_tags or service.settings.summary_top_tags,
        )

    @get("/spend", summary="Spend by provider, endpoint, token, model or tag, with the previous period")
    async def spend(
        self,
        request: Request[Any, Any, Any],
        common: NamedDependency[Common],
        service: NamedDependency[Service],
        group_by: GroupBy = "provider",
        limit: Limit = 50,
        format_: Annotated[
            str | None,
            QueryParameter(
                name="format",
                description="json (default), csv (the items, an (others) and a (total) line) or focus "
                "(a FinOps FOCUS 1.2 dataset: one row per day, tag value and model; needs group_by=tag:<key>)",
            ),
        ] = None,
    ) -> Response[Spend]:  # or the items as CSV, or the FOCUS rows
        kind = answer_format(request, format_, SPEND_FORMATS)
        window = common.window("30d")
        if kind == "focus":
            rows = await focus.focus_rows(service.aggregator, window, group_by=group_by, filters=common.filters)
            return csv_response(rows, columns=focus.COLUMNS, filename=filename("focus", window.range, group_by[4:]))
        table = await spend.spend_table(
            service.aggregator, window, group_by=group_by, limit=limit_param(limit), filters=common.filters
        )
        if kind == "csv":
            return csv_response(
                table.rows(),
                columns=spend.csv_columns(group_by),
                filename=filename("spend", window.range, group_by),
            )
        return Response(table.answer)

    @get("/savings", summary="What the response cache saved, per key and per local day")
    async def savings(
        self,
        request: Request[Any, Any, Any],
        common: NamedDependency[Common],
        service: NamedDependency[Service],
        group_by: Annotated[
            str, QueryParameter(description="endpoint, model, provider, token, cache_key or tag:<key>")
        ] = "endpoint",
        limit: Limit = 50,
        format_: Format = None,
    ) -> Response[Savings]:  # or the items as CSV
        as_csv = wants_csv(request, format_)
        window = common.window("30d")
        body = await savings.savings_answer(
            service.aggregator, window, group_by=group_by, limit=limit_param(limit), filters=common.filters
        )
        if as_csv:
            return csv_response(
                body.items,
                columns=savings.csv_columns(group_by),
                filename=filename("savings", window.range, group_by),
            )
        return Response(body)

    @get("/live", summary="The last hour: spend, savings, errors, burn rate, freshness")
    async def live(self, common: NamedDependency[Common], service: NamedDependency[Service]) -> Live:
        return await live.live_answer(service.aggregator, common.window("1h"), filters=common.filters)

    @get("/tags", summary="The tokens' tag keys, each with its values and their spend")
    async def tag_keys(self, common: NamedDependency[Common], service: NamedDependency[Service]) -> Tags:
        return await tags_answer(service.aggregator, common.window("30d"), filters=common.filters)

    @get("/requests", summary="The audit rows behind any number, newest first")
    async def requests(
        self,
        request: Request[Any, Any, Any],
        common: NamedDependency[Common],
        service: NamedDependency[Service],
        limit: Annotated[int, QueryParameter(description="rows per page (1–1000)")] = 100,
        cursor: Annotated[str | None, QueryParameter(description="the `next` of the previous page")] = None,
        format_: Format = None,
    ) -> Response[Requests]:  # or the items as CSV
        as_csv = wants_csv(request, format_)
        window = common.window("24h")
        body = await audit.requests_answer(
            service.aggregator, window, limit=limit_param(limit), cursor=cursor, filters=common.filters
        )
        if as_csv:
            return csv_response(
                body.items,
                columns=audit.COLUMNS,
                filename=filename("requests", window.range),
                headers={"X-Next-Cursor": body.next} if body.next else None,
            )
        return Response(body)

    @get("/trend", summary="Spend per local day (or hour), in total or one series per key")
    async def trend(
        self,
        request: Request[Any, Any, Any],
        common: NamedDependency[Common],
        service: NamedDependency[Service],
        interval: Annotated[str, QueryParameter(description="day or hour, local to tz")] = "day",
        group_by: Annotated[
            str | None, QueryParameter(description="provider, endpoint, token, model or tag:<key>: a series per key")
        ] = None,
        top: Annotated[int, QueryParameter(ge=1, le=100, description="series before `other`")] = 8,
        format_: Format = None,
    ) -> Response[Trend]:  # or the points as CSV
        as_csv = wants_csv(request, format_)
        window = common.window("30d")
        body = await trend.trend(
            service.aggregator, window, interval=interval, group_by=group_by, top=top, filters=common.filters
        )
        if as_csv:
            return csv_response(
                trend.csv_rows(body),
                columns=trend.csv_columns(interval),
                filename=filename("trend", window.range, interval, *([group_by] if group_by else [])),
            )
        return Response(body)
