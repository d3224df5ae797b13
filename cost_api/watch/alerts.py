"""The live alert engine: evaluates the anomaly rules every `alerts.interval` and POSTs each episode to
`alerts.webhook_url` once as `fired` and once as `resolved`, signed, retried in the background.

Each tick replays the last hours (anomalies.replay, with the budget tracker's figures): an episode open
now that was not sent yet is `fired`; a sent one that is no longer open is `resolved`. An event's `id`
is the episode's (sha256 of rule, dimension, key and start), so a receiver deduplicates across restarts
and replicas: the engine keeps the ids it sent in memory only, and after a restart sends the open
episodes again under the same ids. Deliveries run as tasks with exponential backoff and never block a
request; `GET /v1/alerts` lists the recent ones with their state.

With several replicas on one Postgres, only the one holding `pg_try_advisory_lock(ALERT_LOCK)` on a
dedicated connection evaluates and sends; the others retry the lock every tick and take over (sending
the open episodes again, same ids) when its session ends. SQLite is one process: no lock.

`python -m cost_api.watch.alerts receive --port 9000 --secret s` runs a local receiver that prints each
event and checks its signature (docs/alerts.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
from prometheus_client import Counter

from cost_api import __version__
from cost_api.aggregation.aggregator import money
from cost_api.store.database import DatabaseUnavailable, QueryTimeout
from cost_api.watch.anomalies import Episode, Reading, ratio_json, replay
from cost_api.windows import Range, iso, now_utc

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
SIGNATURE_HEADER = "X-Cost-Signature"
SIGNATURE_TOLERANCE = 300  # seconds a receiver accepts between `t` and its clock

_encoder = msgspec.json.Encoder()


# --------------------------------------------------------------------------- signatures


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: str, header: str | None, body: bytes, *, tolerance: float = SIGNATURE_TOLERANCE, now: float | None = None
) -> bool:
    """Whether `header` signs `body` with `secret`, made within `tolerance` seconds of `now`."""
    try:
        parts = dict(item.split("=", 1) for item in (header or "").split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# --------------------------------------------------------------------------- events


def _slack(text: str) -> str:
    """One line of Slack mrkdwn: control characters out, `& < >` escaped."""
    flat = " ".join(text.split())
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _subject(e: Episode) -> str:
    key = e.key.replace("`", "'")
    return f"{e.rule} on {e.dimension} `{key}`" + (f" ({e.name})" if e.name else "")


def event_text(event: str, e: Episode, reading: Reading) -> str:
    """The Slack-compatible one-line summary of an event."""
    since = iso(e.started_at)
    if event == "fired":
        icon = ":warning:" if e.rule == "budget_warning" else ":rotating_light:"
        return _slack(f"{icon} {_subject(e)}: {reading.words} (since {since})")
    span = f"{since} to {iso(e.ended_at)}" if e.ended_at else f"since {since}"
    peak = ratio_json(e.peak_ratio)
    peaked = f", peak {peak}×" if peak is not None else ""
    return _slack(f":white_check_mark: resolved: {_subject(e)}, {span}{peaked}, ${e.spend:,.2f} spent")


def event_body(event: str, e: Episode) -> dict[str, Any]:
    """The webhook's JSON body."""
    reading = e.last if event == "fired" else (e.after or e.last)
    return {
        "id": e.id,
        "event": event,
        "rule": e.rule,
        "dimension": e.dimension,
        "key": e.key,
        "started_at": iso(e.started_at),
        "recent_spend_per_hour": None if reading.recent is None else money(reading.recent),
        "baseline_spend_per_hour": None if reading.baseline is None else money(reading.baseline),
        "ratio": ratio_json(reading.ratio),
        "text": event_text(event, e, reading),
    }


@dataclass(slots=True)
class Delivery:
    """One event and how its delivery went: `pending` (being tried), `delivered` or `failed`."""

    event: str
    episode: Episode
    body: bytes
    queued_at: datetime
    state: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None
    text: str = field(default="")

    def as_json(self) -> dict[str, Any]:
        e = self.episode
        return {
            "id": e.id,
            "event": self.event,
            "rule": e.rule,
            "dimension": e.dimension,
            "key": e.key,
            "started_at": iso(e.started_at),
            "text": self.text,
            "state": self.state,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "queued_at": iso(self.queued_at),
            "delivered_at": None if self.delivered_at is None else iso(self.delivered_at),
        }


# --------------------------------------------------------------------------- the engine


