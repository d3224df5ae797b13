"""The live alert engine: evaluates the anomaly rules every `alerts.interval` and POSTs each incident
(watch/incidents.py: the episodes of one problem) to `alerts.webhook_url` once as `fired` and once as
`resolved`, signed, retried in the background.

Each tick replays the last hours (anomalies.replay, with the budget tracker's figures) and groups the
episodes into incidents: an open incident that shares no episode with one already sent is `fired` once
its impact reaches `min_impact` (a storm or a budget at once); a sent one that is no longer open is
`resolved`. An event's `id` is the incident's (sha256 of its first episode's id), so a receiver
deduplicates across restarts and replicas: the engine keeps the incidents it sent in memory only (a
later tick's incident that shares an episode with a sent one is that one, under its first id), and
after a restart sends the open incidents again under the same ids. Deliveries run as tasks with
exponential backoff and never block a request; `GET /v1/alerts` lists the recent ones with their
state. The events, their text, their signatures and one POST are in webhook.py.

With several replicas on one Postgres, only the one holding `pg_try_advisory_lock(ALERT_LOCK)` on a
dedicated connection evaluates and sends (the store's leadership, through the aggregator); the others
retry the lock every tick and take over (sending the open incidents again, same ids) when its session
ends. On SQLite the lock is a `flock` on a file of our own cache directory (store/leadership.py).

`cost-api alerts receive --port 9000 --secret s` (tools/receiver.py) runs a local receiver that prints
each event and checks its signature (docs/alerts.md); `python -m cost_api.watch.alerts receive …`, its
old command, still does.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import httpx
import msgspec
from msgspec import Meta
from prometheus_client import Counter

from cost_api.aggregation.blocks import AsOf, Block, Instant
from cost_api.store.database import DatabaseUnavailable, QueryTimeout
from cost_api.watch.anomalies import replay
from cost_api.watch.incidents import Incident, coarse_alone, grouped, merged
from cost_api.watch.webhook import Delivery, event_body, post
from cost_api.windows import Range, iso

if TYPE_CHECKING:
    from cost_api.config import Settings
    from cost_api.watch.anomalies import Watched
    from cost_api.watch.budgets import BudgetTracker

log = logging.getLogger("cost_api.watch.alerts")

WEBHOOK_DELIVERIES = Counter(
    "cost_api_webhook_deliveries",
    "Alert webhook deliveries, by result (delivered, failed, retried)",
    ["result"],
)
for _result in ("delivered", "failed", "retried"):  # present (at 0) before the first delivery
    WEBHOOK_DELIVERIES.labels(result=_result)

ALERT_LOCK = 0x636F73745F616C  # "cost_al": the advisory lock whose holder sends the alerts
LOOKBACK = timedelta(hours=3)  # each tick replays this much (and the rules' history before it)
RECENT_EVENTS = 500  # events kept for GET /v1/alerts
DELIVERY_TIMEOUT = 10.0  # seconds per attempt

_encoder = msgspec.json.Encoder()


# every rule: the hourly ones (rules.py, storm.py) and the budget ones (anomalies.budget_episodes)
Rule = Literal[
    "burn_rate", "new_spender", "spend_ceiling", "request_storm", "budget_forecast", "budget_warning", "budget_exceeded"
]


class AlertEvent(Block):
    """One webhook event and how its delivery went."""

    id: Annotated[str, Meta(description="the incident's id: a receiver deduplicates by it")]
    event: Literal["fired", "resolved"]
    rule: Rule
    dimension: str
    key: str
    started_at: Instant
    text: Annotated[str, Meta(description="the Slack-compatible one-line summary")]
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    queued_at: Instant
    delivered_at: Instant | None


class Alerts(Block):
    """GET /v1/alerts: the recent events, newest first."""

    items: list[AlertEvent]
    sending: Annotated[bool, Meta(description="whether this replica sends the alerts")]
    as_of: AsOf


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


class AlertEngine:
    """Evaluates the rules every `interval` and delivers the events, at the time of the service's clock;
    `sleep` (between retries) and `timeout` (per attempt) are injectable for tests."""

    def __init__(
        self,
        settings: Settings,
        service: Watched,
        budgets: BudgetTracker | None = None,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        timeout: float = DELIVERY_TIMEOUT,
    ) -> None:
        self.cfg = settings.alerts
        self.service = service
        self.budgets = budgets
        self.clock = service.aggregator.clock
        self.sleep = sleep
        self.timeout = timeout
        self.enabled = self.cfg.webhook_url is not None
        self.events: deque[Delivery] = deque(maxlen=RECENT_EVENTS)
        self.sent: dict[str, Incident] = {}  # open incidents sent as `fired`, by the id they were sent with
        self.seen: dict[str, datetime] = {}  # when each sent incident was last seen open
        self.leading = False
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._last: dict[str, asyncio.Task[None]] = {}  # incident id → its latest delivery
        self._leadership = service.aggregator.leadership(ALERT_LOCK)
        self._failing = False

    @property
    def sending(self) -> bool:
        return self.enabled and self.leading

    # ----------------------------------------------------------------------- life cycle

    async def start(self) -> None:
        """Evaluate every `interval` in the background (nothing without a webhook URL)."""
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="alerts")

    async def stop(self) -> None:
        task, self._task = self._task, None
        pending = [t for t in (task, *self._deliveries) if t is not None]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await self._release()

    async def drain(self) -> None:
        """Wait until every queued delivery has finished (delivered or failed)."""
        while self._deliveries:
            await asyncio.gather(*list(self._deliveries), return_exceptions=True)

    async def _run(self) -> None:
        rollups = self.service.aggregator.rollups
        while not rollups.ready:  # the first ticks read the closed hours from memory, not the log
            await asyncio.sleep(0.2)
        while True:
            await self._tick_logged()
            await self.clock.sleep(self.cfg.interval.seconds)

    async def _tick_logged(self) -> None:
        try:
            await self.tick()
        except (DatabaseUnavailable, QueryTimeout) as exc:
            if not self._failing:  # once per outage
                log.warning("alert rules not evaluated (retried every %s): %s", self.cfg.interval.text, exc)
            self._failing = True
            return
        except Exception:
            log.exception("alert rules not evaluated")
            return
        if self._failing:
            log.warning("alert rules evaluated again")
        self._failing = False

    # ----------------------------------------------------------------------- evaluation

    async def tick(self) -> list[Delivery]:
        """Evaluate once: queue `fired` for new open incidents, `resolved` for sent ones that ended."""
        if not self.enabled or not await self._lead():
            return []
        now = self.clock.now().replace(microsecond=0)
        found = await replay(self.service, Range(now - LOOKBACK, now), now=now, budgets=self.budgets)
        still_open: set[str] = set()
        queued: list[Delivery] = []
        ended: dict[str, Incident] = {}
        # all of them: a sent incident is followed whatever its impact now
        for i in await grouped(self.service, found, 0.0, now):
            known = self._sent_as(i)
            if not i.open:
                ended.update({sent_id: merged(self.sent[sent_id], i) for sent_id in known})
            elif known:
                still_open.update(known)
                self.sent.update({sent_id: merged(self.sent[sent_id], i) for sent_id in known})
            elif i.worth(self.cfg.min_impact, coarse_alone(self.cfg.dimensions)):
                self.sent[i.id] = i
                still_open.add(i.id)
                queued.append(self._queue("fired", i.id, i, now))
        self.seen.update(dict.fromkeys(still_open, now))
        # one that is no longer seen at all (its rule held on the unfinished hour only, and holds no
        # more) is open until that hour has been judged whole, at its end
        unseen = {i for i in self.sent if i not in still_open and i not in ended}
        still_open |= {i for i in unseen if _hour(self.seen[i]) == _hour(now)}
        for sent_id in [i for i in self.sent if i not in still_open]:
            incident = self.sent.pop(sent_id)
            del self.seen[sent_id]
            queued.append(self._queue("resolved", sent_id, ended.get(sent_id, incident), now))
        return queued

    def _sent_as(self, i: Incident) -> list[str]:
        """The ids under which `i` was sent: the sent incidents sharing an episode with it (or, for an
        episode that began before the replayed hours, its rule and key)."""
        ids = {e.id for e in i.episodes}
        clipped = {(e.rule, e.dimension, e.key) for e in i.episodes if e.clipped}
        return [
            sent_id
            for sent_id, sent in self.sent.items()
            if any(e.id in ids or ((e.rule, e.dimension, e.key) in clipped and e.started_at <= i.started_at)
                   for e in sent.episodes)
        ]  # fmt: skip

    def _queue(self, event: str, incident_id: str, i: Incident, now: datetime) -> Delivery:
        body = event_body(event, incident_id, i, now, self.cfg.public_url)
        delivery = Delivery(event, incident_id, i, _encoder.encode(body), self.clock.now(), text=body["text"])
        self.events.appendleft(delivery)
        previous = self._last.get(incident_id)  # `resolved` goes out after its `fired`
        task = asyncio.create_task(self._deliver(delivery, previous), name=f"alert-{event}-{incident_id}")
        self._last[incident_id] = task
        self._deliveries.add(task)
        task.add_done_callback(lambda t: self._done(incident_id, t))
        return delivery

    def _done(self, incident_id: str, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        if self._last.get(incident_id) is task:
            del self._last[incident_id]

    # ----------------------------------------------------------------------- delivery

    async def _deliver(self, d: Delivery, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        retry = self.cfg.retry
        delay = retry.first_delay.seconds
        for attempt in range(1, retry.attempts + 1):
            if not self.sending:
                d.last_error = "no longer the replica that sends alerts"
                break
            d.attempts = attempt
            if await self._post(d):
                d.state, d.delivered_at = "delivered", self.clock.now()
                WEBHOOK_DELIVERIES.labels(result="delivered").inc()
                return
            if attempt < retry.attempts:
                WEBHOOK_DELIVERIES.labels(result="retried").inc()
                await self.sleep(delay)
                delay = min(delay * 2, retry.max_delay.seconds)
        d.state = "failed"
        WEBHOOK_DELIVERIES.labels(result="failed").inc()
        log.warning("alert %s %s not delivered after %d attempts: %s", d.event, d.id, d.attempts, d.last_error)

    async def _post(self, d: Delivery) -> bool:
        """One attempt; False (with `last_error`) on an error, a timeout or a non-2xx answer."""
        assert self.cfg.webhook_url is not None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return await post(self._client, self.cfg.webhook_url, self.cfg.webhook_secret, d)

    # ----------------------------------------------------------------------- one sender per database

    async def _lead(self) -> bool:
        """Whether this process sends: while it holds the leader lock."""
        self.leading = await self._leadership.hold()
        return self.leading

    async def _release(self) -> None:
        await self._leadership.release()
        self.leading = False

    # ----------------------------------------------------------------------- GET /v1/alerts

    def overview(self) -> Alerts:
        return Alerts(
            items=[AlertEvent(**d.as_json()) for d in self.events],
            sending=self.sending,
            as_of=iso(self.clock.now()),
        )
