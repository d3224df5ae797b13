"""`cost-api serve --workers N`: real server processes on 127.0.0.1 over one SQLite log. Each worker
answers as one process does, SIGTERM stops them all, and of every process on one SQLite file only the
holder of the leader lock (a file lock, cost_api/store/leadership.py) sends alerts.

Which worker answers a connection is the kernel's choice; to hear each one, the test stops the others
(SIGSTOP) while it asks, and lets them go on (SIGCONT) after."""

from __future__ import annotations

import contextlib
import gc
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cost_api.cli import WORKER_FAILURES, WORKER_SETTINGS, decode_settings, encode_settings, main, worker_app
from cost_api.config import load_settings
from cost_api.store.leadership import FileLock, Leadership, lock_path
from cost_api.watch.alerts import ALERT_LOCK
from cost_api.web.service import build_service

from ..logdb import Row, SqliteLog, at
from ..pgcluster import free_port
from ..server import spawned_workers
from .test_alerts import OPEN, Receiver, engine_for, sent
from .test_anomalies import spiky_log

WAIT = 60  # seconds for a server (and each of its spawned workers) to come up on a busy machine
SUMMARY_TO = "2026-11-20T00:00:00Z"


# --------------------------------------------------------------------------- a server and its processes


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    lines: list[str] = field(default_factory=list)  # its stderr, read as it comes

    def workers(self) -> list[int]:
        """The worker processes uvicorn spawned (not multiprocessing's resource tracker)."""
        return spawned_workers(self.proc.pid)

    def count(self, pattern: str) -> int:
        return sum(1 for line in list(self.lines) if re.search(pattern, line))


