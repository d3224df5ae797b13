"""The dashboard page in a real browser: Debian's headless Chromium, driven by Playwright, against
`cost-api serve` subprocesses on a small known log (one without API keys, one with).

Skipped, with the reason, where Chromium (or the playwright package) is missing; under `CI` it fails
instead. Screenshots go to tests/artifacts/ (gitignored).

Also a tool: `python -m tests.test_page http://127.0.0.1:8000 docs/dashboard.png` screenshots a
running server's page (docs/dashboard.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
TOKEN_B = "tok_9b8c7d6e5f4a3b2c1d0e"  # no api_tokens row: shown as its first 11 characters
CONFIG = """
budgets:
  - {endpoint: /summarise-ticket, limit_usd: 40, period: month, warn_at_pct: 80}
  - {endpoint: /chat, limit_usd: 5, period: day}
"""


def _playwright_or_skip() -> Any:
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


def _rows(now: datetime) -> list[Row]:
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(db_url: str, config: Path, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """`cost-api serve` on a free port; its output goes to `log` (a pipe nobody reads could fill up)."""
    port = _free_port()
    command = [sys.executable, "-m", "cost_api.cli", "serve", "--db", db_url, "--config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    return f"http://127.0.0.1:{port}", proc


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
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
    return _playwright_or_skip()


@pytest.fixture(scope="module")
async def servers(async_api: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, str]]:
    """{"open": base URL without keys, "keyed": base URL with KEY configured}, on one log."""
    tmp = tmp_path_factory.mktemp("page")
    log = SqliteLog(tmp / "log.db")
    await log.insert(_rows(datetime.now(UTC)))
    await log.add_tokens([TOKEN_A])
    (tmp / "open.yaml").write_text(CONFIG)
    (tmp / "keyed.yaml").write_text(CONFIG + f"api_keys: [{KEY}]\n")
    started = {name: _serve(log.url, tmp / f"{name}.yaml", tmp / f"{name}.log") for name in ("open", "keyed")}
    try:
        for name, (base, proc) in started.items():
            _wait_ready(base, proc, tmp / f"{name}.log")
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
        await self.page.wait_for_selector("body[data-state=ready]", timeout=10_000)


@pytest.fixture
async def watched(browser: Any) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport={"width": 1280, "height": 1600}, timezone_id=ZONE)
    try:
        yield Watched(context, await context.new_page())
    finally:
        await context.close()


def _money(value: float) -> str:
    return f"{'-' if value < 0 else ''}${abs(value):,.2f}"


def _summary(base: str, window: str = "30d", key: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = httpx.get(base + "/v1/summary", params={"window": window, "tz": ZONE, "top": 5}, headers=headers)
    answer.raise_for_status()
    return answer.json()


INK = """() => {
  const canvas = document.querySelector('#trend-chart canvas');
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0 && (data[i] < 240 || data[i + 1] < 240 || data[i + 2] < 240)) ink++;
  }
  return ink;
}"""


async def test_page_without_keys(servers: dict[str, str], watched: Watched) -> None:
    base, page = servers["open"], watched.page
    await page.goto(base + "/")
    await watched.ready()

    summary = _summary(base)
    assert await page.text_content("#total") == _money(summary["spend"])
    assert summary["spend"] > 0
    assert all("tz=Europe%2FBerlin" in call.url for call in watched.calls if "/v1/summary" in call.url)

    # The trend drew: one canvas with bars on it, and the bars' data in the table.
    assert await page.evaluate(INK) > 2000
    assert await page.locator("#trend-table tbody tr").count() == 30
    legend = await page.text_content("#trend-chart .u-legend") or ""
    assert "anthropic" in legend and "openai" in legend and "saved by cache" in legend  # stacked by provider
    assert "projected" in legend and "by month end" in legend  # the month continued from /v1/forecast
    assert "projected to" in (await page.text_content("#trend-caption") or "")

    top = summary["top_tokens"]["items"][0]
    assert (top["token"], top["name"]) == ("pg_live_xy7…", "customer-A")
    first = page.locator("#tokens tbody tr").first
    assert await first.locator("th").text_content() == "pg_live_xy7…"
    assert await first.locator("td.name").text_content() == "customer-A"
    assert "tok_9b8c7d6…" in (await page.text_content("#tokens") or "")
    assert TOKEN_A[0] not in await page.content()

    assert "acme/llama-3-finetune-v7" in (await page.text_content("#unpriced") or "")
    budgets = await page.text_content("#budgets") or ""
    assert "/summarise-ticket" in budgets and ("ok" in budgets or "warning" in budgets or "exceeded" in budgets)
    assert "projected $" in budgets
    assert await page.text_content("#live-requests") == "2"
    # the bad rows are in no figure, and the page says so
    assert summary["data_quality"]["reasons"] == {
        "negative_tokens": 1,
        "missing_provider_or_model": 0,
        "future_created_at": 1,
    }
    assert await page.is_visible("#data-quality")
    line = await page.text_content("#data-quality") or ""
    assert line.startswith("2 logged requests are in no figure: 1 with a negative token count; 1 dated in the future")
    # every request the coverage figure counts as priced, but one on estimated usage and one at standard
    # rates for lack of a tier rate: said beside the figure, never a bare "priced"
    pricing = summary["pricing"]
    assert (pricing["estimated_requests"], pricing["no_tier_rate_requests"]) == (1, 1)
    assert await page.is_visible("#pricing-caveats")
    caveats = await page.text_content("#pricing-caveats") or ""
    assert caveats.startswith("1 request with estimated usage: the gateway could not confirm its token counts")
    assert "1 request priced at standard rates: the price table has no rate for its service tier" in caveats
    assert "(openai/gpt-5-nano priority)" in caveats
    assert "Loading" not in (await page.text_content("#anomalies") or "")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)

    # The window selector works from the keyboard: arrow keys move between the radio buttons.
    await page.focus("#w-30d")
    await page.keyboard.press("ArrowRight")
    await page.wait_for_url("**/?window=90d")
    await watched.ready()
    assert await page.text_content("#total") == _money(_summary(base, "90d")["spend"])
    assert await page.locator("#trend-table tbody tr").count() == 90

    # A phone-sized window: one column, nothing wider than the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.wait_for_timeout(200)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.screenshot(path=ARTIFACTS / "dashboard-narrow.png", full_page=True)
    assert watched.errors == []


async def test_page_with_keys(servers: dict[str, str], watched: Watched) -> None:
    base, page = servers["keyed"], watched.page
    assert httpx.get(base + "/").status_code == 200  # the page and its files need no key
    assert httpx.get(base + "/static/app.js").status_code == 200
    assert httpx.get(base + "/v1/summary").status_code == 401

    await page.goto(base + "/")
    await page.wait_for_selector("body[data-state=key-needed]")
    assert await page.is_visible("#key-panel")
    assert await page.evaluate("document.activeElement.id") == "key-input"

    await page.fill("#key-input", "wrong")
    await page.press("#key-input", "Enter")
    await page.locator("#key-message", has_text="not accepted").wait_for()

    await page.fill("#key-input", KEY)
    await page.click("#key-form button")
    await watched.ready()
    assert not await page.is_visible("#key-panel")
    assert await page.text_content("#total") == _money(_summary(base, key=KEY)["spend"])
    assert watched.calls[-1].headers["authorization"] == f"Bearer {KEY}"

    # Kept in localStorage: a reload asks for nothing.
    await page.reload()
    await watched.ready()
    assert not await page.is_visible("#key-panel")
    assert await page.evaluate("localStorage.getItem('cost-api.key')") == KEY
    assert watched.errors == []


async def test_page_loads_every_module(servers: dict[str, str], watched: Watched) -> None:
    """The script is native ES modules: the browser loads every .js file under static/ (no module left
    unused, none missing), each as JavaScript, revalidated like the rest, and nothing reaches the console."""
    base, page = servers["open"], watched.page
    scripts: list[Any] = []
    page.on("response", lambda r: scripts.append(r) if r.url.endswith(".js") else None)
    await page.goto(base + "/")
    await watched.ready()

    on_disk = {"static/" + p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*.js")}
    on_disk -= {"static/schema.js", "static/vendor/swagger-ui/swagger-ui-bundle.js"}  # /schema's, not the page's
    assert {"static/app.js", "static/js/data-quality.js", "static/vendor/uplot/uPlot.iife.min.js"} <= on_disk
    assert {r.url.removeprefix(base + "/") for r in scripts} == on_disk
    for response in scripts:
        headers = await response.all_headers()
        assert response.status == 200, response.url
        assert headers["content-type"].split(";")[0] == "text/javascript", response.url
        assert headers["x-content-type-options"] == "nosniff", response.url
        assert headers["cache-control"] == "no-cache", response.url
    assert watched.errors == []


def test_script_modules_stay_small() -> None:
    """Our script is small modules along the page's seams (issue 15), each read in one sitting."""
    ours = [p for p in STATIC.rglob("*.js") if "vendor" not in p.relative_to(STATIC).parts]
    assert len(ours) > 1
    lines = {p.relative_to(STATIC).as_posix(): len(p.read_text().splitlines()) for p in ours}
    assert max(lines.values()) <= 200, lines


