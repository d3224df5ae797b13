"""Admission: at most `max_concurrent_queries` heavy requests at once; the next ones get 503.

An analytics request that scans the log is "heavy". One that arrives while `max_concurrent_queries`
of them are running waits at most `ADMISSION_WAIT` for a slot, then answers 503 with `Retry-After`
instead of joining an endless queue: under overload the API sheds work it could only finish late,
and the requests it does accept keep their latency.

Heavy: every route under `/v1/` and `/grafana/` except the ones answered from memory (`LIGHT_PATHS`:
the budgets and the check a gateway calls before each provider call, and the price table) and any handler
declared with `opt={"light": True}`. `/healthz`, `/readyz`, `/metrics` and `/schema` are never shed.
"""

from __future__ import annotations

import asyncio

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from cost_api.web.metrics import SHED_REQUESTS
from cost_api.web.problems import ProblemError, send_problem

ADMISSION_WAIT = 0.1  # seconds a request waits for a free slot before its 503
RETRY_AFTER = "1"
HEAVY_PREFIXES = ("/v1/", "/grafana/")
LIGHT_PATHS = frozenset({"/v1/budgets", "/v1/budgets/check", "/v1/pricing", "/v1/pricing/resolve"})
LIGHT_OPT = "light"


class Admission:
    """A counter of running heavy requests with a bounded, short wait for a free slot."""

    def __init__(self, limit: int, wait: float = ADMISSION_WAIT) -> None:
        self.limit = limit
        self.wait = wait
        self.active = 0

    async def acquire(self) -> bool:
        """Take a slot (True), or give up after `wait` seconds (False)."""
        if self.active < self.limit:
            self.active += 1
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while loop.time() < deadline:
            await asyncio.sleep(min(0.01, max(deadline - loop.time(), 0)))
            if self.active < self.limit:
                self.active += 1
                return True
        return False

    def release(self) -> None:
        self.active -= 1


def heavy_path(path: str) -> bool:
    """A route template (or path) whose requests scan the log."""
    return path.startswith(HEAVY_PREFIXES) and path not in LIGHT_PATHS


def is_heavy(scope: Scope) -> bool:
    handler = scope.get("route_handler")
    if handler is not None and handler.opt.get(LIGHT_OPT):
        return False
    return heavy_path(scope.get("path_template") or scope["path"])


def _bypass(scope: Scope) -> bool:
    return scope.get("method") == "OPTIONS" or not is_heavy(scope)


class AdmissionMiddleware(ASGIMiddleware):
    """503 + `Retry-After` for a heavy request that finds every slot taken for `ADMISSION_WAIT`."""

    scopes = (ScopeType.HTTP,)
    should_bypass_for_scope = staticmethod(_bypass)

    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if not await self.admission.acquire():
            SHED_REQUESTS.inc()
            problem = ProblemError(
                503,
                f"{self.admission.limit} analytics queries are already running (max_concurrent_queries); retry shortly",
                type_="overloaded",
                headers={"Retry-After": RETRY_AFTER},
            )
            await send_problem(scope, receive, send, problem)
            return
        try:
            await next_app(scope, receive, send)
        finally:
            self.admission.release()
