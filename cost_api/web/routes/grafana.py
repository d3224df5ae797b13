"""The Grafana JSON datasource routes under /grafana: thin handlers around cost_api.web.grafana.

Every POST answers 200 (litestar's default for POST is 201, which the plugin would still accept,
but the protocol says 200). Bodies are read raw and decoded leniently: Grafana adds keys of its own,
sends `{}` or nothing at all to some of these routes, and older plugins send other shapes.
"""

from __future__ import annotations

from typing import Any, TypeVar

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from cost_api.watch.budgets import BudgetTracker
from cost_api.web import grafana
from cost_api.web.admission import LIGHT
from cost_api.web.grafana import shapes
from cost_api.web.scope import key_scope
from cost_api.web.service import Service

# a body that is not a JSON object, an unreadable range, an unknown target, group or filter key
BAD_BODY = {400: ResponseSpec(data_container=dict[str, Any], description="A body that cannot be used")}


B = TypeVar("B", bound=grafana.Request)


async def _body(request: Request[Any, Any, Any], kind: type[B]) -> B:
    return grafana.decode(await request.body(), kind)


class GrafanaController(Controller):
    path = "/grafana"
    tags = ["grafana"]

    @get("/", summary="Save & test: 200 when the datasource URL and key are right", opt=LIGHT)
    async def test(self) -> shapes.Status:
        return shapes.Status("ok", "cost-api")

    @post("/metrics", status_code=200, summary="The targets and their payload fields", opt=LIGHT)
    async def metrics(self) -> list[shapes.Metric]:
        return grafana.metrics()  # the same whatever the body: the plugin picks the current metric

    @post(
        "/search",
        status_code=200,
        responses=BAD_BODY,
        summary="/metrics for plugins before 0.4; a variable's values by name",
    )
    async def search(
        self, request: Request[Any, Any, Any], service: NamedDependency[Service]
    ) -> list[Any]:  # TextValue or Metric items: JSON Schema's oneOf cannot tell them apart (both match a Metric)
        return await grafana.search(service, await _body(request, grafana.VariableRequest), key_scope(request.scope))

    @post("/metric-payload-options", status_code=200, responses=BAD_BODY, summary="Values for a select payload field")
    async def payload_options(
        self, request: Request[Any, Any, Any], service: NamedDependency[Service]
    ) -> list[shapes.Option]:
        return await grafana.payload_options(
            service, await _body(request, grafana.OptionsRequest), key_scope(request.scope)
        )

    @post("/query", status_code=200, responses=BAD_BODY, summary="Time series, tables and annotations for the targets")
    async def query(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[Service],
        budgets: NamedDependency[BudgetTracker],
    ) -> list[shapes.Answer]:
        return await grafana.query(
            service, await _body(request, grafana.QueryRequest), budgets, key_scope(request.scope)
        )

    @post(
        "/variable", status_code=200, responses=BAD_BODY, summary="Values of a dashboard variable: [{__text, __value}]"
    )
    async def variable(
        self, request: Request[Any, Any, Any], service: NamedDependency[Service]
    ) -> list[shapes.VariableValue]:
        return await grafana.variable(service, await _body(request, grafana.VariableRequest), key_scope(request.scope))

    @post("/tag-keys", status_code=200, summary="Ad-hoc filter keys", opt=LIGHT)
    async def tag_keys(self, service: NamedDependency[Service]) -> list[shapes.TagKey]:
        return await grafana.tag_keys(service)

    @post("/tag-values", status_code=200, responses=BAD_BODY, summary="Values of an ad-hoc filter key")
    async def tag_values(
        self, request: Request[Any, Any, Any], service: NamedDependency[Service]
    ) -> list[shapes.TagValue]:
        return await grafana.tag_values(
            service, await _body(request, grafana.TagValuesRequest), key_scope(request.scope)
        )

    @post(
        "/annotations",
        status_code=200,
        responses=BAD_BODY,
        summary="Anomaly episodes as annotations (plugins before 0.4)",
    )
    async def annotations(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[Service],
        budgets: NamedDependency[BudgetTracker],
    ) -> list[shapes.Annotation]:
        return await grafana.legacy_annotations(
            service, await _body(request, grafana.AnnotationsRequest), budgets, key_scope(request.scope)
        )
