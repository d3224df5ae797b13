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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Response
from litestar.serialization import encode_json

from cost_api.watch.budget_problem import BudgetCheck, budget_exceeded
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.problems import PROBLEM_JSON, from_domain

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

    def answer(self, endpoint: str, token: str | None) -> Response[bytes]:
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
        return Response(body, status_code=kept.status, media_type=kept.media_type)

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
