"""The browser harness of the page tests (tests/api/test_page*.py): Debian's headless Chromium driven by
Playwright, against `cost-api serve` subprocesses on a small known log (one without API keys, one with).

The tests are skipped, with the reason, where Chromium (or the playwright package) is missing; under `CI`
they fail instead. Screenshots go to tests/artifacts/ (gitignored).

Also a tool: `python -m tests.api.page_harness http://127.0.0.1:8000/ docs/dashboard.png [WIDTH HEIGHT [light|dark
[full|screen]]]` screenshots a running server's page once its data has loaded (docs/dashboard.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
import pytest

from ..logdb import Row, SqliteLog

ROOT = Path(__file__).parents[2]
STATIC = ROOT / "cost_api" / "web" / "static"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path(os.environ.get("COST_API_CHROMIUM", "/usr/bin/chromium"))
# As root, in a closed network: no sandbox, no GPU, no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ZONE = "Europe/Berlin"  # the browser's zone: the page must pass it as `tz`
KEY = "page-test-key-7Qx"
TOKEN_A = ("tok_7f3a9c2e5b1d4e6f8a0b", "pg_live_xy7", "customer-A")
TOKEN_B = "tok_9b8c7d6e5f4a3b2c1d0e"  # no api_tokens row: shown as its first 11 characters (untagged)
TEAM_A = "search"  # token A's `team` tag
CONFIG = """
budgets:
  - {endpoint: /summarise-ticket, limit_usd: 40, period: month, warn_at_pct: 80}
  - {endpoint: /chat, limit_usd: 5, period: day}
  - {tag: "team:search", limit_usd: 300, period: month}
"""


def playwright_or_skip() -> Any:
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: apt-get install chromium to run the browser test"
    else:
        try:
            from playwright import async_api
        except ImportError:
            reason = "the playwright package is not installed (pip install -e '.[dev]')"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set: the browser test must run")
        pytest.skip(reason)
    return async_api


def page_rows(now: datetime) -> list[Row]:
    """60 days of a small log: rising Anthropic spend on /summarise-ticket (token A), OpenAI on /chat
    (token B), a daily cache hit, an unpriced fine-tune every third day, two rows in the live hour,
    two bad rows (a negative token count, a row dated a month ahead) that no figure may count, a
    stream cut before its usage report (estimated usage) and a priority request of a model without
    a priority rate (priced at standard): the page must say so beside its coverage figure.
    Every row sits hours away from the edges of a window ending now, so seconds of drift change nothing."""
    rows = []
    for day in range(60):
        t = now - timedelta(days=day, hours=2)
        growth = 1 + (60 - day) / 30
        rows += [
            Row(t, "anthropic", "claude-3-5-sonnet", "/summarise-ticket", TOKEN_A[0],
                prompt_tokens=int(40_000 * growth), completion_tokens=2_000),
            Row(t - timedelta(hours=3), "openai", "gpt-4o-mini", "/chat", TOKEN_B,
                prompt_tokens=300_000, completion_tokens=40_000),
            Row(t - timedelta(hours=5), "anthropic", "claude-3-5-sonnet", "/summarise-ticket", TOKEN_A[0],
                cache_hit=True, prompt_tokens_avoided=30_000, completion_tokens_avoided=1_000),
        ]  # fmt: skip
        if day % 3 == 0:
            rows.append(Row(t, "together", "acme/llama-3-finetune-v7", "/classify", None, prompt_tokens=900))
    rows += [
        Row(now - timedelta(minutes=20), "openai", "gpt-4o-mini", "/chat", TOKEN_B, prompt_tokens=50_000),
        Row(now - timedelta(minutes=2), "anthropic", "claude-3-5-sonnet", "/summarise-ticket", TOKEN_A[0],
            prompt_tokens=10_000, completion_tokens=500),
        Row(now - timedelta(days=3, hours=4), "anthropic", "claude-3-5-sonnet", "/summarise-ticket", TOKEN_A[0],
            prompt_tokens=-4_500_000),
        Row(now + timedelta(days=30), "openai", "gpt-4o-mini", "/chat", TOKEN_B, prompt_tokens=50_000),
        Row(now - timedelta(days=4, hours=6), "anthropic", "claude-3-5-sonnet", "/summarise-ticket", TOKEN_A[0],
            streamed=True, prompt_tokens=12_000, completion_tokens=0, usage_exact=False),
        Row(now - timedelta(days=5, hours=6), "openai", "gpt-5-nano", "/chat", TOKEN_B, prompt_tokens=9_000,
            completion_tokens=300, service_tier="priority"),
    ]  # fmt: skip
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(db_url: str, config: Path, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """`cost-api serve` on a free port; its output goes to `log` (a pipe nobody reads could fill up)."""
    port = free_port()
    command = [sys.executable, "-m", "cost_api.cli", "serve", "--db", db_url, "--config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    return f"http://127.0.0.1:{port}", proc


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server did not come up: {log.read_text()}")


@pytest.fixture(scope="module")
def async_api() -> Any:
    return playwright_or_skip()


@pytest.fixture(scope="module")
async def servers(async_api: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, str]]:
    """{"open": base URL without keys, "keyed": base URL with KEY configured}, on one log."""
    tmp = tmp_path_factory.mktemp("page")
    log = SqliteLog(tmp / "log.db")
    await log.insert(page_rows(datetime.now(UTC)))
    await log.add_tokens([TOKEN_A], [json.dumps({"team": TEAM_A})])
    (tmp / "open.yaml").write_text(CONFIG)
    (tmp / "keyed.yaml").write_text(CONFIG + f"api_keys: [{KEY}]\n")
    started = {name: serve(log.url, tmp / f"{name}.yaml", tmp / f"{name}.log") for name in ("open", "keyed")}
    try:
        for name, (base, proc) in started.items():
            wait_ready(base, proc, tmp / f"{name}.log")
        yield {name: base for name, (base, _) in started.items()}
    finally:
        for _, proc in started.values():
            proc.terminate()
        for _, proc in started.values():
            proc.wait(10)


@pytest.fixture(scope="module")
async def browser(async_api: Any) -> AsyncIterator[Any]:
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


class Watched:
    """A browser context in ZONE with its page, collecting script errors and the API calls made."""

    def __init__(self, context: Any, page: Any) -> None:
        self.context, self.page = context, page
        self.errors: list[str] = []
        self.calls: list[Any] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        # A route that answers 404 (anomalies, before it exists) or 401 logs "Failed to load resource":
        # expected; anything else on the console as an error (a CSP violation, say) is not.
        page.on(
            "console",
            lambda m: (
                self.errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
            ),
        )
        page.on("request", lambda r: self.calls.append(r) if "/v1/" in r.url else None)

    async def ready(self) -> None:
        await self.page.wait_for_selector("body[data-state=ready]", timeout=30_000)

    async def settled(self, *parts: str) -> dict[str, list[str]]:
        """Wait until the address holds every `part` (`range=7d`, as the query encodes it) and the page
        has loaded the view; return the address's query."""
        await self.page.wait_for_url(lambda url: all(p in url for p in parts), timeout=30_000)
        await self.ready()
        return parse_qs(urlsplit(self.page.url).query)


