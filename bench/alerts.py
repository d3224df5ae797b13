"""The alert rules replayed over two generated logs against their stories, whose starts and ends are
known: the demo log (60 days, 5,000 requests a day: the leaked token, the surging endpoint, the retry
storm) and the second log (cost_api/tools/demo/stories.py: 35 days, 20,000 requests a day, another
seed: three leaks of $4, $15 and $60 an hour, a week-long creep, a pricing-change day, a weekend lull).

Over the last 14 days of each it prints per story: detected or not, the delay from its start to its
first incident's start (hours are judged whole: an incident starts at an hour's start), the live delay
(leaks: the first 5-minute tick after the start at which the live engine would fire, replaying the
last 3 hours as it does), and the incidents that hold one of its keys in its span (from an hour
before its start to a day after its end). The lull has no key: its incidents are those starting in
it or the day after that belong to no other story (its target: 0). The incidents that belong to no
story are false, counted per week. Several `--min-requests` and `--min-impact` values compare on one
generation.

    python -m bench.alerts                       # both logs, the default settings
    python -m bench.alerts --log second --min-impact 0 2 5 10
    python -m bench.alerts --min-requests 1 3 5 10 20 30 --min-impact 0 5
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cost_api.config import load_settings
from cost_api.tools.demo import stories as second
from cost_api.tools.demo.catalogue import AGENT_PROXY, LEAK_SINCE, LEAKED_TOKEN, STORM_ENDPOINT, STORM_SPAN, epoch_ms
from cost_api.tools.demo.generator import Params
from cost_api.tools.demo.run import run_demo
from cost_api.watch.anomalies import Episode, Watched, replay
from cost_api.watch.incidents import Incident, coarse_alone, grouped
from cost_api.web.service import build_service
from cost_api.windows import Range, from_ms

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday
DEMO_DAYS = 60
WINDOW = timedelta(days=14)
LIVE_TICK, LIVE_FOR, LIVE_LOOKBACK = timedelta(minutes=5), timedelta(hours=2), timedelta(hours=3)
LIVE_TARGET = timedelta(minutes=15)


@dataclass(frozen=True)
class Truth:
    """A story as the bench checks it: its span, its keys (`dimension:key`; none: nobody should be
    alerted), and whether its live delay is measured."""

    name: str
    start: datetime
    end: datetime
    keys: frozenset[str]
    live: bool = False


def demo_truth(now: datetime) -> list[Truth]:
    monday = datetime.combine((now - timedelta(days=now.weekday())).date(), datetime.min.time(), tzinfo=UTC)
    leak = now - timedelta(milliseconds=LEAK_SINCE)
    return [
        Truth("leaked token", leak, now, frozenset({f"token:{LEAKED_TOKEN[1]}…"}), live=True),
        Truth("surging endpoint", monday, now, frozenset({f"endpoint:{AGENT_PROXY}"})),
        Truth("retry storm", now - timedelta(milliseconds=STORM_SPAN), now, frozenset({f"endpoint:{STORM_ENDPOINT}"})),
    ]


def second_truth(now: datetime) -> list[Truth]:
    log = second.StoriesLog(Params(epoch_ms(now), second.SEED, second.DAYS, second.REQUESTS_PER_DAY, "UTC"))
    spans = [(story, *(from_ms(ms) for ms in log.span(story))) for story in second.STORIES]
    return [Truth(s.name, a, b, frozenset(s.keys), live=s.token is not None) for s, a, b in spans]


def keys_of(i: Incident) -> set[str]:
    return {f"{e.dimension}:{e.key}" for e in i.episodes}


def belongs(i: Incident, story: Truth, now: datetime) -> bool:
    """Whether incident `i` shows `story`: one of its keys, within its span (an hour before, a day after)."""
    in_span = i.started_at <= story.end + timedelta(days=1) and (i.ended_at or now) >= story.start - timedelta(hours=1)
    return in_span and bool(keys_of(i) & story.keys)


async def kept(service: Watched, found: list[Episode], min_impact: float, now: datetime) -> list[Incident]:
    """The incidents as the API and the engine keep them, at `min_impact`."""
    return await grouped(service, found, min_impact, now, coarse=coarse_alone(service.settings.alerts.dimensions))


async def live_delay(service: Watched, story: Truth, min_impact: float) -> timedelta | None:
    """The first tick after the story's start at which the live engine would send an incident of it."""
    t = story.start
    while t < story.start + LIVE_FOR:
        t += LIVE_TICK
        found = await kept(service, await replay(service, Range(t - LIVE_LOOKBACK, t), now=t), min_impact, t)
        if any(i.open and keys_of(i) & story.keys for i in found):
            return t - story.start
    return None


