"""Budgets: spending caps per endpoint, token or tag value over calendar periods, answered from memory.

A `BudgetTracker` keeps one snapshot: for each budget period kind (day, ISO week, month in the
configured `tz`), the spend of each budget's subject (budget_subjects.py) over `[period start,
snapshot time)`, and the tokens as it read them (a `Roster`: who carries which tags). A background
task refreshes it every `budget_refresh` through the one aggregation path (per distinct period start,
one `Aggregator.groups` read per kind of subject, covering every budget of that period kind); a
request only reads the snapshot and never touches the database.

Periods are computed from the request's own time. When a boundary has passed since the snapshot
(local midnight, Monday 00:00, the 1st), the new period's figure is $0 *as of the snapshot* (the
period had not begun then), `age_seconds` keeps saying how old that is, and the task is woken to
refresh at once; it also sleeps no later than the next boundary, so a rollover is counted within
one read of it. A failed refresh keeps the last snapshot (which ages, and past `budget_max_age` is
stale) and is retried on the next tick; an outage is logged once, and its end once.

Each item says whether its subject is `seen`: an endpoint with rows in a current period is; the first
refresh also looks through the whole log for the others, once; a token is when `api_tokens` lists it
(or it has rows), a tag value when a token carries it. The first refresh logs each budget whose
subject is not seen (a typo in `budgets[].endpoint` would otherwise cap nothing, silently).
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
from typing import Any, Literal

import msgspec

from cost_api.aggregation.aggregator import Aggregator, Filters, TokenDirectory
from cost_api.aggregation.blocks import money, pct
from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.config import Budget, Settings
from cost_api.errors import BudgetsStale, WarmingUp
from cost_api.store.database import DatabaseUnavailable, QueryTimeout
from cost_api.watch.budget_problem import BudgetCheck, BudgetOverview, BudgetStatus, Caller, budget_exceeded
from cost_api.watch.budget_subjects import ZERO, Figure, Roster, Subject, of_kind, period_spend, subject_profiles
from cost_api.watch.forecast import Profile, projection
from cost_api.windows import HOUR_MS, Range, calendar_start, epoch_ms, from_ms, iso, local_midnight

log = logging.getLogger("cost_api.watch.budgets")

_CALENDAR_KIND = {"day": "today", "week": "week", "month": "month"}
_UNSEEN = {
    "endpoint": "no row of the log has that endpoint (request_log.endpoint)",
    "token": "api_tokens lists no token with that id or prefix, and no row of the log has it",
    "tag": "no token carries that tag (api_tokens.tags, token_tags)",
}
_MIN_SLEEP = 0.001


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
class Snapshot:
    """What one refresh read: spend per (period kind, subject) from each kind's start to `taken_at`,
    and the tokens as they were then (None: no token or tag budget)."""

    taken_at: datetime
    starts: dict[str, datetime]
    figures: dict[tuple[str, Subject], Figure]
    roster: Roster | None

    def figure(self, kind: str, subject: Subject, period: Period) -> Figure | None:
        """The spend of `period`, as of `taken_at`; None if this snapshot cannot say."""
        if self.starts.get(kind) == period.start:
            return self.figures.get((kind, subject), ZERO)
        if self.taken_at <= period.start:  # the period began after the snapshot: nothing spent yet
            return ZERO
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
        self._by_subject: dict[Subject, list[Budget]] = {}
        for budget in self.budgets:
            self._by_subject.setdefault(budget.subject, []).append(budget)
        self._subjects = tuple(self._by_subject)
        self._tokens = of_kind(self._subjects, "token")
        self._people = any(kind != "endpoint" for kind, _ in self._subjects)  # token or tag budgets
        kinds = dict.fromkeys(b.period for b in self.budgets)
        self._of_period: dict[str, tuple[Subject, ...]] = {  # period kind → the subjects with a budget of it
            kind: tuple(dict.fromkeys(b.subject for b in self.budgets if b.period == kind)) for kind in kinds
        }
        self._periods: dict[str, Period] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._failing_since: datetime | None = None
        self._seen: set[Subject] = set()  # subjects with a row in the log (endpoints), known (tokens, tags)
        self._searched = False  # the whole log looked through once for the others
        self._profiles: dict[Subject, Profile] = {}  # each subject's forecast profile, fitted once an hour
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

    async def _roster(self) -> Roster | None:
        """The tokens as of now (with token or tag budgets): kept while the directory and book are."""
        if not self._people:
            return None
        directory = await self.aggregator.tokens()
        book = await self.aggregator.tag_book(directory)
        kept = self.snapshot.roster if self.snapshot is not None else None
        if kept is not None and kept.book is book and kept.directory.rows == directory.rows:
            return kept
        return Roster(directory, book, self._tokens)

    async def refresh(self) -> Snapshot:
        """Read the spend of every budget's subject over its current periods, and keep it."""
        now = self.clock.now()
        roster = await self._roster()
        starts = {kind: self.period(kind, now).start for kind in self._of_period}
        kinds_by_start: dict[datetime, list[str]] = {}
        for kind, start in starts.items():
            kinds_by_start.setdefault(start, []).append(kind)
        reads = []
        for start, kinds in kinds_by_start.items():
            subjects = tuple(dict.fromkeys(s for kind in kinds for s in self._of_period[kind]))
            reads.append(period_spend(self.aggregator, Range(start, now), subjects, roster))
        figures: dict[tuple[str, Subject], Figure] = {}
        for kinds, by_subject in zip(kinds_by_start.values(), await gather_or_cancel(*reads), strict=True):
            self._seen |= by_subject.keys()
            for kind in kinds:
                for subject in self._of_period[kind]:
                    figures[(kind, subject)] = by_subject.get(subject, ZERO)
        if roster is not None:
            self._seen |= {s for s in self._subjects if roster.knows(s)}
        if self._profiled_hour != epoch_ms(now) // HOUR_MS:
            self._profiles = await subject_profiles(self.aggregator, now, self._subjects, roster)
            self._profiled_hour = epoch_ms(now) // HOUR_MS
        if not self._searched:  # once; failing (a huge log read before the rollups are warm), next time
            with contextlib.suppress(DatabaseUnavailable, QueryTimeout):
                await self._search(now)
        self.snapshot = Snapshot(now, starts, figures, roster)
        return self.snapshot

    async def _search(self, now: datetime) -> None:
        """Look through the whole log, up to `now`, for the budgeted endpoints without a row in their
        current periods; log each budget whose subject is not seen at all."""
        missing = tuple(sorted(v for k, v in self._subjects if k == "endpoint" and (k, v) not in self._seen))
        oldest = (await self.aggregator.log_bounds())[0] if missing else None
        if oldest is not None:
            start = from_ms(oldest)
            if start < now:
                everything = Range(start, now)
                groups = await self.aggregator.groups(
                    everything, filters=Filters(endpoints=missing), dim="endpoint", coarse=True
                )
                self._seen |= {("endpoint", str(key)) for key in groups.by("key")}
        self._searched = True
        for kind, value in self._subjects:
            if (kind, value) not in self._seen:
                log.warning("budget for %s %s: %s; it caps nothing until one does", kind, value, _UNSEEN[kind])

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
            boundary = min(self.period(kind, now).end for kind in self._of_period)
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
                # else: a bug, with its trace
                expected = isinstance(exc, DatabaseUnavailable | QueryTimeout | WarmingUp)
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
        figure = None if snap is None else snap.figure(budget.period, budget.subject, period)
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
        roster = None if snap is None else snap.roster
        token = budget.subject[1] if budget.token is not None else None
        return BudgetStatus(
            endpoint=budget.endpoint,
            token=None if token is None else _shown(roster, token),
            tag=budget.tag,
            seen=budget.subject in self._seen if self._searched else None,
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
        snap, profile = self.snapshot, self._profiles.get(budget.subject)
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

    def applying(self, endpoint: str, token: str | None, now: datetime) -> tuple[list[Budget], Caller]:
        """The budgets that apply to a call of `endpoint` by `token` (None: anonymous), in configuration
        order: the endpoint's, the token's, and those of the tags the token carries at `now` — as of
        the last refresh's roster (none known before the first: only the endpoint's then)."""
        found = list(self._by_subject.get(("endpoint", endpoint), ()))
        token = None if token is None or token.removesuffix("…") == "anonymous" else token
        roster = None if self.snapshot is None else self.snapshot.roster
        if token is None or roster is None:
            shown = None if token is None else _shown(None, token.removesuffix("…"))
            return found, Caller(endpoint, shown, {})
        tags: dict[str, str] = {}
        for tid in roster.resolve(token):
            for value in roster.budgeted(tid):
                found += self._by_subject.get(("token", value), ())
            for key, value in roster.tags_now(tid, now).items():
                tags.setdefault(key, value)
                found += self._by_subject.get(("tag", f"{key}:{value}"), ())
        if len(found) > 1:
            order = {id(b): i for i, b in enumerate(self.budgets)}
            found = sorted({id(b): b for b in found}.values(), key=lambda b: order[id(b)])
        return found, Caller(endpoint, roster.shown(roster.resolve(token)[0]), tags)

    def check(self, endpoint: str, token: str | None = None) -> BudgetCheck:
        """`GET /v1/budgets/check`: the answer while calls are allowed; raises the 422 (or, stale and
        failing closed, the 503) problem otherwise."""
        now = self.clock.now()
        age = self._age(now)
        items, caller = self.check_items(endpoint, token, now)
        if not items:  # nothing to go stale: a call no budget applies to is always allowed
            return BudgetCheck(allowed=True, budgets=[], age_seconds=age, stale=False)
        stale = self._stale(age)
        exceeded = [item for item in items if item.status == "exceeded"]
        if exceeded:  # spend within a period only grows: an exceeded figure holds even when stale
            raise budget_exceeded(caller, exceeded, items, age, stale)
        if stale and self.fail_closed:
            what = "have not been read since start-up" if age is None else f"are {age:g}s old"
            raise BudgetsStale(
                f"the budget figures {what} (budget_max_age {self.max_age:g}s): the database cannot "
                "be read, and budget_fail_mode is closed",
                retry_after=max(1, math.ceil(self.refresh_every)),
                extra={"endpoint": endpoint, "token": caller.token, "age_seconds": age, "stale": True},
            )
        return BudgetCheck(allowed=True, budgets=items, age_seconds=age, stale=stale)

    def check_items(self, endpoint: str, token: str | None, now: datetime) -> tuple[list[BudgetStatus], Caller]:
        """The items of a check at `now` (every budget that applies) and who checks."""
        budgets, caller = self.applying(endpoint, token, now)
        return [self._item(b, now) for b in budgets], caller

    def check_state(self, token: str | None, now: datetime) -> tuple[object, ...]:
        """What a check's items depend on beside its endpoint, token and periods: the snapshot, the
        forecast profiles, the subjects seen, and the token's tag epoch at `now` (its tags then)."""
        snap = self.snapshot
        roster = None if snap is None else snap.roster
        epoch = None if token is None or roster is None else roster.book.epoch_at(epoch_ms(now))
        return snap, self._profiles, self._searched, len(self._seen), epoch

    def age(self, now: datetime) -> tuple[float | None, bool]:
        """The figures' age in seconds at `now` (None: not read yet), and whether that is stale."""
        age = self._age(now)
        return age, self._stale(age)

    def _stale(self, age: float | None) -> bool:
        if not self.budgets:
            return False
        return age is None or age > self.max_age


def _shown(roster: Roster | None, token: str) -> str:
    """A token as answers show it: by its prefix, never its id (before any roster: by its start)."""
    return roster.shown(token) if roster is not None else TokenDirectory([]).display(token)[0]
