"""The live alert engine: one fired and one resolved webhook per incident to a real HTTP receiver on
127.0.0.1, their text and dollars, signatures, retries with backoff, restarts, one sender per Postgres,
and GET /v1/alerts — on SQLite and Postgres.

The engine's clock is injected (the log's `NOW` lies in the past) and each test calls `tick()` itself;
retry delays are a few milliseconds."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from cost_api.config import load_settings
from cost_api.watch.alerts import AlertEngine
from cost_api.watch.anomalies import episode_id
from cost_api.watch.webhook import sign, verify
from cost_api.web.app import create_app
from cost_api.web.service import build_service
from cost_api.windows import iso

from ..clock import FakeClock
from ..logdb import LogDB, PostgresLog, Row
from ..pgcluster import free_port
from .test_anomalies import HOUR, NOW, rollups_ready, sonnet, spiky_log

SECRET = "whsec_test"
MINUTE = timedelta(minutes=1)
HOLD = 0  # a plan's step: no answer (see Receiver)
# Per delivery attempt: the receiver answers at once, so no attempt comes near it but a held one
ENGINE_TIMEOUT = 5.0


class Receiver:
    """A webhook receiver on 127.0.0.1: answers each POST with the next status of `plan` (then 204);
    `HOLD` in the plan answers nothing until the next POST comes (the engine's retry, once it gave up
    on this one: a timeout, recorded as status 0) or the receiver closes."""

    def __init__(self) -> None:
        self.plan: list[int] = []
        self.posts: list[tuple[dict[str, str], bytes, int]] = []  # headers, body, status answered
        self.next_post = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                step = receiver.plan.pop(0) if receiver.plan else 204
                receiver.posts.append((dict(self.headers), body, step))
                receiver.next_post.set()
                if step == HOLD:
                    receiver.next_post.clear()
                    receiver.next_post.wait(60)  # (a guard: the engine gives up long before)
                    step = 204
                self.send_response(step)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, *args: Any) -> None:  # a client that timed out and left
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/cost"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        """The bodies the receiver accepted (2xx), in arrival order."""
        return [json.loads(body) for _, body, status in self.posts if 200 <= status < 300]

    def close(self) -> None:
        self.next_post.set()  # nothing held any longer
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


def alert_settings(url: str, webhook: str | None, **alerts: Any) -> Any:
    config = {
        "webhook_url": webhook,
        "webhook_secret": SECRET,
        "dimensions": ["endpoint"],
        "min_requests": 1,  # the hand-built logs' spikes are a few calls of a few dollars
        "retry": {"attempts": 4, "first_delay": "1ms", "max_delay": "4ms"},
        **alerts,
    }
    return load_settings(environ={}, overrides={"database_url": url, "alerts": config})


@asynccontextmanager
async def engine_for(
    log: LogDB, receiver: Receiver | None, clock: FakeClock | None = None, **alerts: Any
) -> AsyncIterator[AlertEngine]:
    settings = alert_settings(log.url, receiver.url if receiver else None, **alerts)
    service = build_service(settings, clock or FakeClock(NOW))
    engine = AlertEngine(settings, service, timeout=ENGINE_TIMEOUT)
    try:
        yield engine
    finally:
        await engine.stop()
        await service.close()


async def sent(engine: AlertEngine) -> list[str]:
    """One evaluation; the events it queued (each incident by its root), once delivered."""
    queued = await engine.tick()
    await engine.drain()
    return sorted(f"{d.event} {d.incident.root.rule} {d.incident.root.key}" for d in queued)


# the open incidents at NOW: /fresh's two episodes are one incident of $1.50, under min_impact ($5)
OPEN = ["burn_rate /open", "request_storm /loop"]
ONE = {"min_spend_per_hour": 5.0, "min_requests_per_minute": 1000}  # only /open's burn holds


def incident_id(rule: str, dimension: str, key: str, started_at: datetime) -> str:
    """As docs/alerts.md defines it: sha256("incident" ␟ the id of its first episode), 20 hex digits."""
    return hashlib.sha256(f"incident\x1f{episode_id(rule, dimension, key, started_at)}".encode()).hexdigest()[:20]


# --------------------------------------------------------------------------- firing and resolving


async def test_each_open_incident_fires_once_signed(log: LogDB, receiver: Receiver) -> None:
    await spiky_log(log)
    async with engine_for(log, receiver) as engine:
        assert await sent(engine) == [f"fired {e}" for e in OPEN]
        assert await sent(engine) == []  # the next evaluation: nothing new
        assert len(receiver.posts) == len(OPEN)
        for headers, body, _ in receiver.posts:
            assert headers["Content-Type"] == "application/json"
            assert verify(SECRET, headers["X-Cost-Signature"], body)
            assert not verify("another secret", headers["X-Cost-Signature"], body)
            assert not verify(SECRET, headers["X-Cost-Signature"], body + b" ")
        burn = next(e for e in receiver.events() if e["key"] == "/open")
        # two hours at $9 against the same clock hours' $3: $12 over the baseline in 2 hours, $6 an hour
        assert burn == {
            "id": incident_id("burn_rate", "endpoint", "/open", NOW - 2 * HOUR),
            "event": "fired",
            "rule": "burn_rate",
            "dimension": "endpoint",
            "key": "/open",
            "started_at": iso(NOW - 2 * HOUR),
            "ended_at": None,
            "impact": 12.0,
            "impact_per_hour": 6.0,
            "related": [],
            "recent_spend_per_hour": 9.0,
            "baseline_spend_per_hour": 3.0,
            "ratio": 3.0,
            "baseline_days": 7,
            "link": None,
            "text": ":rotating_light: burn_rate on endpoint `/open`: $12.00 over its usual spend ($6.00/h) since "
            "2026-11-18T10:00:00Z; now $9.00/h over the last hour, 3.0× its baseline of $3.00/h",
        }
        storm = next(e for e in receiver.events() if e["rule"] == "request_storm")
        assert storm["ratio"] == 100.0 and "100 requests/min over 5 minutes" in storm["text"]
        assert all("\n" not in e["text"] for e in receiver.events())


LEAK = "tok_leakleakleakleak"


async def leak_log(log: LogDB) -> None:
    """Nine days of $3 an hour at /chat (another token); a new token spends 5 × $3 an hour there in the
    last two hours."""
    rows = [sonnet(NOW - n * HOUR + timedelta(minutes=5), "/chat", 3.0, token_id="tok_steadysteadysteady")
            for n in range(1, 9 * 24 + 1)]  # fmt: skip
    for n in (1, 2):
        rows += [sonnet(NOW - n * HOUR + timedelta(minutes=10 * k), "/chat", 3.0, token_id=LEAK) for k in range(1, 6)]
    await log.insert(rows)


async def test_one_leak_is_one_incident_named_by_its_token_with_a_link(log: LogDB, receiver: Receiver) -> None:
    await leak_log(log)
    public = "https://cost.example.com/"
    clock = FakeClock(NOW)
    async with engine_for(log, receiver, clock, dimensions=["endpoint", "token"], public_url=public) as engine:
        assert await sent(engine) == ["fired burn_rate tok_leaklea…"]
        clock.set(NOW + 2 * HOUR)  # no rows since NOW; the token's last 24 hours still average $30 / 24 ≥ $1
        assert await sent(engine) == []
        clock.set(NOW + 24 * HOUR)  # …until the hour from NOW + 22h, whose 24 hours hold $15
        assert await sent(engine) == ["resolved burn_rate tok_leaklea…"]
    fired, resolved = receiver.events()
    # the token: $15 an hour against nothing; /chat: $18 against $3, $15 over. One problem, $30 over its
    # baseline in 2 hours; the token (the most specific key) is the root, /chat related
    link = "https://cost.example.com/v1/requests?token=tok_leaklea%E2%80%A6&from=2026-11-18T10%3A00%3A00Z&to="
    assert fired["id"] == resolved["id"] == incident_id("burn_rate", "token", "tok_leaklea…", NOW - 2 * HOUR)
    assert (fired["impact"], fired["impact_per_hour"], fired["related"], fired["link"]) == (
        30.0,
        15.0,
        ["endpoint:/chat"],
        link + "2026-11-18T12%3A00%3A00Z",
    )
    # resolved: still $30, over the 24 hours it held (to NOW + 22h); /chat's episode (ended at NOW) still related
    assert (resolved["impact"], resolved["impact_per_hour"], resolved["related"], resolved["link"]) == (
        30.0,
        30 / 24,
        ["endpoint:/chat"],
        link + "2026-11-19T10%3A00%3A00Z",
    )
    slack = link.replace("&", "&amp;")
    assert fired["text"] == (
        ":rotating_light: burn_rate on token `tok_leaklea…`: $30.00 over its usual spend ($15.00/h) since "
        "2026-11-18T10:00:00Z; now $15.00/h over the last hour, nothing in its baseline; also endpoint:/chat "
        f"<{slack}2026-11-18T12%3A00%3A00Z|audit rows>"
    )
    assert resolved["text"] == (
        ":white_check_mark: resolved: burn_rate on token `tok_leaklea…`, 2026-11-18T10:00:00Z to "
        "2026-11-19T10:00:00Z, $30.00 over its usual spend ($1.25/h); also endpoint:/chat "
        f"<{slack}2026-11-19T10%3A00%3A00Z|audit rows>"
    )
    # the link's rows are the leak's: 10 calls of $3
    settings = alert_settings(log.url, None)
    service = build_service(settings, FakeClock(NOW + 24 * HOUR))
    async with AsyncTestClient(app=create_app(settings, service)) as client:
        rows = (await client.get(fired["link"].removeprefix(public.rstrip("/")))).json()["items"]
        await rollups_ready(service)
    assert len(rows) == 10 and {r["token"] for r in rows} == {"tok_leaklea…"}
    assert sum(r["cost"] for r in rows) == pytest.approx(30.0, abs=1e-9)


async def test_a_new_token_in_a_two_day_old_log_fires(log: LogDB, receiver: Receiver) -> None:
    """No baseline of 7 days yet: the rules judge from the day the log has. A new token spends 10 × $5
    (gpt-4o input, $2.50 per 1M) in the last hour at /chat, which spent $3 an hour for two days."""
    rows = [sonnet(NOW - n * HOUR + timedelta(minutes=5), "/chat", 3.0, token_id="tok_steadysteadysteady")
            for n in range(1, 48 + 1)]  # fmt: skip
    rows += [
        Row(NOW - HOUR + timedelta(minutes=5 * k), "openai", "gpt-4o", "/chat", token_id="tok_newnewnewnewnew",
            prompt_tokens=2_000_000)
        for k in range(10)
    ]  # fmt: skip
    await log.insert(rows)
    async with engine_for(log, receiver, dimensions=["endpoint", "token"], min_requests=10) as engine:
        assert await sent(engine) == ["fired burn_rate tok_newnewn…"]
    [fired] = receiver.events()
    # the token: $50 against nothing; /chat: $53 against the same hour's $3 on the one day before, $50
    # over. One incident of $50 in its first hour
    assert (fired["impact"], fired["impact_per_hour"], fired["related"], fired["baseline_days"]) == (
        50.0,
        50.0,
        ["endpoint:/chat"],
        1,
    )
    assert fired["text"] == (
        ":rotating_light: burn_rate on token `tok_newnewn…`: $50.00 over its usual spend ($50.00/h) since "
        "2026-11-18T11:00:00Z; now $50.00/h over the last hour, nothing in its baseline (a young log: a "
        "baseline of 1 day); also endpoint:/chat"
    )


async def test_a_leak_fires_in_its_first_minutes_and_resolves_once_its_hour_is_judged(
    log: LogDB, receiver: Receiver
) -> None:
    """A new token's 3 calls of $0.12 in the first minutes of an hour: over the first 15 minutes that is
    $1.44/h (new_spender, judged over the hour's elapsed part), fired at once under min_impact. At 25
    minutes the rate is $0.86/h and the rule holds no more: the incident stays open until its hour is
    judged whole, at its end; that hour holds $0.36, so it resolves then — one fired, one resolved."""
    rows = [sonnet(NOW - n * HOUR + timedelta(minutes=5), "/chat", 3.0, token_id="tok_steadysteadysteady")
            for n in range(1, 9 * 24 + 1)]  # fmt: skip
    rows += [sonnet(NOW + timedelta(minutes=m), "/chat", 0.12, token_id=LEAK) for m in (1, 2, 3)]
    await log.insert(rows)
    clock = FakeClock(NOW + 15 * MINUTE)
    async with engine_for(log, receiver, clock, dimensions=["token"]) as engine:
        assert await sent(engine) == ["fired new_spender tok_leaklea…"]
        clock.set(NOW + 25 * MINUTE)
        assert await sent(engine) == []
        clock.set(NOW + HOUR + 5 * MINUTE)
        assert await sent(engine) == ["resolved new_spender tok_leaklea…"]
    fired, resolved = receiver.events()
    assert fired["id"] == resolved["id"]
    assert (fired["impact"], fired["recent_spend_per_hour"]) == (0.36, 1.44)
    assert "now $1.44/h over the hour's first 15 minutes ($0.36), nothing in the 7 days before" in fired["text"]


def test_the_signature_is_an_hmac_of_t_dot_body() -> None:
    body = b'{"id":"x"}'
    header = sign("s", 1_700_000_000, body)
    assert header == "t=1700000000,v1=" + hmac.new(b"s", b"1700000000." + body, "sha256").hexdigest()
    assert verify("s", header, body, now=1_700_000_100)
    assert not verify("s", header, body, now=1_700_000_000 + 301)  # too old: a replay
    assert not verify("s", "v1=abc", body) and not verify("s", None, body)


async def test_an_ended_incident_resolves_once_after_it_fired(log: LogDB, receiver: Receiver) -> None:
    await spiky_log(log)
    clock = FakeClock(NOW)
    async with engine_for(log, receiver, clock) as engine:
        await sent(engine)
        clock.set(NOW + 2 * HOUR)  # no rows since NOW: every incident ended at NOW
        assert await sent(engine) == [f"resolved {e}" for e in OPEN]
        assert await sent(engine) == []
    resolved = [e for e in receiver.events() if e["event"] == "resolved"]
    fired = {e["id"] for e in receiver.events() if e["event"] == "fired"}
    assert {e["id"] for e in resolved} == fired
    burn = next(e for e in resolved if e["key"] == "/open")
    assert burn["text"] == (
        ":white_check_mark: resolved: burn_rate on endpoint `/open`, 2026-11-18T10:00:00Z to "
        "2026-11-18T12:00:00Z, peak 3.0×, $12.00 over its usual spend ($6.00/h)"
    )
    assert (burn["ended_at"], burn["impact"], burn["impact_per_hour"]) == (iso(NOW), 12.0, 6.0)
    assert (burn["recent_spend_per_hour"], burn["baseline_spend_per_hour"], burn["ratio"]) == (0.0, 3.0, 0.0)


async def test_a_restart_sends_the_open_incidents_again_under_the_same_ids(log: LogDB, receiver: Receiver) -> None:
    await spiky_log(log)
    async with engine_for(log, receiver) as engine:
        await sent(engine)
    async with engine_for(log, receiver, FakeClock(NOW + timedelta(minutes=1))) as restarted:
        assert await sent(restarted) == [f"fired {e}" for e in OPEN]
    first, second = receiver.events()[: len(OPEN)], receiver.events()[len(OPEN) :]
    assert sorted(e["id"] for e in first) == sorted(e["id"] for e in second)


# --------------------------------------------------------------------------- retries


def _count(result: str) -> float:
    return REGISTRY.get_sample_value("cost_api_webhook_deliveries_total", {"result": result}) or 0.0


async def test_a_receiver_failing_twice_gets_the_event_once(log: LogDB, receiver: Receiver) -> None:
    await spiky_log(log)
    before = {r: _count(r) for r in ("delivered", "retried", "failed")}
    async with engine_for(log, receiver, **ONE) as engine:
        receiver.plan = [HOLD, 503]  # a timeout (the engine waits ENGINE_TIMEOUT), then a 503, then 204
        queued = await engine.tick()
        assert [d.state for d in queued] == ["pending"]  # queued in the background: tick() did not wait
        await engine.drain()
    [delivery] = queued
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("delivered", 3, None)
    assert [e["key"] for e in receiver.events()] == ["/open"]  # accepted once
    assert [status for _, _, status in receiver.posts] == [0, 503, 204]
    assert _count("retried") - before["retried"] == 2
    assert _count("delivered") - before["delivered"] == 1
    assert _count("failed") == before["failed"]


async def test_a_receiver_that_keeps_failing_marks_the_event_failed(log: LogDB, receiver: Receiver) -> None:
    await spiky_log(log)
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    retry = {"attempts": 5, "first_delay": "1s", "max_delay": "3s"}
    async with engine_for(log, receiver, retry=retry, **ONE) as engine:
        engine.sleep = record
        receiver.plan = [500] * 5
        [delivery] = await engine.tick()
        await engine.drain()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("failed", 5, "HTTP 500")
    assert delays == [1, 2, 3, 3]  # doubled from first_delay, at most max_delay


async def test_an_unreachable_receiver_is_retried_then_failed(log: LogDB) -> None:
    await spiky_log(log)
    settings = alert_settings(log.url, f"http://127.0.0.1:{free_port()}/", **ONE)
    service = build_service(settings, FakeClock(NOW))
    engine = AlertEngine(settings, service)
    try:
        [delivery] = await engine.tick()
        await engine.drain()
        assert (delivery.state, delivery.attempts) == ("failed", 4)
        assert delivery.last_error.startswith("ConnectError")
    finally:
        await engine.stop()
        await service.close()


# --------------------------------------------------------------------------- one sender per database


async def test_only_the_replica_holding_the_lock_sends(pg_cluster: Any, receiver: Receiver) -> None:
    """Postgres: the advisory lock (SQLite's file lock is tested in test_workers.py)."""
    log = await PostgresLog.create(pg_cluster)
    try:
        await spiky_log(log)
        async with engine_for(log, receiver) as first, engine_for(log, receiver) as second:
            assert len(await sent(first)) == len(OPEN) and first.sending
            assert await sent(second) == [] and not second.sending
            await first.stop()  # its session ends, and the lock with it
            assert await sent(second) == [f"fired {e}" for e in OPEN] and second.sending
    finally:
        await log.drop()
    ids = [e["id"] for e in receiver.events()]
    assert len(ids) == 2 * len(OPEN) and len(set(ids)) == len(OPEN)  # the same ids: receivers dedupe


# --------------------------------------------------------------------------- GET /v1/alerts


async def test_get_alerts_lists_recent_events_with_their_delivery_state(log: LogDB, receiver: Receiver) -> None:
    await spiky_log(log)
    settings = alert_settings(log.url, receiver.url, **ONE)
    service = build_service(settings, FakeClock(NOW))
    engine = AlertEngine(settings, service)
    receiver.plan = [500]
    async with AsyncTestClient(app=create_app(settings, service, alerts=engine)) as client:
        async with asyncio.timeout(10):  # started with the app: it evaluates once the rollups are warm
            while not engine.events or engine.events[0].state == "pending":
                await asyncio.sleep(0.05)
        body = (await client.get("/v1/alerts")).json()
    assert body["sending"] is True
    [item] = body["items"]
    assert item == {
        "id": incident_id("burn_rate", "endpoint", "/open", NOW - 2 * HOUR),
        "event": "fired",
        "rule": "burn_rate",
        "dimension": "endpoint",
        "key": "/open",
        "started_at": iso(NOW - 2 * HOUR),
        "text": item["text"],
        "state": "delivered",
        "attempts": 2,
        "last_error": None,
        "queued_at": iso(NOW),
        "delivered_at": iso(NOW),
    }


async def test_without_a_webhook_nothing_is_evaluated_or_sent(log: LogDB) -> None:
    await spiky_log(log)
    async with engine_for(log, None) as engine:
        assert await engine.tick() == []
    settings = alert_settings(log.url, None)
    service = build_service(settings)
    async with AsyncTestClient(app=create_app(settings, service)) as client:
        body = (await client.get("/v1/alerts")).json()
        await rollups_ready(service)
    assert (body["items"], body["sending"]) == ([], False)


# --------------------------------------------------------------------------- the local receiver


def test_the_local_receiver_prints_events_and_checks_signatures() -> None:
    """`cost-api alerts receive`, run as `python -m cost_api.cli alerts receive`."""
    port = free_port()
    command = [sys.executable, "-m", "cost_api.cli", "alerts", "receive", "--port", str(port), "--secret", SECRET]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith(f"listening on http://127.0.0.1:{port}/")
            body = json.dumps({"id": "abc", "event": "fired", "text": "hello"}).encode()
            good = httpx.post(
                f"http://127.0.0.1:{port}/",
                content=body,
                headers={"X-Cost-Signature": sign(SECRET, int(time.time()), body)},
            )
            bad = httpx.post(f"http://127.0.0.1:{port}/", content=body, headers={"X-Cost-Signature": "t=1,v1=00"})
            assert (good.status_code, bad.status_code) == (204, 401)
            assert proc.stdout.readline() == "[signature ok] fired abc: hello\n"
        finally:
            proc.terminate()
        rest = proc.stdout.read()
    assert "[BAD SIGNATURE] fired abc: hello" in rest
