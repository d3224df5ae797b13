"""The page's controls in a real browser (tests/api/page_harness.py): each one changes the address and
the figures, and every figure shown equals the API's answer to the query the page made, fetched again
here. The drill-down goes from a provider to a token to its rows; the export saves the API's own CSV."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import httpx

from .page_harness import ZONE, Watched, get_json, last_call, money, with_params

BERLIN = ZoneInfo(ZONE)


def _ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


async def _total_is_the_apis(watched: Watched) -> dict[str, Any]:
    summary = get_json(last_call(watched, "/v1/summary"))
    assert await watched.page.text_content("#total") == money(summary["spend"])
    return summary


async def test_range_presets_custom_and_zone(servers: dict[str, str], watched: Watched) -> None:
    page = watched.page
    await page.goto(servers["open"] + "/")
    await watched.ready()
    shown = {"7d": 7, "24h": 24}
    for preset in ("7d", "month", "mtd", "last-month", "24h"):
        await page.click(f"label[for=r-{preset}]")
        assert (await watched.settled(f"range={preset}"))["range"] == [preset]
        summary = await _total_is_the_apis(watched)
        if preset in shown:
            assert await page.locator("#trend-table tbody tr").count() == shown[preset]
        if preset == "last-month":
            start = datetime.fromisoformat(summary["range"]["from"]).astimezone(BERLIN)
            end = datetime.fromisoformat(summary["range"]["to"]).astimezone(BERLIN)
            assert (start.day, start.hour, end.day, end.hour) == (1, 0, 1, 0)
            assert end.month == (start.month % 12) + 1
        assert (await page.text_content("#headline-range")) == (await page.text_content("#providers-range"))

    # Custom: from/to as wall clock in the zone; a range ending before it starts is refused in place.
    today = datetime.now(BERLIN).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=10), today - timedelta(days=3)
    await page.click("label[for=r-custom]")
    await page.fill("#custom-from", end.strftime("%Y-%m-%dT%H:%M"))
    await page.fill("#custom-to", start.strftime("%Y-%m-%dT%H:%M"))
    await page.press("#custom-to", "Enter")
    assert await page.text_content("#custom-error") == "From must be before To."
    assert "range=custom" not in page.url
    await page.fill("#custom-from", start.strftime("%Y-%m-%dT%H:%M"))
    await page.fill("#custom-to", end.strftime("%Y-%m-%dT%H:%M"))
    await page.click("#custom-apply")
    query = await watched.settled("range=custom", "from=", "to=")
    assert (query["from"], query["to"]) == ([start.strftime("%Y-%m-%dT%H:%M")], [end.strftime("%Y-%m-%dT%H:%M")])
    called = parse_qs(urlsplit(last_call(watched, "/v1/summary")).query)
    assert (called["from"], called["to"], called["tz"]) == ([_ms(start)], [_ms(end)], [ZONE])
    await _total_is_the_apis(watched)
    assert await page.locator("#trend-table tbody tr").count() == 7

    # The zone: the same wall-clock range, now in UTC.
    await page.select_option("#tz-select", "UTC")
    assert (await watched.settled("tz=UTC"))["tz"] == ["UTC"]
    called = parse_qs(urlsplit(last_call(watched, "/v1/summary")).query)
    utc_start = start.replace(tzinfo=ZoneInfo("UTC"))
    assert (called["from"], called["tz"]) == ([_ms(utc_start)], ["UTC"])
    await _total_is_the_apis(watched)

    # Back: the view before, from the address.
    await page.go_back()
    await watched.settled("range=custom")
    assert "tz=" not in page.url
    assert parse_qs(urlsplit(last_call(watched, "/v1/summary")).query)["tz"] == [ZONE]
    assert watched.errors == []


async def test_split_and_a_bar_filter_the_page(servers: dict[str, str], watched: Watched) -> None:
    page = watched.page
    await page.goto(servers["open"] + "/?range=7d")
    await watched.ready()
    await page.select_option("#split-select", "model")
    await watched.settled("split=model")
    trend = get_json(last_call(watched, "/v1/trend"))
    assert trend["group_by"] == "model"
    legend = await page.text_content("#trend-chart .u-legend") or ""
    assert "anthropic/claude-3-5-sonnet" in legend and "openai/gpt-4o-mini" in legend

    # A click on the bottom of the middle bar: the largest series (stacked first) filters the page.
    await page.select_option("#split-select", "provider")
    await watched.settled()
    await page.wait_for_function("() => !location.search.includes('split=')")
    await watched.ready()
    over = await page.locator("#trend-chart .u-over").bounding_box()
    assert over is not None
    await page.mouse.move(over["x"] + over["width"] / 2, over["y"] + over["height"] - 2)
    await page.wait_for_function("() => !document.querySelector('#trend-chart .u-legend').textContent.includes('all')")
    await page.mouse.down()
    await page.mouse.up()
    query = await watched.settled("provider=anthropic")
    assert query["provider"] == ["anthropic"]
    await _total_is_the_apis(watched)

    # A day of the chart's table: the view narrows to that local day, by the hour.
    day = get_json(last_call(watched, "/v1/trend"))["series"][0]["points"][2]
    start = datetime.fromisoformat(day["t"]).astimezone(BERLIN)
    await page.click("#trend-card-table summary")
    await page.locator("#trend-table tbody button.key").nth(2).click()
    query = await watched.settled("range=custom")
    assert (query["from"], query["to"]) == (
        [start.strftime("%Y-%m-%dT%H:%M")],
        [(start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")],
    )
    assert query["provider"] == ["anthropic"]
    assert await page.locator("#trend-table tbody tr").count() == 24
    await _total_is_the_apis(watched)

    # A budget's endpoint filters the page too.
    await page.locator("#budgets button.key", has_text="/chat").click()
    assert (await watched.settled("endpoint=%2Fchat"))["endpoint"] == ["/chat"]
    assert watched.errors == []


async def test_drill_down_from_provider_to_token_to_its_rows(servers: dict[str, str], watched: Watched) -> None:
    page = watched.page
    await page.goto(servers["open"] + "/")
    await watched.ready()
    assert not await page.is_visible("#rows-card")

    await page.locator("#providers tbody tr", has_text="anthropic").click()
    await watched.settled("provider=anthropic")
    assert (await page.text_content("#chips") or "").startswith("Provider: anthropic")
    await _total_is_the_apis(watched)
    assert parse_qs(urlsplit(last_call(watched, "/v1/summary")).query)["provider"] == ["anthropic"]
    tokens = get_json(last_call(watched, "/v1/spend", "group_by=token"))
    assert [i["token"] for i in tokens["items"]] == ["pg_live_xy7…"]  # only token A called anthropic

    await page.locator("#tokens tbody button.key").first.press("Enter")  # the key's button, from the keyboard
    query = await watched.settled("token=" + quote("pg_live_xy7…"))
    assert (query["provider"], query["token"]) == (["anthropic"], ["pg_live_xy7…"])
    await page.locator("#rows tbody tr[data-id]").first.wait_for()
    call = last_call(watched, "/v1/requests")
    rows = get_json(call)
    assert rows["range"] == get_json(last_call(watched, "/v1/summary"))["range"]
    assert parse_qs(urlsplit(call).query)["token"] == ["pg_live_xy7…"]
    await _rows_are_the_apis(page, rows["items"], 0)
    assert rows["next"]  # 60 days of token A: more than one page in 30 days

    await page.click("#rows-more")
    await page.wait_for_function(
        "(n) => document.querySelectorAll('#rows tbody tr[data-id]').length > n", arg=len(rows["items"])
    )
    more = get_json(with_params(call, cursor=rows["next"]))
    await _rows_are_the_apis(page, more["items"], len(rows["items"]))

    # The token's chip removed from the keyboard: the rows go, the provider stays.
    await page.locator(".chip-remove[data-kind=token]").press("Enter")
    query = await watched.settled()
    await page.wait_for_function("() => !location.search.includes('token=')")
    await watched.ready()
    assert not await page.is_visible("#rows-card")
    assert parse_qs(urlsplit(page.url).query)["provider"] == ["anthropic"]
    assert watched.errors == []


async def _rows_are_the_apis(page: Any, items: list[dict[str, Any]], first: int) -> None:
    """The rows shown from position `first` are the API's `items`, each with its cost."""
    rows = page.locator("#rows tbody tr[data-id]")
    assert await rows.count() == first + len(items)
    for n, item in enumerate(items):
        row = rows.nth(first + n)
        assert await row.get_attribute("data-id") == str(item["id"])
        cost = await row.locator("td.cost").text_content() or ""
        if item["excluded"]:
            assert cost == "in no figure: " + item["excluded"].replace("_", " ")
        elif item["cache_hit"]:
            assert cost == f"{money(item['cost'])} cache hit, saved {money(item['saved'])}"
        else:
            assert cost == money(item["cost"])


