"""The budget check's answers, encoded once: the gateway calls `GET /v1/budgets/check` before every
provider call, far more often than the figures change.

Per (endpoint, token) the answer's bytes up to its `age_seconds` value are kept — the 200 body, or
the 422 problem document — with what they were computed from: the tracker's snapshot, forecast
profiles, subjects seen and the token's tag epoch (`BudgetTracker.check_state`), and the periods of
the budgets that apply. A request then only appends its age and `stale`; a kept answer is dropped as
soon as any of those change (each refresh makes a new snapshot) or the request's time leaves one of
its periods. Answers that depend on more — stale and failing closed (the 503), or a period begun
since the snapshot (the refresh woken for it changes them) — are computed and encoded each time, as
`BudgetTracker.check` does. The bytes are those litestar encodes from `check`'s answer or problem.

Two shortcuts keep litestar's per-request work off the check (issue 18: its throughput ≥ 90 % of
`/healthz`'s), each measured at ~7–9 µs of a check's ~100 µs in-process (docs/performance.md#budget-check):
`kept_answer`, the route's `before_request`, answers a well-formed check of an unscoped caller before
litestar parses the handler's parameters and resolves its dependency; `KeptResponse` sends the bytes
with the two headers litestar's `Response` would give them, without building that response anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response
from litestar.serialization import encode_json
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from cost_api.errors import BadParameter
from cost_api.watch.budget_problem import BudgetCheck, budget_exceeded
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.problems import PROBLEM_JSON, from_domain
from cost_api.web.routes.params import refuse_control_characters
from cost_api.web.scope import key_scope

_TAIL = b'null,"stale":false}'  # how an answer encoded with age_seconds=None, stale=False ends
_STALE = (b',"stale":false}', b',"stale":true}')
_ALWAYS = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
MOST_KEPT = 4096  # (endpoint, token) answers kept at most; beyond, all are dropped and kept afresh


@dataclass(frozen=True, slots=True)
class Kept:
    """One check's answer, encoded up to its `age_seconds` value, and what it holds for."""

    state: tuple[object, ...]
    since: datetime  # the latest start of its budgets' periods
    until: datetime  # the earliest end
    status: int
    media_type: str
    head: bytes
    budgeted: bool  # some budget applies: the answer can be stale

    def holds(self, state: tuple[object, ...], now: datetime) -> bool:
        return (
            self.since <= now < self.until
            and len(state) == len(self.state)
            and all(a is b for a, b in zip(state, self.state, strict=True))
        )


class CheckAnswers:
    """The kept answers of one tracker (one per app: each worker process keeps its own). The check route
    takes this alone: litestar resolves two or more dependencies of a route in an anyio task group,
    which cost it ~25 % of its server time."""

    def __init__(self, tracker: BudgetTracker, most: int = MOST_KEPT) -> None:
        self.tracker = tracker
        self.most = most
        self._kept: dict[tuple[str, str | None], Kept] = {}

    def answer(self, endpoint: str, token: str | None) -> KeptResponse:
        """The check's response, byte for byte `BudgetTracker.check`'s; raises its 503 problem."""
        tracker = self.tracker
        now = tracker.clock.now()
        state = tracker.check_state(token, now)
        kept = self._kept.get((endpoint, token))
        if kept is None or not kept.holds(state, now):
            kept = self._encode(endpoint, token, now, state)
        age, stale = tracker.age(now)
        stale = stale and kept.budgeted
        if stale and kept.status == 200 and tracker.fail_closed:
            tracker.check(endpoint, token)  # raises the 503 problem
        body = kept.head + encode_json(age) + _STALE[stale]
        return KeptResponse(body, kept.status, kept.media_type)

    def _encode(self, endpoint: str, token: str | None, now: datetime, state: tuple[object, ...]) -> Kept:
        tracker = self.tracker
        items, caller = tracker.check_items(endpoint, token, now)
        exceeded = [item for item in items if item.status == "exceeded"]
        content: Any
        if exceeded:
            content = from_domain(budget_exceeded(caller, exceeded, items, None, False)).body()
            status, media_type = 422, PROBLEM_JSON
        else:
            content = BudgetCheck(allowed=True, budgets=items, age_seconds=None, stale=False)
            status, media_type = 200, "application/json"
        body = encode_json(content)
        assert body.endswith(_TAIL)  # age_seconds and stale are the answer's last members
        periods = [tracker.period(item.period, now) for item in items]
        since, until = _ALWAYS
        if periods:
            since, until = max(p.start for p in periods), min(p.end for p in periods)
        kept = Kept(state, since, until, status, media_type, body[: -len(_TAIL)], bool(items))
        snap = tracker.snapshot
        if snap is None or snap.taken_at >= since:
            if len(self._kept) >= self.most:
                self._kept.clear()
            self._kept[(endpoint, token)] = kept
        return kept


class KeptResponse(Response[bytes]):
    """A check's bytes, sent as litestar sends a `Response` of them: the status, `content-type` (the
    media type as given: no charset for JSON), `content-length`, then the body in one message. Without
    litestar's `ASGIResponse`, which builds a header object for each response and encodes it back; the
    check route sets no header, cookie or background task of its own that it would add."""

    __slots__ = ("_start",)

    def __init__(self, body: bytes, status: int, media_type: str) -> None:
        super().__init__(body, status_code=status, media_type=media_type)
        self._start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", media_type.encode()), (b"content-length", b"%d" % len(body))],
        }

    def to_asgi_response(self, *_: Any, **__: Any) -> ASGIApp:  # type: ignore[override]  # what the route awaits
        start = self._start
        sent: HTTPResponseBodyEvent = {"type": "http.response.body", "body": self.content, "more_body": False}

        async def send_answer(scope: Scope, receive: Receive, send: Send) -> None:
            await send(start)
            await send(sent)

        return send_answer


def checked(endpoint: str | None, token: str | None) -> str:
    """The check's parameters: `endpoint`, required; `token`, absent or not blank. Else a 400 naming it."""
    if not endpoint:
        raise BadParameter("endpoint", "required: the gateway route to check, e.g. /summarise-ticket")
    if token is not None and not token.strip():
        raise BadParameter("token", "blank: give the calling token's id or displayed prefix, or leave it out")
    return endpoint


async def kept_answer(request: Request[Any, Any, Any]) -> KeptResponse | None:
    """The check route's `before_request`: the whole answer for a caller without a scoped key, before
    litestar parses the handler's parameters and resolves its dependency; None (a scoped key) leaves
    the request to the handler, which tests the endpoint against the scope. It runs the app's hook
    first, which it replaces on this route; its parameters are litestar's for a `str` one: decoded the
    same way, the last of repeated values. tests/api/test_budget_check_answers.py compares both paths."""
    await refuse_control_characters(request)
    if key_scope(request.scope) is not None:
        return None
    query = dict(request.query_params.multi_items())
    token = query.get("token")
    endpoint = checked(query.get("endpoint"), token)
    # the `answers` the app declares, as litestar gives it to the handler (it injects nothing into a hook)
    answers: CheckAnswers = await request.route_handler.resolve_dependencies()["answers"]()
    return answers.answer(endpoint, token)
