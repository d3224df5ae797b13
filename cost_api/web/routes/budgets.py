"""The budget routes: answered from the tracker's in-memory figures, never from the database."""

from __future__ import annotations

from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter

from cost_api.watch.budget_problem import BudgetCheck, BudgetOverview, BudgetStatus
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.admission import LIGHT
from cost_api.web.routes.budget_check import CheckAnswers, checked, kept_answer
from cost_api.web.scope import covers, forbidden, key_scope


class BudgetsController(Controller):
    path = "/v1/budgets"
    tags = ["budgets"]

    @get(
        "/",
        summary="Every configured budget (per endpoint, token or tag value): spent, remaining and status in its "
        "current period",
        opt=LIGHT,
    )
    async def budgets(
        self,
        request: Request[Any, Any, Any],
        budgets: NamedDependency[BudgetTracker],
    ) -> BudgetOverview:
        answer = budgets.overview_answer()
        key = key_scope(request.scope)
        if key is None:
            return answer
        directory = await budgets.aggregator.tokens()  # the service's: one dependency, no task group
        items = [item for item in answer.items if covers(key, *subject(item), directory)]
        return msgspec.structs.replace(answer, items=items)

    @get(
        "/check",
        opt=LIGHT,
        before_request=kept_answer,  # answers all but a scoped key's checks before the handler's parameters
        summary="What a gateway calls before the provider call",
        description="200 while every budget that applies is under its cap — the endpoint's, the token's and "
        "those of the tags the token carries now; 422 problem once any is exceeded; when the figure is stale, "
        "200 with `stale: true` (fail open) or 503 (fail closed).",
        responses={
            400: ResponseSpec(None, description="`endpoint` is missing, or `token` is given blank"),
            422: ResponseSpec(
                None,
                description="A budget that applies is exceeded (`type` ending in `budget-exceeded`, with "
                "`endpoint`, `token`, `tags`, `period`, `limit_usd`, `spent`, `resets_at`, `exceeded`, `budgets`)",
            ),
            503: ResponseSpec(None, description="The figure is stale and `budget_fail_mode` is closed"),
        },
    )
    async def check(
        self,
        request: Request[Any, Any, Any],
        answers: NamedDependency[CheckAnswers],
        endpoint: Annotated[
            str | None, QueryParameter(description="the gateway route, as logged in request_log.endpoint")
        ] = None,
        token: Annotated[
            str | None,
            QueryParameter(description="the calling token: its id or displayed prefix; omitted: an anonymous call"),
        ] = None,
    ) -> BudgetCheck:
        endpoint = checked(endpoint, token)
        key = key_scope(request.scope)
        tokens = answers.tracker.aggregator.tokens  # the service's aggregator: the route's one dependency
        if key is not None and not covers(key, "endpoint", endpoint, await tokens()):
            raise forbidden("endpoint", f"the budgets of endpoint={endpoint} are outside this key's scope")
        # the encoded bytes of BudgetCheck (or its 422 problem): the annotation keeps the OpenAPI schema
        return cast(BudgetCheck, answers.answer(endpoint, token))


def subject(item: BudgetStatus) -> tuple[str, str]:
    """What a budget caps as a scope sees a figure: (`endpoint` | `token` | `tag:<key>`, its value)."""
    if item.endpoint is not None:
        return "endpoint", item.endpoint
    if item.token is not None:
        return "token", item.token
    key, _, value = (item.tag or "").partition(":")
    return f"tag:{key}", value
