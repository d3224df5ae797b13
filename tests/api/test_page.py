"""The dashboard page in a real browser (tests/api/page_harness.py): the figures against the API's answers
to the same queries, the key form, the modules and static files, dark mode and a phone's width.
The controls, the drill-down and the export: test_page_controls.py; /schema offline: test_page_schema.py."""

from __future__ import annotations

import hashlib
import http.client
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from .page_harness import (
    ARTIFACTS,
    KEY,
    ROOT,
    STATIC,
    TOKEN_A,
    ZONE,
    Watched,
    get_json,
    last_call,
    money,
    with_params,
)

# The schema viewer's files are /schema's, not the dashboard's.
VIEWER = {"schema.js", "vendor/swagger-ui/swagger-ui-bundle.js"}

INK = """() => {
  const canvas = document.querySelector('#trend-chart canvas');
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const back = getComputedStyle(document.querySelector('.card')).backgroundColor.match(/\\d+/g).map(Number);
  let ink = 0;
  for (let i = 0; i < data.length; i += 4) {
    const far = Math.abs(data[i] - back[0]) + Math.abs(data[i + 1] - back[1]) + Math.abs(data[i + 2] - back[2]);
    if (data[i + 3] > 0 && far > 40) ink++;
  }
  return ink;
}"""


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def test_page_without_keys(servers: dict[str, str], watched: Watched) -> None:
    base, page = servers["open"], watched.page
    await page.goto(base + "/")
    await watched.ready()

    summary = get_json(last_call(watched, "/v1/summary"))
    assert await page.text_content("#total") == money(summary["spend"])
    assert summary["spend"] > 0
    # The default range: the last 30 local days in the browser's zone, today so far, one range for every card
    start = datetime.fromisoformat(summary["range"]["from"]).astimezone(ZoneInfo(ZONE))
    assert (start.hour, start.minute) == (0, 0)
    ranges = set()
    for route in ("/v1/summary", "/v1/trend", "/v1/spend", "/v1/savings", "/v1/anomalies"):
        for call in [c.url for c in watched.calls if urlsplit(c.url).path == route]:
            q = _query(call)
            assert q["tz"] == [ZONE], call
            ranges.add((q["from"][0], q["to"][0]))
    assert len(ranges) == 1, ranges

    # The trend drew: one canvas with bars on it, and the bars' data in the table, one row per local day.
    assert await page.evaluate(INK) > 2000
    assert await page.locator("#trend-table tbody tr").count() == 30
    legend = await page.text_content("#trend-chart .u-legend") or ""
    assert "anthropic" in legend and "openai" in legend and "saved by cache" in legend  # stacked by provider
    assert "projected" in legend and "by month end" in legend  # the month continued from /v1/forecast
    assert "projected to" in (await page.text_content("#trend-caption") or "")

    # The tables: the same range as the headline (the tokens no longer on a fixed 7 days), each labelled.
    tokens = get_json(last_call(watched, "/v1/spend", "group_by=token"))
    assert tokens["range"] == summary["range"]
    first = page.locator("#tokens tbody tr").first
    assert await first.locator("th").text_content() == "pg_live_xy7…" == tokens["items"][0]["token"]
    assert await first.locator("td").nth(0).text_content() == "customer-A"
    assert await first.locator("td").nth(1).text_content() == money(tokens["items"][0]["spend"])
    assert "tok_9b8c7d6…" in (await page.text_content("#tokens") or "")
    assert TOKEN_A[0] not in await page.content()
    label = await page.text_content("#tokens-range")
    assert label and label == await page.text_content("#headline-range") == await page.text_content("#trend-range")
    models = get_json(last_call(watched, "/v1/spend", "group_by=model"))
    priced_as = await page.locator("#models tbody .priced-as").all_text_contents()
    assert priced_as == [i["priced_as"] or "unpriced" for i in models["items"]]
    savings = get_json(last_call(watched, "/v1/savings"))
    hit_rates = await page.locator("#savings tbody td:nth-child(3)").all_text_contents()
    assert hit_rates == [
        f"{i['hit_rate_pct']:.1f}%" if i["hit_rate_pct"] is not None else "—" for i in savings["items"]
    ]

    assert "acme/llama-3-finetune-v7" in (await page.text_content("#unpriced") or "")
    budgets = await page.text_content("#budgets") or ""
    assert "/summarise-ticket" in budgets and ("ok" in budgets or "warning" in budgets or "exceeded" in budgets)
    assert "projected $" in budgets
    assert await page.text_content("#live-requests") == "2"
    assert (await page.text_content("#updated") or "").startswith("Updated ")
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

    # The range works from the keyboard: arrow keys move between the radio buttons.
    await page.focus("#r-30d")
    await page.keyboard.press("ArrowRight")
    await page.wait_for_url("**/?range=90d")
    await watched.ready()
    assert await page.text_content("#total") == money(get_json(last_call(watched, "/v1/summary"))["spend"])
    assert await page.locator("#trend-table tbody tr").count() == 90

    # A phone-sized window: one column, nothing wider than the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.wait_for_function("() => document.documentElement.scrollWidth <= 390")
    await page.screenshot(path=ARTIFACTS / "dashboard-narrow.png", full_page=True)
    assert watched.errors == []


async def test_page_dark_mode(servers: dict[str, str], watched: Watched) -> None:
    """With the system set to dark, the page is dark (text light on a dark card) and the chart follows;
    switching back to light redraws it in light colours."""
    page = watched.page
    await page.emulate_media(color_scheme="dark")
    await page.goto(servers["open"] + "/")
    await watched.ready()
    colours = (
        "() => [getComputedStyle(document.querySelector('.card')).backgroundColor, "
        "getComputedStyle(document.body).color]"
    )
    card, text = await page.evaluate(colours)
    assert card == "rgb(24, 31, 39)" and text == "rgb(230, 237, 243)"
    assert await page.evaluate(INK) > 2000  # the bars stand out from the dark card
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "dashboard-dark.png", full_page=True)
    await page.emulate_media(color_scheme="light")
    assert await page.evaluate(colours) == ["rgb(255, 255, 255)", "rgb(27, 31, 36)"]
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
    assert await page.text_content("#total") == money(get_json(last_call(watched, "/v1/summary"), key=KEY)["spend"])
    assert watched.calls[-1].headers["authorization"] == f"Bearer {KEY}"
    # the CSV export sends the key too: the download is the API's CSV for the key holder
    async with page.expect_download() as event:
        await page.click("[data-csv=endpoints]")
    with open(await (await event.value).path(), "rb") as saved:
        body = saved.read()
    url = with_params(last_call(watched, "/v1/spend", "group_by=endpoint"), format="csv", limit=1000)
    assert body == httpx.get(url, headers={"Authorization": f"Bearer {KEY}"}).content
    assert b"/summarise-ticket" in body

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
    on_disk -= {"static/" + name for name in VIEWER}
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
    """The page, its script and styles, the vendored chart library and the schema viewer (each with its
    licence) are package data."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path, ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("cost_api-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "cost_api" / "web" / "static").rglob("*") if p.is_file()}
    assert (
        {
            "cost_api/web/static/index.html",
            "cost_api/web/static/vendor/uplot/LICENSE",
            "cost_api/web/static/vendor/swagger-ui/LICENSE",
            "cost_api/web/static/vendor/swagger-ui/swagger-ui-bundle.js",
        }
        <= shipped
        <= names
    )