async def test_add_a_filter_export_csv_and_copy_the_link(
    servers: dict[str, str], watched: Watched, browser: Any
) -> None:
    base, page = servers["open"], watched.page
    await page.goto(base + "/?range=7d")
    await watched.ready()
    await page.select_option("#add-kind", "endpoint")
    await page.fill("#add-value", "/chat")
    await page.press("#add-value", "Enter")
    await watched.settled("endpoint=%2Fchat")
    await _total_is_the_apis(watched)
    assert await page.is_visible("#rows-card")  # an endpoint opens its rows too

    # Each table's CSV is the API's own for the same query.
    for name, route, has in (("providers", "/v1/spend", "group_by=provider"), ("rows", "/v1/requests", "")):
        async with page.expect_download() as event:
            await page.click(f"[data-csv={name}]")
        download = await event.value
        with open(await download.path(), "rb") as saved:
            body = saved.read()
        expected = httpx.get(with_params(last_call(watched, route, has), format="csv", limit=1000))
        assert body == expected.content and body.startswith(b"\xef\xbb\xbf")
        assert download.suggested_filename.endswith(".csv")
        assert b"openai" in body and b"anthropic" not in body  # /chat's: the filter is in the export

    # Copy link: the view's address with its zone; opened in a browser elsewhere, the same view.
    await watched.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    await page.click("#copy-link")
    await page.locator("#copy-status", has_text="Link copied").wait_for()
    link = await page.evaluate("navigator.clipboard.readText()")
    assert parse_qs(urlsplit(link).query) == {"range": ["7d"], "tz": [ZONE], "endpoint": ["/chat"]}
    summary = get_json(last_call(watched, "/v1/summary"))
    elsewhere = Watched(*(await _context_in(browser, "America/New_York")))
    try:
        await elsewhere.page.goto(link)
        await elsewhere.ready()
        called = parse_qs(urlsplit(last_call(elsewhere, "/v1/summary")).query)
        assert (called["tz"], called["endpoint"]) == ([ZONE], ["/chat"])
        again = await _total_is_the_apis(elsewhere)
        assert again["range"]["from"] == summary["range"]["from"]  # the same local midnight, in Berlin
    finally:
        await elsewhere.context.close()
    assert watched.errors == [] and elsewhere.errors == []


async def _context_in(browser: Any, zone: str) -> tuple[Any, Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 1600}, timezone_id=zone)
    return context, await context.new_page()


async def test_an_address_the_page_cannot_read_falls_back_to_the_defaults(
    servers: dict[str, str], watched: Watched
) -> None:
    """A reversed custom range, an unknown zone, range or split: the default view, not a broken one."""
    page = watched.page
    await page.goto(servers["open"] + "/?range=custom&from=2026-11-08T00:00&to=2026-11-01T00:00&tz=Mars%2FOlympus")
    await watched.ready()
    assert await page.is_checked("#r-30d")
    called = parse_qs(urlsplit(last_call(watched, "/v1/summary")).query)
    assert called["tz"] == [ZONE] and "window" not in called
    start = datetime.fromtimestamp(int(called["from"][0]) / 1000, BERLIN)
    assert (start.hour, start.minute) == (0, 0)
    await _total_is_the_apis(watched)
    await page.goto(servers["open"] + "/?range=1y&split=colour")
    await watched.ready()
    assert await page.is_checked("#r-30d") and await page.input_value("#split-select") == "provider"
    assert watched.errors == []
