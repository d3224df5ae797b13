"""Limits on requests: one deadline each, their work dropped when the client leaves, and admission.

Deadline: every HTTP request gets `query_timeout` in all, however many queries its answer runs in a
row: each query gets only the time left (db.request_deadline), past it the answer is a 504, and a
handler still busy (not in a query) half a second after the deadline is cancelled and answered 504
here. Disconnect: a client that goes away before its answer cancels the request's work at once —
every query of it is stopped before the cancellation completes — on every route.

Admission: at most `max_concurrent_queries` heavy requests at once; the next ones get 503.

An analytics request that scans the log is "heavy". One that arrives while `max_concurrent_queries`
of them are running waits at most `ADMISSION_WAIT` for a slot, then answers 503 with `Retry-After`
instead of joining an endless queue: under overload the API sheds work it could only finish late,
and the requests it does accept keep their latency.

Heavy: every route under `/v1/` and `/grafana/` except the handlers declared `opt=LIGHT` (answered
from memory: the budgets and the check a gateway calls before each provider call, the price table,
the alert log, Grafana's lists). `/healthz`, `/readyz`, `/metrics` and `/schema` are never shed. The
same declaration decides which operations the OpenAPI document says may answer 503/504.
"""

from __future__ import annotations

import asyncio
import time

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.handlers import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from cost_api.store.database import request_deadline
from cost_api.web.metrics import ABANDONED_REQUESTS, SHED_REQUESTS
from cost_api.web.problems import ProblemError, send_problem

ADMISSION_WAIT = 0.1  # seconds a request waits for a free slot before its 503
RETRY_AFTER = "1"
HEAVY_PREFIXES = ("/v1/", "/grafana/")
LIGHT_OPT = "light"
LIGHT = {LIGHT_OPT: True}  # a handler's opt: answered without reading the log (no slot, no 503/504)
# A handler not in a query when its deadline passes (waiting on a lock, say) is cancelled this much
# later; a query in flight stops at the deadline itself and answers its own 504 within it.
HARD_STOP_GRACE = 0.5


class DeadlineMiddleware(ASGIMiddleware):
    """Runs each HTTP request's handler in a task of its own, under one deadline (`budget` seconds
    from its arrival), and cancels that task when the client disconnects before its answer."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, budget: float) -> None:
        self.budget = budget

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        deadline = time.monotonic() + self.budget
        answer = _Answer(send)
        inbox: asyncio.Queue[ReceiveMessage] = asyncio.Queue()
        with request_deadline(deadline):  # the handler's task (and the tasks it starts) see it
            work = asyncio.ensure_future(next_app(scope, inbox.get, answer.send))
        # The only reader of the client's messages: the body goes on to the handler through `inbox`,
        # and a disconnect ends `left`.
        left = asyncio.ensure_future(_until_disconnect(receive, inbox))
        try:
            while not work.done():
                stop_in = None if answer.started else deadline + HARD_STOP_GRACE - time.monotonic()
                watched = {work} if left.done() else {work, left}
                await asyncio.wait(watched, timeout=stop_in, return_when=asyncio.FIRST_COMPLETED)
                if work.done():
                    break
                if left.done() and not answer.complete:  # the client is gone: nobody wants the answer
                    ABANDONED_REQUESTS.inc()
                    await _stop(work)
                    return
                if not answer.started and time.monotonic() >= deadline + HARD_STOP_GRACE:
                    await _stop(work)
                    late = f"the request ran past {self.budget:g}s (query_timeout) and was cancelled"
                    await send_problem(scope, receive, send, ProblemError(504, late))
                    return
        except asyncio.CancelledError:  # the server is shutting down: the handler goes too
            await _stop(work)
            raise
        finally:
            left.cancel()
            await asyncio.wait({left})
            if not left.cancelled():
                left.exception()  # retrieved: a receive() that failed is a client gone, as above
        work.result()  # the handler's own exception, if any, as if it had run here


class _Answer:
    """`send`, noting how far the answer has gone."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.complete = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.complete = True
        await self._send(message)


async def _until_disconnect(receive: Receive, inbox: asyncio.Queue[ReceiveMessage]) -> None:
    while True:
        message = await receive()
        inbox.put_nowait(message)
        if message["type"] == "http.disconnect":
            return


async def _stop(work: asyncio.Future[None]) -> None:
    """Cancel the handler once and wait until it has cleaned up (its queries stopped)."""
    work.cancel()
    await asyncio.wait({work})
    if not work.cancelled():
        work.exception()  # retrieved: whatever it ended with, nobody is waiting for it


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


def heavy(path: str, handler: BaseRouteHandler | None) -> bool:
    """Whether requests to a route (its template, its handler) read the log: under HEAVY_PREFIXES,
    unless the handler is declared LIGHT. Admission and the OpenAPI document both ask this."""
    return path.startswith(HEAVY_PREFIXES) and not (handler is not None and handler.opt.get(LIGHT_OPT))


def is_heavy(scope: Scope) -> bool:
    return heavy(scope.get("path_template") or scope["path"], scope.get("route_handler"))


def heavy_paths(app: Litestar) -> set[str]:
    """The route templates with a handler whose requests read the log (for the OpenAPI document);
    CORS preflights (OPTIONS) are never admitted or shed."""
    return {
        route.path
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
        if getattr(handler, "http_methods", None) != {"OPTIONS"} and heavy(route.path, handler)
    }


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