class AlertEngine:
    """Evaluates the rules every `interval` and delivers the events; `clock` (the evaluation time),
    `sleep` (between retries) and `timeout` (per attempt) are injectable for tests."""

    def __init__(
        self,
        settings: Settings,
        service: Watched,
        budgets: BudgetTracker | None = None,
        *,
        clock: Callable[[], datetime] = now_utc,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        timeout: float = DELIVERY_TIMEOUT,
    ) -> None:
        self.cfg = settings.alerts
        self.service = service
        self.budgets = budgets
        self.clock = clock
        self.sleep = sleep
        self.timeout = timeout
        self.enabled = self.cfg.webhook_url is not None
        self.events: deque[Delivery] = deque(maxlen=RECENT_EVENTS)
        self.sent: dict[str, Episode] = {}  # open episodes sent as `fired`, by id
        self.leading = False
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._last: dict[str, asyncio.Task[None]] = {}  # episode id → its latest delivery
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
            await asyncio.sleep(self.cfg.interval.seconds)

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
        """Evaluate once: queue `fired` for new open episodes, `resolved` for sent ones that ended."""
        if not self.enabled or not await self._lead():
            return []
        now = self.clock()
        found = await replay(self.service, Range(now - LOOKBACK, now), now=now, budgets=self.budgets)
        series = {(e.rule, e.dimension, e.key): e for e in self.sent.values()}
        still_open: set[str] = set()
        queued: list[Delivery] = []
        for e in (e for e in found if e.open):
            if e.id in self.sent:
                still_open.add(e.id)
                continue
            known = series.get((e.rule, e.dimension, e.key))
            if e.clipped and known is not None and known.started_at <= e.started_at:
                still_open.add(known.id)  # began before the replayed hours: the id it was sent with holds
                continue
            self.sent[e.id] = e
            still_open.add(e.id)
            queued.append(self._queue("fired", e))
        ended = {e.id: e for e in found if not e.open}
        for sent_id in [i for i in self.sent if i not in still_open]:
            episode = self.sent.pop(sent_id)
            queued.append(self._queue("resolved", ended.get(sent_id, episode)))
        return queued

    def _queue(self, event: str, e: Episode) -> Delivery:
        body = event_body(event, e)
        delivery = Delivery(event, e, _encoder.encode(body), self.clock(), text=body["text"])
        self.events.appendleft(delivery)
        previous = self._last.get(e.id)  # `resolved` goes out after its `fired`
        task = asyncio.create_task(self._deliver(delivery, previous), name=f"alert-{event}-{e.id}")
        self._last[e.id] = task
        self._deliveries.add(task)
        task.add_done_callback(lambda t: self._done(e.id, t))
        return delivery

    def _done(self, episode_id: str, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        if self._last.get(episode_id) is task:
            del self._last[episode_id]

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
                d.state, d.delivered_at = "delivered", self.clock()
                WEBHOOK_DELIVERIES.labels(result="delivered").inc()
                return
            if attempt < retry.attempts:
                WEBHOOK_DELIVERIES.labels(result="retried").inc()
                await self.sleep(delay)
                delay = min(delay * 2, retry.max_delay.seconds)
        d.state = "failed"
        WEBHOOK_DELIVERIES.labels(result="failed").inc()
        log.warning("alert %s %s not delivered after %d attempts: %s", d.event, d.episode.id, d.attempts, d.last_error)

    async def _post(self, d: Delivery) -> bool:
        """One attempt; False (with `last_error`) on an error, a timeout or a non-2xx answer."""
        assert self.cfg.webhook_url is not None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        headers = {"Content-Type": "application/json", "User-Agent": f"cost-api/{__version__}"}
        if self.cfg.webhook_secret:
            headers[SIGNATURE_HEADER] = sign(self.cfg.webhook_secret, int(time.time()), d.body)
        try:
            response = await self._client.post(self.cfg.webhook_url, content=d.body, headers=headers)
        except httpx.HTTPError as exc:
            d.last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            return False
        if response.is_success:
            d.last_error = None
            return True
        d.last_error = f"HTTP {response.status_code}"
        return False

    # ----------------------------------------------------------------------- one sender per database

    async def _lead(self) -> bool:
        """Whether this process sends: while it holds the leader lock (always, on SQLite)."""
        self.leading = await self._leadership.hold()
        return self.leading

    async def _release(self) -> None:
        await self._leadership.release()
        self.leading = False

    # ----------------------------------------------------------------------- GET /v1/alerts

    def overview(self) -> dict[str, Any]:
        return {
            "items": [d.as_json() for d in self.events],
            "sending": self.sending,
            "as_of": iso(now_utc()),
        }


# --------------------------------------------------------------------------- a local receiver


def _handler(secret: str | None, out: Any) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            signed = None if secret is None else verify(secret, self.headers.get(SIGNATURE_HEADER), body)
            try:
                event = json.loads(body)
            except ValueError:
                event = {}
            mark = {None: "signature not checked", True: "signature ok", False: "BAD SIGNATURE"}[signed]
            print(f"[{mark}] {event.get('event')} {event.get('id')}: {event.get('text')}", file=out, flush=True)
            print(json.dumps(event, indent=2, ensure_ascii=False), file=out, flush=True)
            self.send_response(401 if signed is False else 204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Receiver


def receive(host: str, port: int, secret: str | None, out: Any = sys.stdout) -> None:
    """Print every webhook event POSTed to http://host:port/ (checking signatures with `secret`)."""
    server = ThreadingHTTPServer((host, port), _handler(secret, out))
    print(f"listening on http://{host}:{server.server_port}/ (Ctrl-C to stop)", file=out, flush=True)
    with contextlib.suppress(KeyboardInterrupt), server:
        server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cost_api.watch.alerts", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rx = commands.add_parser("receive", help="a local webhook receiver: prints events, checks signatures")
    rx.add_argument("--host", default="127.0.0.1")
    rx.add_argument("--port", type=int, default=9000)
    rx.add_argument("--secret", default=None, help="alerts.webhook_secret, to check X-Cost-Signature")
    args = parser.parse_args(argv)
    receive(args.host, args.port, args.secret)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
