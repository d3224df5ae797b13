"""Budgets: per-endpoint spending caps over calendar periods, answered from memory.

A `BudgetTracker` keeps one snapshot: for each budget period kind (day, ISO week, month in the
configured `tz`), the spend of each budgeted endpoint over `[period start, snapshot time)`. A
background task refreshes it every `budget_refresh` through the one aggregation path (one
`Aggregator.groups` read per distinct period start, covering every endpoint with a budget of that
kind); a request only reads the snapshot and never touches the database.

Periods are computed from the request's own time. When a boundary has passed since the snapshot
(local midnight, Monday 00:00, the 1st), the new period's figure is $0 *as of the snapshot* (the
period had not begun then), `age_seconds` keeps saying how old that is, and the task is woken to
refresh at once; it also sleeps no later than the next boundary, so a rollover is counted within
one read of it. A failed refresh keeps the last snapshot (which ages, and past `budget_max_age` is
stale) and is retried on the next tick; an outage is logged once, and its end once.

Each item says whether its endpoint is `seen` in the log: an endpoint with rows in a current period
is; the first refresh also looks through the whole log for the others, once, and logs each budgeted
endpoint that has no row at all (a typo in `budgets[].endpoint` would otherwise cap nothing, silently).
docs/budgets.md describes the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from cost_api.aggregation.aggregator import Aggregator, Filters
from cost_api.aggregation.blocks import Block, Instant, Money, Pct, money, pct
from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.config import Budget, Settings
from cost_api.errors import BudgetsStale
from cost_api.store.database import DatabaseUnavailable, QueryTimeout
from cost_api.watch.budget_problem import budget_exceeded
from cost_api.watch.forecast import Profile, endpoint_profiles, projection
from cost_api.windows import HOUR_MS, Range, calendar_start, epoch_ms, from_ms, iso, local_midnight

log = logging.getLogger("cost_api.watch.budgets")

_CALENDAR_KIND = {"day": "today", "week": "week", "month": "month"}
_MIN_SLEEP = 0.001


AgeSeconds = Annotated[
    Annotated[float, Meta(ge=0)] | None,
    Meta(description="how old the figures are, in seconds; null: not read since start-up"),
]


class BudgetStatus(Block):
    """One budget in its current period, as of the tracker's last refresh."""

    endpoint: str
    seen: Annotated[bool | None, Meta(description="whether the endpoint has rows in the log; null: not looked yet")]
    period: Literal["day", "week", "month"]
    period_start: Instant
    resets_at: Instant
    limit_usd: Money
    spent: Annotated[Money | None, Meta(description="null: no figure yet")]
    remaining: Annotated[Annotated[Money, Meta(ge=0)] | None, Meta(description="limit_usd − spent, never below 0")]
    used_pct: Pct | None
    unpriced_requests: int | None
    status: Literal["ok", "warning", "exceeded", "unknown"]
    projected: Annotated[
        Money | None, Meta(description="spent + the expected spend of the rest of the period (docs/forecast.md)")
    ]
    projected_exceed_at: Annotated[
        Instant | None, Meta(description="when spend is projected to reach the limit; null: not before resets_at")
    ]


class BudgetOverview(Block):
    """GET /v1/budgets: every configured budget, in configuration order."""

    items: list[BudgetStatus]
    age_seconds: AgeSeconds
    stale: Annotated[bool, Meta(description="older than budget_max_age")]


class BudgetCheck(Block):
    """GET /v1/budgets/check while calls are allowed (an exceeded budget is a 422 problem instead)."""

    allowed: Literal[True]
    budgets: list[BudgetStatus]
    age_seconds: AgeSeconds
    stale: Annotated[bool, Meta(description="older than budget_max_age: allowed because the fail mode is open")]


@dataclass(frozen=True, slots=True)
class Period:
    """One calendar period `[start, end)`; `end` is when the budget resets."""

    start: datetime
    end: datetime

    def holds(self, at: datetime) -> bool:
        return self.start <= at < self.end


