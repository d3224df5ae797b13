"""The alert rules replayed over the demo log, against its three stories with known starts: the leaked
token (from now − 10 days), the surging endpoint (from this week's Monday), the retry storm (the last
20 minutes). Prints the raw episodes and the incidents (watch/incidents.py) of the last 14 days, per
story: detected or not, the delay from its start to its incident's start, the incidents that name one
of its keys; and the incidents that belong to no story (false), per week. With `--min-impact` several
values of `alerts.min_impact` are compared on one replay.

    python -m bench.alerts                       # the demo log: 60 days, 5,000 requests a day
    python -m bench.alerts --min-impact 0 1 2 5 10 20
    python -m bench.alerts --min-requests 1 2 3 5 10 --min-impact 0 5
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cost_api.config import load_settings
from cost_api.tools.demo.catalogue import AGENT_PROXY, LEAK_SINCE, LEAKED_TOKEN, STORM_ENDPOINT, STORM_SPAN
from cost_api.tools.demo.run import run_demo
from cost_api.watch.anomalies import replay
from cost_api.watch.incidents import Incident, incidents
from cost_api.web.service import build_service
from cost_api.windows import Range

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday
WINDOW = timedelta(days=14)


def stories(now: datetime) -> dict[str, tuple[datetime, set[tuple[str, str]]]]:
    """Each story: its start and the keys it shows on."""
    monday = datetime.combine((now - timedelta(days=now.weekday())).date(), datetime.min.time(), tzinfo=UTC)
    leak = (now - timedelta(milliseconds=LEAK_SINCE), {("token", f"{LEAKED_TOKEN[1]}…")})
    return {
        "leaked token": leak,
        "surging endpoint": (monday, {("endpoint", AGENT_PROXY)}),
        "retry storm": (now - timedelta(milliseconds=STORM_SPAN), {("endpoint", STORM_ENDPOINT)}),
    }


def report(found: list[Incident], now: datetime) -> None:
    claimed: set[str] = set()
    for name, (start, keys) in stories(now).items():
        mine = [i for i in found if keys & {(e.dimension, e.key) for e in i.episodes}]
        claimed |= {i.id for i in mine}
        first = min((i.started_at for i in mine), default=None)
        delay = "-" if first is None else f"{(first - start) / timedelta(minutes=1):+.0f} min"
        for i in mine:
            print(
                f"    {i.root.rule} {i.root.dimension} {i.root.key} from {i.started_at:%m-%d %H:%M}: ${i.impact:,.2f}"
            )
        print(f"  {name:18} detected={'yes' if mine else 'no':3} delay={delay:>10} incidents={len(mine)}")
    false = [i for i in found if i.id not in claimed]
    print(f"  false incidents: {len(false)} in {WINDOW.days} days = {len(false) / (WINDOW.days / 7):.1f}/week")
    for i in false[:5]:
        root = i.root
        print(f"    e.g. {root.rule} {root.dimension} {root.key} at {i.started_at:%m-%d %H:%M}: ${i.impact:,.2f}")


async def main(url: str, thresholds: list[float], floors: list[int]) -> None:
    for floor in floors:
        overrides = {"database_url": url, "alerts": {"min_requests": floor}}
        service = build_service(load_settings(environ={}, overrides=overrides))
        try:
            await service.aggregator.warm()
            found = await replay(service, Range(NOW - WINDOW, NOW), now=NOW)
        finally:
            await service.close()
        print(f"min_requests {floor}: episodes in {WINDOW.days} days: {len(found)}")
        for threshold in thresholds:
            grouped = incidents(found, threshold)
            print(f"min_requests {floor}, min_impact ${threshold:g}: {len(grouped)} incidents")
            report(grouped, NOW)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-impact", type=float, nargs="+", default=[5.0])
    parser.add_argument("--min-requests", type=int, nargs="+", default=[3])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'demo.db'}"
        run_demo(db, days=60, now=NOW, progress=False)
        asyncio.run(main(db, args.min_impact, args.min_requests))