@pytest.fixture
async def watched(browser: Any) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport={"width": 1280, "height": 1600}, timezone_id=ZONE)
    try:
        yield Watched(context, await context.new_page())
    finally:
        await context.close()


def money(value: float) -> str:
    """`$1,234.57`, as the page's Intl.NumberFormat writes it: the shortest decimal of the number (its
    repr), rounded half away from zero (0.105 is `$0.11`, where `f"{0.105:.2f}"` gives 0.10)."""
    cents = Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{'-' if cents < 0 else ''}${abs(cents):,.2f}"


def with_params(url: str, **extra: str | int) -> str:
    """`url` with `extra` parameters added to (or replacing those in) its query."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in extra] + [(k, str(v)) for k, v in extra.items()]
    return parts._replace(query=urlencode(query)).geturl()


def get_json(url: str, key: str | None = None) -> dict[str, Any]:
    """The API's JSON answer to `url`, as the page would get it."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = httpx.get(url, headers=headers)
    answer.raise_for_status()
    return answer.json()


def last_call(watched: Watched, route: str, has: str = "") -> str:
    """The URL of the page's latest call to `route` (`/v1/spend`) whose query holds `has`."""
    urls = [c.url for c in watched.calls if c.url.split("?")[0].endswith(route) and has in c.url]
    assert urls, f"the page made no call to {route} with {has!r}"
    return str(urls[-1])


async def _shoot(url: str, out: Path, width: int, height: int, scheme: str, full: bool) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": width, "height": height}, color_scheme=scheme)
        await page.goto(url)
        await page.wait_for_selector("body[data-state=ready]", timeout=30_000)
        await page.screenshot(path=out, full_page=full)
        await browser.close()


def main(argv: list[str]) -> None:
    """`python -m tests.api.page_harness URL OUT.png [WIDTH HEIGHT [light|dark [full|screen]]]`: screenshot a
    running server's page once its data has loaded (the whole page, or with `screen` the window only)."""
    url, out, *rest = argv
    width, height = (int(rest[0]), int(rest[1])) if rest else (1280, 1600)
    scheme = rest[2] if len(rest) > 2 else "light"
    asyncio.run(_shoot(url, Path(out), width, height, scheme, full=(rest[3] if len(rest) > 3 else "full") == "full"))


if __name__ == "__main__":
    main(sys.argv[1:])