def period_at(kind: str, at: datetime, tz: zoneinfo.ZoneInfo) -> Period:
    """The calendar day, ISO week or month (in `tz`) that contains `at`."""
    start = calendar_start(_CALENDAR_KIND[kind], at, tz)
    first: date = start.astimezone(tz).date()
    if kind == "day":
        following = first + timedelta(days=1)
    elif kind == "week":
        following = first + timedelta(days=7)
    else:
        following = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
    return Period(start, local_midnight(following, tz))


@dataclass(frozen=True, slots=True)
class Figure:
    spent: float
    unpriced_requests: int


_ZERO = Figure(0.0, 0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one refresh read: spend per (period kind, endpoint) from each kind's start to `taken_at`."""

    taken_at: datetime
    starts: dict[str, datetime]
    figures: dict[tuple[str, str], Figure]

    def figure(self, kind: str, endpoint: str, period: Period) -> Figure | None:
        """The spend of `period`, as of `taken_at`; None if this snapshot cannot say."""
        if self.starts.get(kind) == period.start:
            return self.figures.get((kind, endpoint), _ZERO)
        if self.taken_at <= period.start:  # the period began after the snapshot: nothing spent yet
            return _ZERO
        return None  # the clock went back across a boundary since the snapshot


class BudgetTracker:
    """The in-memory budget figures and the task that refreshes them."""

    def __init__(self, settings: Settings, aggregator: Aggregator) -> None:
        self.budgets: list[Budget] = list(settings.budgets)
        self.aggregator = aggregator
        self.clock = aggregator.clock  # the service's: periods, ages and the refresh schedule
        self.tz = settings.zone
        self.refresh_every = settings.budget_refresh.seconds
        self.max_age = settings.budget_max_age.seconds
        self.fail_closed = settings.budget_fail_mode == "closed"
        self.startup_wait = settings.query_timeout.seconds
        self.snapshot: Snapshot | None = None
        self._by_endpoint: dict[str, list[Budget]] = {}
        for budget in self.budgets:
            self._by_endpoint.setdefault(budget.endpoint, []).append(budget)
        kinds = dict.fromkeys(b.period for b in self.budgets)
        self._endpoints: dict[str, tuple[str, ...]] = {  # period kind → the endpoints with a budget of that kind
            kind: tuple(dict.fromkeys(b.endpoint for b in self.budgets if b.period == kind)) for kind in kinds
        }
        self._periods: dict[str, Period] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._failing_since: datetime | None = None
        self._seen: set[str] = set()  # budgeted endpoints with a row in the log
        self._searched = False  # the whole log looked through once for the others
        self._profiles: dict[str, Profile] = {}  # each endpoint's forecast profile, fitted once an hour
        # each budget's last projection, with what it was computed from: the check a gateway calls before
        # every provider call reuses it until the snapshot, the profile or the period changes
        self._projected: dict[Budget, tuple[Profile, tuple[float, int, int], tuple[float, str | None]]] = {}
        self._profiled_hour: int | None = None

    # ----------------------------------------------------------------------- periods and refresh

    def period(self, kind: str, at: datetime) -> Period:
        cached = self._periods.get(kind)
        if cached is None or not cached.holds(at):
            cached = self._periods[kind] = period_at(kind, at, self.tz)
        return cached

    async def refresh(self) -> Snapshot:
        """Read the spend of every budgeted endpoint over its current periods, and keep it."""
        now = self.clock.now()
        starts = {kind: self.period(kind, now).start for kind in self._endpoints}
        kinds_by_start: dict[datetime, list[str]] = {}
        for kind, start in starts.items():
            kinds_by_start.setdefault(start, []).append(kind)
        reads = []
        for start, kinds in kinds_by_start.items():
            endpoints = tuple(sorted({e for kind in kinds for e in self._endpoints[kind]}))
            reads.append(self._spend(Range(start, now), endpoints))
        figures: dict[tuple[str, str], Figure] = {}
        for kinds, by_endpoint in zip(kinds_by_start.values(), await gather_or_cancel(*reads), strict=True):
            self._seen |= by_endpoint.keys()
            for kind in kinds:
                for endpoint in self._endpoints[kind]:
                    figures[(kind, endpoint)] = by_endpoint.get(endpoint, _ZERO)
        if self._profiled_hour != epoch_ms(now) // HOUR_MS:
            self._profiles = await endpoint_profiles(self.aggregator, tuple(self._by_endpoint), now)
            self._profiled_hour = epoch_ms(now) // HOUR_MS
        if not self._searched:  # once; failing (a huge log read before the rollups are warm), next time
            with contextlib.suppress(DatabaseUnavailable, QueryTimeout):
                await self._search(now)
        self.snapshot = Snapshot(now, starts, figures)
        return self.snapshot

    async def _search(self, now: datetime) -> None:
        """Look through the whole log, up to `now`, for the budgeted endpoints without a row in their
        current periods; log each that has none at all."""
        missing = tuple(sorted(self._by_endpoint.keys() - self._seen))
        oldest = (await self.aggregator.log_bounds())[0] if missing else None
        if oldest is not None:
            start = from_ms(oldest)
            if start < now:
                everything = Range(start, now)
                groups = await self.aggregator.groups(
                    everything, filters=Filters(endpoints=missing), dim="endpoint", coarse=True
                )
                self._seen |= groups.by("key").keys()
        self._searched = True
        for endpoint in sorted(self._by_endpoint.keys() - self._seen):
            log.warning(
                "budget for endpoint %s: no row of the log has that endpoint (request_log.endpoint); "
                "it caps nothing until one does",
                endpoint,
            )

    async def _spend(self, rng: Range, endpoints: tuple[str, ...]) -> dict[str, Figure]:
        if rng.start >= rng.end:  # refreshed at the very instant a period began
            return {}
        groups = await self.aggregator.groups(rng, filters=Filters(endpoints=endpoints), dim="endpoint")
        return {key: Figure(t.spend, t.unpriced_requests) for key, t in groups.by("key").items()}

    async def start(self) -> None:
        """Start refreshing; wait (at most `query_timeout`) for the first attempt, so that a service
        whose database is up answers with figures from its first request."""
        if not self.budgets or self._task is not None:
            return
        self._wake = asyncio.Event()
        first = asyncio.Event()
        self._task = asyncio.create_task(self._run(first), name="budget-refresh")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.startup_wait):
                await first.wait()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, first: asyncio.Event) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            ok = await self._attempt()
            first.set()
            now = self.clock.now()
            boundary = min(self.period(kind, now).end for kind in self._endpoints)
            delay = max(min(self.refresh_every, (boundary - now).total_seconds()), _MIN_SLEEP)
            if not ok:  # a failing database is retried once per tick, whatever requests ask
                await self.clock.sleep(delay)
                continue
            await self.clock.wait(self._wake, delay)

    async def _attempt(self) -> bool:
        try:
            await self.refresh()
        except Exception as exc:
            if self._failing_since is None:  # once per outage
                self._failing_since = self.clock.now()
                snap = self.snapshot
                kept = "no figures yet" if snap is None else f"keeping those of {iso(snap.taken_at)}"
                expected = isinstance(exc, DatabaseUnavailable | QueryTimeout)  # else: a bug, with its trace
                log.warning(
                    "budget refresh failed: %s; %s; retry every %gs",
                    exc,
                    kept,
                    self.refresh_every,
                    exc_info=None if expected else exc,
                )
            return False
        if self._failing_since is not None:
            log.warning("budget refresh works again (failing since %s)", iso(self._failing_since))
            self._failing_since = None
        return True

    # ----------------------------------------------------------------------- answers

    def _age(self, now: datetime) -> float | None:
        snap = self.snapshot
        return None if snap is None else round(max((now - snap.taken_at).total_seconds(), 0.0), 3)

    def _item(self, budget: Budget, now: datetime) -> BudgetStatus:
        period = self.period(budget.period, now)
        snap = self.snapshot
        figure = None if snap is None else snap.figure(budget.period, budget.endpoint, period)
        if snap is not None and snap.taken_at < period.start and self._wake is not None:
            self._wake.set()  # a boundary passed since the snapshot: refresh now
        limit = money(budget.limit_usd)
        spent = remaining = used_pct = unpriced = projected = None
        exceed_at: str | None = None
        status: Literal["ok", "warning", "exceeded", "unknown"] = "unknown"
        if figure is not None:
            spent = money(figure.spent)
            if spent >= limit:
                status = "exceeded"
            elif spent >= money(limit * budget.warn_at_pct / 100):
                status = "warning"
            else:
                status = "ok"
            remaining = money(max(limit - spent, 0.0))
            used_pct = pct(spent, limit)
            unpriced = figure.unpriced_requests
            projected, exceed_at = self._projection(budget, figure, period)
        return BudgetStatus(
            endpoint=budget.endpoint,
            seen=budget.endpoint in self._seen if self._searched else None,
            period=budget.period,
            period_start=iso(period.start),
            resets_at=iso(period.end),
            limit_usd=limit,
            spent=spent,
            remaining=remaining,
            used_pct=used_pct,
            unpriced_requests=unpriced,
            status=status,
            projected=projected,
            projected_exceed_at=exceed_at,
        )

    def _projection(self, budget: Budget, figure: Figure, period: Period) -> tuple[float, str | None]:
        snap, profile = self.snapshot, self._profiles.get(budget.endpoint)
        if snap is None or profile is None:  # no history: nothing more expected
            return money(figure.spent), None
        at = max(snap.taken_at, period.start)  # from the snapshot on (a period begun since: from its start)
        inputs = (figure.spent, epoch_ms(at), epoch_ms(period.end))
        kept = self._projected.get(budget)
        if kept is not None and kept[0] is profile and kept[1] == inputs:
            return kept[2]
        projected, crossed = projection(profile, figure.spent, budget.limit_usd, inputs[1], inputs[2])
        answer = money(projected), None if crossed is None else iso(from_ms(crossed))
        self._projected[budget] = (profile, inputs, answer)
        return answer

    def overview_answer(self) -> BudgetOverview:
        """`GET /v1/budgets`: every configured budget, in configuration order."""
        now = self.clock.now()
        age = self._age(now)
        return BudgetOverview(items=[self._item(b, now) for b in self.budgets], age_seconds=age, stale=self._stale(age))

    def overview(self) -> dict[str, Any]:
        """`overview_answer` as plain dicts, for the callers that read it so (the budget rules)."""
        plain: dict[str, Any] = msgspec.to_builtins(self.overview_answer())
        return plain

    def check(self, endpoint: str) -> BudgetCheck:
        """`GET /v1/budgets/check`: the answer while calls are allowed; raises the 422 (or, stale and
        failing closed, the 503) problem otherwise."""
        now = self.clock.now()
        age = self._age(now)
        budgets = self._by_endpoint.get(endpoint)
        if not budgets:  # nothing to go stale: an endpoint without a budget is always allowed
            return BudgetCheck(allowed=True, budgets=[], age_seconds=age, stale=False)
        items = [self._item(b, now) for b in budgets]
        stale = self._stale(age)
        exceeded = [item for item in items if item.status == "exceeded"]
        if exceeded:  # spend within a period only grows: an exceeded figure holds even when stale
            raise budget_exceeded(endpoint, exceeded, items, age, stale)
        if stale and self.fail_closed:
            what = "have not been read since start-up" if age is None else f"are {age:g}s old"
            raise BudgetsStale(
                f"the budget figures {what} (budget_max_age {self.max_age:g}s): the database cannot "
                "be read, and budget_fail_mode is closed",
                retry_after=max(1, math.ceil(self.refresh_every)),
                extra={"endpoint": endpoint, "age_seconds": age, "stale": True},
            )
        return BudgetCheck(allowed=True, budgets=items, age_seconds=age, stale=stale)

    def _stale(self, age: float | None) -> bool:
        if not self.budgets:
            return False
        return age is None or age > self.max_age