def minutes(delta: timedelta | None) -> str:
    return "-" if delta is None else f"{delta / timedelta(minutes=1):+.0f} min"


async def report(service: Watched, found: list[Incident], truth: list[Truth], min_impact: float, now: datetime) -> None:
    claimed: set[str] = set()
    per_story: list[int] = []
    lives: list[timedelta | None] = []
    for story in (s for s in truth if s.keys):
        mine = [i for i in found if belongs(i, story, now)]
        claimed |= {i.id for i in mine}
        per_story.append(len(mine))
        first = min((i.started_at - story.start for i in mine), default=None)
        live = await live_delay(service, story, min_impact) if story.live else None
        lives += [live] if story.live else []
        print(
            f"  {story.name:20} detected={'yes' if mine else 'no':3} delay={minutes(first):>10}"
            f" live={minutes(live) if story.live else 'n/a':>8} incidents={len(mine)}"
        )
        for i in mine:
            print(
                f"      {i.root.rule} {i.root.dimension} {i.root.key} from {i.started_at:%m-%d %H:%M}: ${i.impact:,.2f}"
            )
    for story in (s for s in truth if not s.keys):
        quiet = [
            i for i in found if i.id not in claimed and story.start <= i.started_at < story.end + timedelta(days=1)
        ]
        print(f"  {story.name:20} (should alert nobody) incidents={len(quiet)}")
        for i in quiet:
            print(
                f"      {i.root.rule} {i.root.dimension} {i.root.key} from {i.started_at:%m-%d %H:%M}: ${i.impact:,.2f}"
            )
    false = [i for i in found if i.id not in claimed]
    weekly = len(false) / (WINDOW.days / 7)
    print(f"  false incidents: {len(false)} in {WINDOW.days} days = {weekly:.1f}/week")
    for i in false[:6]:
        print(
            f"      e.g. {i.root.rule} {i.root.dimension} {i.root.key} at {i.started_at:%m-%d %H:%M}: ${i.impact:,.2f}"
        )
    targets = {  # issue 21's, with the defaults
        "every story detected": all(per_story),
        "each story exactly one incident": all(n == 1 for n in per_story),
        "every leak sent live within 15 minutes": all(d is not None and d <= LIVE_TARGET for d in lives),
        "at most one false incident a week": weekly <= 1.0,
    }
    for target, held in targets.items():
        print(f"  target: {target}: {'met' if held else 'MISSED'}")


async def bench(
    url: str, truth: list[Truth], thresholds: list[float], floors: list[int], now: datetime, alerts: dict[str, Any]
) -> None:
    for floor in floors:
        overrides = {"database_url": url, "alerts": {**alerts, "min_requests": floor}}
        service = build_service(load_settings(environ={}, overrides=overrides))
        try:
            await service.aggregator.warm()
            found = await replay(service, Range(now - WINDOW, now), now=now)
            print(f"min_requests {floor}: {len(found)} episodes in {WINDOW.days} days")
            for threshold in thresholds:
                incidents = await kept(service, found, threshold, now)
                print(f"min_requests {floor}, min_impact ${threshold:g}: {len(incidents)} incidents")
                await report(service, incidents, truth, threshold, now)
        finally:
            await service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", choices=["demo", "second", "both"], default="both")
    parser.add_argument("--min-impact", type=float, nargs="+", default=[5.0])
    parser.add_argument("--min-requests", type=int, nargs="+", default=[10])
    parser.add_argument("--dimensions", nargs="+", help="alerts.dimensions (default: the setting's)")
    args = parser.parse_args()
    alerts = {"dimensions": args.dimensions} if args.dimensions else {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.log in ("demo", "both"):
            db = f"sqlite:///{Path(tmp) / 'demo.db'}"
            run_demo(db, days=DEMO_DAYS, now=NOW, progress=False)
            print(f"== the demo log: {DEMO_DAYS} days, 5,000 requests a day")
            asyncio.run(bench(db, demo_truth(NOW), args.min_impact, args.min_requests, NOW, alerts))
        if args.log in ("second", "both"):
            db = f"sqlite:///{Path(tmp) / 'second.db'}"
            days, per_day = second.DAYS, second.REQUESTS_PER_DAY
            run_demo(db, days=days, requests_per_day=per_day, seed=second.SEED, now=NOW, progress=False,
                     make=second.StoriesLog)  # fmt: skip
            print(f"== the second log: {days} days, {per_day:,} requests a day")
            asyncio.run(bench(db, second_truth(NOW), args.min_impact, args.min_requests, NOW, alerts))


if __name__ == "__main__":
    main()
