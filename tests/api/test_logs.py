"""Every log line of the service goes through one formatter, which writes control characters escaped."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cost_api.logs import FORMAT, EscapingFormatter

from ..logdb import SqliteLog
from ..pgcluster import free_port

LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) - \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - [\w.]+ - \w+ - ")


def _record(name: str, msg: str, args: tuple[object, ...], exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]


def test_a_line_shows_its_control_characters_escaped() -> None:
    path = "/static/app.js\x00.png\nERROR - forged line\x1b[2J\x85"
    line = EscapingFormatter(FORMAT).format(_record("cost_api", "unhandled error on %s %s", ("GET", path)))
    assert LINE.match(line)
    assert line.endswith(r"unhandled error on GET /static/app.js\x00.png\nERROR - forged line\x1b[2J\x85")
    assert not re.search("[\x00-\x1f\x7f-\x9f]", line)


def test_a_traceback_keeps_its_lines_and_nothing_else() -> None:
    try:
        raise ValueError("embedded null byte: app.js\x00.png\x1b[31m")
    except ValueError:
        exc_info = sys.exc_info()
    text = EscapingFormatter(FORMAT).format(_record("cost_api", "boom", (), exc_info))
    lines = text.split("\n")
    assert lines[0].endswith(" - boom") and lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == r"ValueError: embedded null byte: app.js\x00.png\x1b[31m"
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", text)


def test_an_access_line_as_uvicorn_logs_it() -> None:
    args = ("127.0.0.1:51234", "GET", "/static/app.js\x00.png", "1.1", 404)
    line = EscapingFormatter(FORMAT).format(_record("uvicorn.access", '%s - "%s %s HTTP/%s" %d', args))
    assert line.endswith(r'127.0.0.1:51234 - "GET /static/app.js\x00.png HTTP/1.1" 404')


def test_serve_writes_every_line_through_it(tmp_path: Path) -> None:
    """`cost-api serve`: uvicorn's lines and the app's in the one format, a path with a NUL a 404, and
    a configured name with a terminal escape in it (a budget never seen, logged once) escaped."""
    log = SqliteLog(tmp_path / "log.db")
    port = free_port()
    command = [sys.executable, "-m", "cost_api.cli", "serve", "--db", log.url, "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    env["COST_API_BUDGETS"] = '[{endpoint: "/never\\e[2J", limit_usd: 5, period: day}]'  # YAML: \e is ESC
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as stderr, subprocess.Popen(command, stderr=stderr, env=env) as proc:
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline and proc.poll() is None, "the server did not come up"
                    time.sleep(0.1)
            assert httpx.get(f"http://127.0.0.1:{port}/static/app.js%00.png").status_code == 404
        finally:
            proc.terminate()
            proc.wait(10)
    text = stderr_path.read_text()
    lines = text.splitlines()
    assert any(" - uvicorn.error - " in line and "Uvicorn running on" in line for line in lines), lines
    assert any(
        line.endswith(
            r"budget for endpoint /never\x1b[2J: no row of the log has that endpoint "
            "(request_log.endpoint); it caps nothing until one does"
        )
        for line in lines
    ), lines
    assert all(LINE.match(line) for line in lines), lines
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", text)
