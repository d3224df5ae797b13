"""Operational routes: liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from ..db import DatabaseUnavailable, QueryTimeout, SchemaMissing
from ..errors import ProblemError, problem_response


@get("/healthz", tags=["operations"], summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["operations"], summary="The database is reachable and has the schema")
async def readyz(request: Request) -> Response[Any]:
    service = request.app.state.service
    try:
        await service.db.check_schema()
        columns = await service.db.read_log_columns()  # the optional columns read (docs/request-log.md)
    except (DatabaseUnavailable, QueryTimeout, SchemaMissing) as exc:
        return problem_response(ProblemError(503, str(exc), headers={"Retry-After": "5"}))
    rollups = service.aggregator.rollups
    return Response(
        {
            "status": "ready",
            "dialect": service.db.dialect,
            "rollups": {"ready": rollups.ready, "warm_seconds": rollups.warm_seconds},
            "optional_columns": columns.as_json(),
        }
    )
