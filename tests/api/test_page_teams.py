"""Teams on the page in a real browser (tests/api/page_harness.py): token A carries `team: search`,
token B and the anonymous rows none. The selector adds a `tag=team:<value>` chip kept in the address
and sent to every call; the "By team" card is the API's `/v1/spend?group_by=tag:team` for the same
range; a team row, a chart split by team and a tag budget each filter the page by their team."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from .page_harness import TEAM_A, Watched, get_json, last_call, money

UNTAGGED = "(untagged)"


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def _teams_table(watched: Watched) -> list[tuple[str, str]]:
    rows = watched.page.locator("#teams tbody tr")
    return [
        (
            (await rows.nth(i).locator("th").text_content() or "").strip(),
            await rows.nth(i).locator("td").first.text_content() or "",
        )
        for i in range(await rows.count())
    ]


async def _total_is_the_apis(watched: Watched, tag: str | None) -> dict[str, Any]:
    url = last_call(watched, "/v1/summary")
    assert _query(url).get("tag") == ([tag] if tag else None)
    summary = get_json(url)
    assert await watched.page.text_content("#total") == money(summary["spend"])
    return summary


async def test_team_selector_and_by_team_card(servers: dict[str, str], watched: Watched) -> None:
    page = watched.page
    await page.goto(servers["open"] + "/")
    await watched.ready()
    assert await page.is_visible("#team-pick") and await page.is_visible("#teams-card")
    options = await page.locator("#team-select option").all_text_contents()
    assert sorted(options[1:]) == sorted([TEAM_A, UNTAGGED])

    # The by-team card is the API's answer to the same query, and its rows add up to the headline.
    url = last_call(watched, "/v1/spend", "group_by=tag%3Ateam")
    answer = get_json(url)
    assert [(i["tag"], money(i["spend"])) for i in answer["items"]] == await _teams_table(watched)
    assert sorted(i["tag"] for i in answer["items"]) == sorted([TEAM_A, UNTAGGED])
    everyone = await _total_is_the_apis(watched, None)
    assert round(sum(i["spend"] for i in answer["items"]), 6) == round(everyone["spend"], 6)

    # Choosing a team: a chip, the address, and every call filtered by it; the figures are the team's.
    await page.select_option("#team-select", TEAM_A)
    assert (await watched.settled("tag=team%3Asearch"))["tag"] == [f"team:{TEAM_A}"]
    assert await page.locator(".chip[data-kind=tag]").count() == 1
    team = await _total_is_the_apis(watched, f"team:{TEAM_A}")
    assert 0 < team["spend"] < everyone["spend"]
    for route in ("/v1/spend", "/v1/trend", "/v1/savings", "/v1/live"):
        assert _query(last_call(watched, route))["tag"] == [f"team:{TEAM_A}"], route
    by_team = get_json(last_call(watched, "/v1/spend", "group_by=tag%3Ateam"))
    assert [(i["tag"], money(i["spend"])) for i in by_team["items"]] == await _teams_table(watched)
    assert [i["tag"] for i in by_team["items"]] == [TEAM_A]

    # Back to all, then a click on the untagged row filters by it.
    await page.go_back()
    await watched.ready()
    assert "tag=" not in page.url
    await page.locator("#teams button.key", has_text=UNTAGGED).click()
    await watched.settled("tag=team%3A%28untagged%29")
    untagged = await _total_is_the_apis(watched, f"team:{UNTAGGED}")
    assert round(untagged["spend"] + team["spend"], 6) == round(everyone["spend"], 6)
    assert watched.errors == []


async def test_split_by_team_and_tag_budget(servers: dict[str, str], watched: Watched) -> None:
    page = watched.page
    await page.goto(servers["open"] + "/")
    await watched.ready()
    await page.select_option("#split-select", "team")
    await watched.settled("split=team")
    trend = get_json(last_call(watched, "/v1/trend", "group_by=tag%3Ateam"))
    assert {s["key"] for s in trend["series"]} == {TEAM_A, UNTAGGED}
    assert await page.text_content("#trend-what") == "Daily spend by team"

    # The tag budget's subject is a button that filters the page by its team.
    await page.locator("#budgets button.key", has_text=f"tag team:{TEAM_A}").click()
    assert (await watched.settled("tag=team%3Asearch", "split=team"))["tag"] == [f"team:{TEAM_A}"]
    await _total_is_the_apis(watched, f"team:{TEAM_A}")
    trend = get_json(last_call(watched, "/v1/trend", "tag=team%3Asearch"))
    assert [s["key"] for s in trend["series"]] == [TEAM_A]
    assert watched.errors == []