@pytest.mark.parametrize(
    "path",
    [
        "/static/../routes/page.py",
        "/static/js/../../routes/page.py",
        "/static/%2e%2e/routes/page.py",
        "/static/js/%2e%2e/%2e%2e/routes/page.py",
        "/static/js/..%2f..%2froutes/page.py",
        "/static/js/%2e%2e%2f%2e%2e%2f__init__.py",
    ],
)
def test_static_files_stay_in_their_directory(servers: dict[str, str], path: str) -> None:
    """A path climbing out of static/ (as sent, not normalised by a client) reaches no file of the package."""
    host, port = servers["open"].removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        body = answer.read()
    finally:
        conn.close()
    assert answer.status in (400, 404), (answer.status, body[:200])
    assert b"import" not in body


def test_static_files_revalidate_with_their_etag(servers: dict[str, str]) -> None:
    """The files are kept but revalidated (`no-cache`): a browser whose copy is current gets a 304 with no
    body; a changed or unknown tag gets the file. The tag is the content's, the same on every start."""
    url = servers["open"] + "/static/js/format.js"
    first = httpx.get(url)
    content = (STATIC / "js" / "format.js").read_bytes()
    assert first.status_code == 200 and first.content == content
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["content-type"].startswith("text/javascript")
    assert first.headers["x-content-type-options"] == "nosniff"
    etag = first.headers["etag"]
    assert etag == '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    for sent in (etag, f'"other", W/{etag}', "*"):
        again = httpx.get(url, headers={"If-None-Match": sent})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag), sent
    assert httpx.get(url, headers={"If-None-Match": '"other"'}).content == content
    head = httpx.head(url)
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", str(len(content)))
    assert head.headers["etag"] == etag
    assert httpx.get(servers["open"] + "/static/js/nothing.js").status_code == 404


def test_wheel_ships_the_page(tmp_path: Path) -> None:
    """The page, its script and styles and the vendored chart library (with its licence) are package data."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path, ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("cost_api-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "cost_api" / "web" / "static").rglob("*") if p.is_file()}
    assert {
        "cost_api/web/static/index.html",
        "cost_api/web/static/vendor/uplot/LICENSE",
        "cost_api/web/static/vendor/swagger-ui/LICENSE",
    } <= shipped <= names


async def _shoot(url: str, out: Path, width: int, height: int) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": width, "height": height})
        await page.goto(url)
        await page.wait_for_selector("body[data-state=ready]", timeout=30_000)
        await page.screenshot(path=out, full_page=True)
        await browser.close()


def main(argv: Iterator[str] | list[str]) -> None:
    """`python -m tests.test_page URL OUT.png [WIDTH HEIGHT]`: screenshot a running server's page."""
    url, out, *size = argv
    width, height = (int(size[0]), int(size[1])) if size else (1280, 1600)
    asyncio.run(_shoot(url, Path(out), width, height))


if __name__ == "__main__":
    main(sys.argv[1:])
