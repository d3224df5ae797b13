"""Operational routes: liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from cost_api.store.database import DatabaseUnavailable, QueryTimeout
from cost_api.web.problems import ProblemError, problem_response
from cost_api.windows import iso


@get("/healthz", tags=["operations"], summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["operations"], summary="The database is reachable and its log can be read")
async def readyz(request: Request) -> Response[Any]:
    """Ready only when the queries can read the log: the database answers, and `request_log` has every
    column of the contract, each of a type they read (db.SchemaMissing names what is not)."""
    service = request.app.state.service
    try:
        await service.db.check_schema()
        recovering, replayed = await service.db.replica()
    except (DatabaseUnavailable, QueryTimeout) as exc:
        return problem_response(ProblemError(503, str(exc), headers={"Retry-After": "5"}))
    rollups = service.aggregator.rollups
    return Response(
        {
            "status": "ready",
            "dialect": service.db.dialect,
            # a hot standby answers as of what it has replayed: this says when that committed
            "replica": {"last_replayed_commit_at": None if replayed is None else iso(replayed)} if recovering else None,
            "rollups": {"ready": rollups.ready, "warm_seconds": rollups.warm_seconds},
        }
    )
