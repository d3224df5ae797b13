"""create_app: the Litestar application around a Service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig

from . import __version__
from .config import Settings
from .db import DatabaseUnavailable, QueryTimeout
from .errors import ProblemError, handle_http, handle_problem, handle_unexpected, problem_response
from .routes.analytics import AnalyticsController
from .routes.ops import healthz, readyz
from .service import Service, build_service


def _unavailable(_: Any, exc: DatabaseUnavailable) -> Any:
    return problem_response(ProblemError(503, str(exc), headers={"Retry-After": "5"}))


def _timeout(_: Any, exc: QueryTimeout) -> Any:
    return problem_response(ProblemError(504, str(exc)))


def create_app(settings: Settings, service: Service | None = None) -> Litestar:
    service = service or build_service(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.close()

    app = Litestar(
        route_handlers=[AnalyticsController, healthz, readyz],
        exception_handlers={
            ProblemError: handle_problem,
            HTTPException: handle_http,
            DatabaseUnavailable: _unavailable,
            QueryTimeout: _timeout,
            Exception: handle_unexpected,
        },
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(title="cost-api", version=__version__, path="/schema"),
        cors_config=CORSConfig(allow_origins=settings.cors_origins) if settings.cors_origins else None,
    )
    app.state.service = service
    return app
