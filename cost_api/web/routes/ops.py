"""Operational routes: liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from cost_api.store.database import DatabaseUnavailable, QueryTimeout
from cost_api.web.problems import ProblemError, problem_response
from cost_api.web.service import Service


@get("/healthz", tags=["operations"], summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["operations"], summary="The database is reachable and its log can be read")
async def readyz(service: NamedDependency[Service]) -> Response[Any]:
    """Ready only when the queries can read the log: the database answers, and `request_log` has every
    column of the contract, each of a type they read (db.SchemaMissing names what is not)."""
    try:
        return Response(await service.readiness())
    except (DatabaseUnavailable, QueryTimeout) as exc:
        return problem_response(ProblemError(503, str(exc), headers={"Retry-After": "5"}))
