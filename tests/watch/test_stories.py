"""The alert targets on both generated logs, as bench/alerts.py generates and replays them, on
SQLite and Postgres, with the default settings: every story found, each as exactly one incident; at
most one false incident a week; every leak sent by the live engine within 15 minutes of its start; the
second log's weekend lull quiet. The demo log: the leaked token ($1.67/h), the surging endpoint, the
retry storm; the second log (cost_api/tools/demo/stories.py): three leaks, a creep, a pricing-change
day, a lull."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bench.alerts import DEMO_DAYS, NOW, WINDOW, Truth, belongs, demo_truth, kept, live_delay, second_truth
from cost_api.tools.demo import stories
from cost_api.watch.anomalies import replay
from cost_api.web.service import Service
from cost_api.windows import Range

from ..api.test_anomalies import generated

LOGS = {  # the bench's generations: a story's figures depend on the log's length (its random draws do)
    "demo": ({"days": DEMO_DAYS}, demo_truth(NOW)),
    "second": (
        {"days": stories.DAYS, "requests_per_day": stories.REQUESTS_PER_DAY, "seed": stories.SEED,
         "make": stories.StoriesLog},
        second_truth(NOW),
    ),
}  # fmt: skip


@pytest.fixture(scope="module", params=[(log, db) for log in LOGS for db in ("sqlite", "postgres")], ids=str)
async def story_log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Service, list[Truth]]]:
    """A generated log, served with the default settings, and its stories."""
    log, db = request.param
    demo, truth = LOGS[log]
    async with generated(request, tmp_path_factory, {}, db, **demo) as service:
        yield service, truth


async def test_every_story_is_one_incident_and_few_are_false(story_log: tuple[Service, list[Truth]]) -> None:
    service, truth = story_log
    min_impact = service.settings.alerts.min_impact
    found = await kept(service, await replay(service, Range(NOW - WINDOW, NOW), now=NOW), min_impact, NOW)
    per_story = {story.name: [i for i in found if belongs(i, story, NOW)] for story in truth if story.keys}
    assert {name: len(mine) for name, mine in per_story.items()} == dict.fromkeys(per_story, 1)
    for story in (s for s in truth if s.live):  # each leak's incident is named by its token
        [incident] = per_story[story.name]
        assert f"{incident.root.dimension}:{incident.root.key}" in story.keys
    claimed = {i.id for mine in per_story.values() for i in mine}
    false = [i for i in found if i.id not in claimed]
    assert len(false) <= WINDOW.days / 7  # at most one a week
    for lull in (s for s in truth if not s.keys):
        assert [i for i in false if lull.start <= i.started_at < lull.end + timedelta(days=1)] == []


async def test_every_leak_is_sent_within_15_minutes(story_log: tuple[Service, list[Truth]]) -> None:
    service, truth = story_log
    for leak in (s for s in truth if s.live):
        delay = await live_delay(service, leak, service.settings.alerts.min_impact)
        assert delay is not None and delay <= timedelta(minutes=15), leak.name