@contextmanager
def server(url: str, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """`cost-api serve --db url *args` on a free port, up (/healthz answers); stopped with SIGTERM."""
    port = free_port()
    command = [sys.executable, "-m", "cost_api.cli", "serve", "--db", url, "--port", str(port), *args]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    with subprocess.Popen(command, env={**clean, **(env or {})}, stderr=subprocess.PIPE) as proc:
        running = Server(proc, f"http://127.0.0.1:{port}")
        assert proc.stderr is not None
        reader = threading.Thread(
            target=lambda: running.lines.extend(line.decode(errors="replace") for line in proc.stderr),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        try:
            until(lambda: _up(running), f"server {command} did not come up")
            yield running
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(WAIT)
            reader.join(WAIT)


def _up(running: Server) -> bool:
    if running.proc.poll() is not None:
        raise AssertionError("server exited:\n" + "".join(running.lines))
    try:
        return httpx.get(running.base + "/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def until(condition: Any, message: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


@contextmanager
def only(worker: int, workers: list[int]) -> Iterator[None]:
    """Every worker but `worker` stopped: the one left accepts every new connection. (Stopped for
    longer than uvicorn's health check allows, a worker is replaced: then the new one answers too.)"""
    others = [w for w in workers if w != worker]
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(other, signal.SIGCONT)


def gone(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# --------------------------------------------------------------------------- the same answers


BUDGETS = """\
tz: UTC
budgets:
  - {endpoint: /chat, limit_usd: 1000, period: month}
  - {endpoint: /summarise, limit_usd: 0.001, period: month}
"""
VOLATILE = {"age_seconds", "as_of", "future_after"}  # what the clock changes from one answer to the next


def _steady(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


def answers(base: str) -> dict[str, Any] | None:
    """The summary and two budget checks, each on a connection of its own; None while the figures
    of the worker that answers are not read yet."""
    got = {}
    for name, path, params in [
        ("summary", "/v1/summary", {"to": SUMMARY_TO}),
        ("check ok", "/v1/budgets/check", {"endpoint": "/chat"}),
        ("check exceeded", "/v1/budgets/check", {"endpoint": "/summarise"}),
    ]:
        response = httpx.get(base + path, params=params, timeout=WAIT)
        body = response.json()
        if body.get("age_seconds", 0) is None:
            return None
        got[name] = (response.status_code, _steady(body))
    return got


def steady_answers(base: str) -> dict[str, Any]:
    found: list[dict[str, Any] | None] = [None]

    def ready() -> bool:
        found[0] = answers(base)
        return found[0] is not None

    until(ready, f"{base}: no budget figures")
    assert found[0] is not None
    return found[0]


async def test_two_workers_answer_as_one_and_sigterm_stops_them_all(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path / "log.db")
    now = datetime.now(UTC).replace(microsecond=0)
    await log.insert(
        [
            Row(at("2026-11-19T10:00:00Z"), "anthropic", "claude-3-5-sonnet", "/chat", prompt_tokens=14320),
            Row(at("2026-11-18T09:00:00Z"), "openai", "gpt-4o", "/summarise", prompt_tokens=5000),
            Row(now - timedelta(seconds=1), "openai", "gpt-4o-mini", "/chat", prompt_tokens=100_000),
            Row(now - timedelta(seconds=1), "openai", "gpt-4o-mini", "/summarise", prompt_tokens=100_000),
        ]
    )
    config = tmp_path / "config.yaml"
    config.write_text(BUDGETS)
    with (
        server(log.url, "--config", str(config)) as one,
        server(log.url, "--config", str(config), "--workers", "2") as two,
    ):
        assert one.workers() == []  # --workers 1: the one process serves, as before
        until(lambda: len(two.workers()) == 2, "two workers")
        until(lambda: two.count("Application startup complete") == 2, "both workers started")
        workers = two.workers()
        for _ in range(2):  # a second time only if a period began between the answers (a month's end)
            expected = steady_answers(one.base)
            heard = {}
            for worker in workers:
                with only(worker, workers):
                    heard[worker] = steady_answers(two.base)
            if steady_answers(one.base) == expected:
                break
        assert heard == dict.fromkeys(workers, expected)
        assert expected["summary"][0] == 200
        assert expected["summary"][1]["spend"] == 0.05546  # (14,320 × $3 + 5,000 × $2.5) / 1M
        assert expected["check ok"][0] == 200 and expected["check ok"][1]["allowed"] is True
        period_start = at(expected["check ok"][1]["budgets"][0]["period_start"])
        if period_start <= now - timedelta(seconds=1):  # the rows just written are in the current month
            assert expected["check exceeded"][0] == 422
            assert expected["check exceeded"][1]["spent"] == 0.015  # 100,000 × $0.15 /1M

        two.proc.send_signal(signal.SIGTERM)
        assert two.proc.wait(WAIT) == 0
        assert all(gone(w) for w in workers)
    with pytest.raises(httpx.ConnectError):
        httpx.get(two.base + "/healthz")


def test_settings_reach_the_workers_unchanged() -> None:
    settings = load_settings(
        environ={},
        overrides={
            "database_url": "sqlite:///some/where.db",
            "tz": "Europe/Berlin",
            "api_keys": ["k1", "k2"],
            "cors_origins": ["https://grafana.example.com"],
            "query_timeout": "3s",
            "budget_refresh": "500ms",
            "budget_fail_mode": "closed",
            "budgets": [{"endpoint": "/x", "limit_usd": 5, "period": "week", "warn_at_pct": 50}],
            "alerts": {"webhook_url": "http://127.0.0.1:9/hook", "interval": "1d", "retry": {"attempts": 2}},
        },
    )
    text = encode_settings(settings)
    assert decode_settings(text) == settings
    assert decode_settings(encode_settings(load_settings(environ={}))) == load_settings(environ={})


def test_a_worker_without_its_settings_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """uvicorn's supervisor stops (rather than restarts) a worker that exits with its start-up failure
    status; the worker leaves its reason for the supervising `cost-api serve`."""
    from uvicorn.config import STARTUP_FAILURE

    failures = tmp_path / "failures"
    monkeypatch.delenv(WORKER_SETTINGS, raising=False)
    monkeypatch.setenv(WORKER_FAILURES, str(failures))
    with pytest.raises(SystemExit) as exited:
        worker_app()
    assert exited.value.code == STARTUP_FAILURE
    assert f"{WORKER_SETTINGS} is not set" in capsys.readouterr().err
    assert failures.read_text().startswith(f"{WORKER_SETTINGS} is not set")


def test_a_worker_serves_with_its_start_up_objects_out_of_the_collectors_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The modules, the app, its settings and prices are frozen (`gc.freeze`) before a worker serves, so
    that the full collections requests trigger do not walk them (docs/performance.md#the-garbage-
    collectors-pause)."""
    log = SqliteLog(tmp_path / "log.db")
    monkeypatch.setenv(WORKER_SETTINGS, encode_settings(load_settings(environ={}, overrides={"database_url": log.url})))
    gc.unfreeze()
    try:
        worker_app()
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()  # this test process's objects go back to the collector
    assert frozen > 10_000, frozen  # the modules alone are tens of thousands of objects


# Python runs a `sitecustomize` module found on PYTHONPATH in every process it starts: here, in each
# spawned worker (the only processes with the variable set), settings the worker's validation refuses
SPOILER = f"""\
import os
if {WORKER_SETTINGS!r} in os.environ:
    os.environ[{WORKER_SETTINGS!r}] = '{{"tz": "Mars/Olympus"}}'
"""


def test_workers_that_cannot_start_stop_the_server_with_their_reason(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path / "log.db")
    (tmp_path / "sitecustomize.py").write_text(SPOILER)
    command = [sys.executable, "-m", "cost_api.cli", "serve", "--db", log.url, "--port", str(free_port())]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    done = subprocess.run(
        [*command, "--workers", "2"],
        env={**clean, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
    )
    assert done.returncode == 2, done.stderr
    reason = "cost-api: a worker could not start, and the server stopped: tz: unknown time zone 'Mars/Olympus'"
    assert done.stderr.splitlines().count(reason) == 1  # among the log's lines, written by a thread of their own
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
def test_workers_must_be_a_positive_number(workers: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", workers])
    assert exited.value.code == 2
    assert "--workers: expected a whole number of at least 1" in capsys.readouterr().err


def test_workers_on_chdb_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """chDB is one process's engine: a second worker could not open the directory the first holds."""
    assert main(["serve", "--db", f"chdb:///{tmp_path}", "--workers", "2"]) == 2
    assert "chDB is one process's engine" in capsys.readouterr().err


# --------------------------------------------------------------------------- one sender per SQLite file


async def test_only_one_process_on_a_sqlite_file_sends(tmp_path: Path) -> None:
    """Three alert engines on one SQLite file (a server with two workers, another with one): one takes
    the lock and sends each open incident once; the others say they wait, and send nothing."""
    log = SqliteLog(tmp_path / "log.db")
    now = datetime.now(UTC)
    # $60 in 3 calls half an hour ago on an endpoint the 7 days before never saw (the log is older: the
    # rules judge only hours whose baselines it covers): `new_spender` holds in that hour (3 requests:
    # its floor, too few for `burn_rate`'s min_requests); the next hour, not whole yet, cannot end it.
    # Open as long as these servers run.
    fresh = [
        Row(now - timedelta(minutes=30), "anthropic", "claude-3-5-sonnet", "/fresh", prompt_tokens=n)
        for n in (10_000_000, 5_000_000, 5_000_000)
    ]
    await log.insert([Row(now - timedelta(days=10), endpoint="/old"), *fresh])
    receiver = Receiver()
    config = tmp_path / "config.yaml"
    # one evaluation per engine (interval 1d): none retries the lock while the test runs
    config.write_text(f"alerts: {{webhook_url: '{receiver.url}', dimensions: [endpoint], interval: 1d}}\n")
    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    lock = lock_path(log.path.resolve(), ALERT_LOCK, cache / "cost-api")
    try:
        with (
            server(log.url, "--config", str(config), "--workers", "2", env=env) as two,
            server(log.url, "--config", str(config), env=env) as one,
        ):
            taken, waits = r"leader lock .*: taken by this process \(pid (\d+)\)", r"leader lock .*: held by another"
            until(lambda: two.count(taken) + one.count(taken) + two.count(waits) + one.count(waits) == 3, "3 engines")
            assert two.count(taken) + one.count(taken) == 1
            until(lambda: len(receiver.events()) == 1, "the leader's event")
            [line] = [line for line in two.lines + one.lines if re.search(taken, line)]
            leader = int(re.search(taken, line).group(1))  # type: ignore[union-attr]
            assert leader in [*two.workers(), one.proc.pid]
            assert lock.read_text() == f"{leader}\n"
        assert not lock.exists()  # removed by its holder as it stopped
    finally:
        receiver.close()
    events = sorted((e["event"], e["rule"], e["key"]) for e in receiver.events())
    assert events == [("fired", "new_spender", "/fresh")]  # 3 requests: no burn_rate (min_requests), sent once


async def test_the_file_lock_passes_to_the_next_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In one process as across processes: the second engine on the file waits until the first stops."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    log = SqliteLog(tmp_path / "log.db")
    await spiky_log(log)
    lock = lock_path(log.path.resolve(), ALERT_LOCK, tmp_path / "cache" / "cost-api")
    receiver = Receiver()
    try:
        async with engine_for(log, receiver) as first, engine_for(log, receiver) as second:
            assert len(await sent(first)) == len(OPEN) and first.sending
            assert lock.read_text() == f"{os.getpid()}\n"
            assert await sent(second) == [] and not second.sending
            await first.stop()
            assert not lock.exists()
            assert await sent(second) == [f"fired {e}" for e in OPEN] and second.sending
        assert not lock.exists()
    finally:
        receiver.close()
    ids = [e["id"] for e in receiver.events()]
    assert len(ids) == 2 * len(OPEN) and len(set(ids)) == len(OPEN)  # the same ids: receivers dedupe


def test_a_lock_file_removed_under_its_holder_is_taken_again(tmp_path: Path) -> None:
    path = tmp_path / "leader.lock"
    a, b = FileLock(path), FileLock(path)
    assert a.acquire() and not b.acquire()
    path.unlink()  # a cache cleaner: b could now lock a new file at the path
    assert b.acquire()
    assert not a.acquire() and not a.held  # a sees its file gone, and the new one held
    b.release()
    assert not path.exists() and a.acquire()
    a.release()


async def test_without_a_writable_directory_the_lock_is_held_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No lock file can be made: this process acts (as one process per file always did), and says so
    once; the lock file is tried again at each hold, and used once it can be made."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    directories = [blocker / "cost-api"]
    monkeypatch.setattr("cost_api.store.leadership.lock_directories", lambda: directories)
    log = SqliteLog(tmp_path / "log.db")
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    try:
        leadership, other = Leadership(service.db, ALERT_LOCK), Leadership(service.db, ALERT_LOCK)
        assert await leadership.hold() and await leadership.hold()
        assert caplog.text.count("no lock file") == 1
        directories[:] = [tmp_path / "cache"]
        assert await other.hold()  # the file exists now, and `other` holds it
        assert not await leadership.hold()
        await other.release()
        assert await leadership.hold()
        await leadership.release()
    finally:
        await service.close()
    assert list((tmp_path / "cache").iterdir()) == []
