"""create_app: the Litestar application around a Service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.exceptions import HTTPException

from cost_api.config import Settings
from cost_api.errors import CostApiError
from cost_api.logs import logging_config
from cost_api.store.database import DatabaseUnavailable, QueryTimeout
from cost_api.watch.alerts import AlertEngine
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.admission import Admission, AdmissionMiddleware, DeadlineMiddleware, heavy_paths
from cost_api.web.auth import ApiKeyMiddleware, KeyChecker, document_security, open_paths
from cost_api.web.metrics import metrics_endpoint, prometheus_config
from cost_api.web.problems import (
    ProblemError,
    document_problems,
    handle_domain,
    handle_http,
    handle_problem,
    handle_unexpected,
    problem_response,
)
from cost_api.web.routes.alerts import AlertsController
from cost_api.web.routes.analytics import AnalyticsController
from cost_api.web.routes.budget_check import CheckAnswers
from cost_api.web.routes.budgets import BudgetsController
from cost_api.web.routes.grafana import GrafanaController
from cost_api.web.routes.lookahead import LookaheadController
from cost_api.web.routes.ops import healthz, readyz
from cost_api.web.routes.page import page_routes
from cost_api.web.routes.params import common, refuse_control_characters
from cost_api.web.routes.pricing import PricingController
from cost_api.web.routes.schema import openapi_config
from cost_api.web.service import Service, build_service


def _unavailable(_: Any, exc: DatabaseUnavailable) -> Any:
    return problem_response(ProblemError(503, str(exc), headers={"Retry-After": "5"}))


def _timeout(_: Any, exc: QueryTimeout) -> Any:
    return problem_response(ProblemError(504, str(exc)))


def _document(app: Litestar, checker: KeyChecker) -> None:
    """The served OpenAPI document: the key requirement (when keys are configured) and every error
    answer as a problem document (401 where a key is needed, 503/504 where the log is read)."""
    openapi = app.openapi_schema
    is_open = open_paths(app)
    if checker.enabled:
        document_security(openapi, is_open)

    reading = heavy_paths(app)

    def statuses(path: str) -> set[int]:
        found = {401, *((403,) if checker.scoped else ())} if checker.enabled and not is_open(path) else set()
        if path in reading:
            found |= {503, 504}
        if path == "/readyz":
            found.add(503)
        if path == "/v1/pricing/resolve":
            found.add(404)  # an unpriced model
        return found

    document_problems(openapi, statuses)


def _dependencies(service: Service, budgets: BudgetTracker, alerts: AlertEngine) -> dict[str, Provide]:
    """What a handler receives by naming it (`service: NamedDependency[Service]`), declared once for
    every route: the objects create_app built, and the query parameters the /v1 routes share. Only what
    a handler (or a dependency it takes) names is resolved, and none is an OpenAPI parameter."""

    def provide_service() -> Service:
        return service

    def provide_budgets() -> BudgetTracker:
        return budgets

    def provide_alerts() -> AlertEngine:
        return alerts

    answers = CheckAnswers(budgets)

    def provide_answers() -> CheckAnswers:
        return answers

    return {
        "service": Provide(provide_service, sync_to_thread=False),
        "budgets": Provide(provide_budgets, sync_to_thread=False),
        "alerts": Provide(provide_alerts, sync_to_thread=False),
        "answers": Provide(provide_answers, sync_to_thread=False),
        "common": Provide(common),
    }


def create_app(
    settings: Settings,
    service: Service | None = None,
    budgets: BudgetTracker | None = None,
    alerts: AlertEngine | None = None,
) -> Litestar:
    checker = KeyChecker.from_settings(settings)
    service = service or build_service(settings)
    admission = Admission(settings.max_concurrent_queries)
    budgets = budgets or BudgetTracker(settings, service.aggregator)
    alerts = alerts or AlertEngine(settings, service, budgets)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rollups = asyncio.create_task(service.aggregator.maintain(), name="rollups")
        await budgets.start()
        await alerts.start()
        try:
            yield
        finally:
            await alerts.stop()
            await budgets.stop()
            rollups.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rollups
            await service.close()

    app = Litestar(
        route_handlers=[
            AnalyticsController,
            LookaheadController,
            AlertsController,
            BudgetsController,
            GrafanaController,
            PricingController,
            healthz,
            readyz,
            metrics_endpoint,
            *page_routes(),
        ],
        # outermost first: metrics see every answer, the deadline counts from arrival, 401s before any
        # admission slot is taken
        middleware=[
            prometheus_config().middleware,
            DeadlineMiddleware(settings.query_timeout.seconds),
            *([ApiKeyMiddleware(checker)] if checker.enabled else []),
            AdmissionMiddleware(admission),
        ],
        exception_handlers={
            ProblemError: handle_problem,
            CostApiError: handle_domain,
            HTTPException: handle_http,
            DatabaseUnavailable: _unavailable,
            QueryTimeout: _timeout,
            Exception: handle_unexpected,
        },
        dependencies=_dependencies(service, budgets, alerts),
        before_request=refuse_control_characters,
        logging_config=logging_config(),
        lifespan=[lifespan],
        openapi_config=openapi_config(),
        cors_config=(
            CORSConfig(allow_origins=settings.cors_origins, expose_headers=["Retry-After", "WWW-Authenticate"])
            if settings.cors_origins
            else None
        ),
    )
    _document(app, checker)
    # For tests and tools holding only the app; no route reads app.state (tests/api/test_dependencies.py).
    app.state.admission = admission
    app.state.service = service
    app.state.budgets = budgets
    app.state.alerts = alerts
    return app
