"""The alert targets on the second generated log (cost_api/tools/demo/stories.py, as bench/alerts.py
replays it, on fewer days), on SQLite and Postgres: every story found, each as exactly one incident,
the large leak sent within 15 minutes of its start by the live engine, the weekend lull quiet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bench.alerts import NOW, WINDOW, belongs, grouped, live_delay, second_truth
from cost_api.tools.demo import stories
from cost_api.watch.anomalies import replay
from cost_api.web.service import Service
from cost_api.windows import Range

from ..api.test_anomalies import generated

DAYS = 22  # the first story (the creep) begins 13.5 days before NOW: 8 days of history before it


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def second_log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    """The second log over DAYS days, served with the default settings."""
    async with generated(
        request, tmp_path_factory, {}, days=DAYS, requests_per_day=stories.REQUESTS_PER_DAY, seed=stories.SEED,
        make=stories.StoriesLog,
    ) as service:  # fmt: skip
        yield service


async def test_every_story_is_one_incident_and_the_lull_alerts_nobody(second_log: Service) -> None:
    min_impact = second_log.settings.alerts.min_impact
    found = grouped(second_log, await replay(second_log, Range(NOW - WINDOW, NOW), now=NOW), min_impact)
    truth = second_truth(NOW)
    per_story = {story.name: [i for i in found if belongs(i, story, NOW)] for story in truth if story.keys}
    assert {name: len(mine) for name, mine in per_story.items()} == {
        "leak-small": 1, "creep": 1, "leak-medium": 1, "pricing-change day": 1, "leak-large": 1,
    }  # fmt: skip
    # each leak's incident is named by its token
    for story in (s for s in truth if s.live):
        [incident] = per_story[story.name]
        assert f"{incident.root.dimension}:{incident.root.key}" in story.keys
    [lull] = [s for s in truth if not s.keys]
    claimed = {i.id for mine in per_story.values() for i in mine}
    assert [i for i in found if i.id not in claimed and lull.start <= i.started_at < lull.end + timedelta(days=1)] == []


async def test_the_large_leak_is_sent_within_15_minutes(second_log: Service) -> None:
    [large] = [s for s in second_truth(NOW) if s.name == "leak-large"]
    delay = await live_delay(second_log, large, second_log.settings.alerts.min_impact)
    assert delay is not None and delay <= timedelta(minutes=15)
