"""The second generated log (`cost-api demo --stories alerts`, bench/alerts.py): the demo's traffic with
another seed and six other stories with known starts and ends, to measure the alert rules on:

1. `leak-small`: a new token calls claude-opus-4-1 at /support-reply for about $4 an hour, from the
   Friday 10 days before the week of `now` (14:20) on, never stopping.
2. a creep: /summarise-ticket's traffic grows evenly from 1× to 5× over a week, then stays there.
3. `leak-medium`: a new token, about $15 an hour at /research-agent, for 48 hours from a Sunday 03:40.
4. a pricing-change day: for one Tuesday /chat runs on claude-opus-4-1 (5× the price of its usual
   models), the same requests.
5. `leak-large`: a new token, about $60 an hour at /code-review, for 6 hours from a Friday 10:10.
6. a weekend lull: the Saturday and Sunday before `now` carry a fifth of their usual traffic (the
   rules watch rises: the lull, and the Monday back to normal, should alert nobody).

`STORIES` states each one's span (relative to the Monday 00:00 of `now`'s week, in `tz`) and keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cost_api.tools.demo.catalogue import DAY, ENDPOINT_INDEX, HOUR, MINUTE, Batch, Token
from cost_api.tools.demo.generator import LogGenerator, Params, uniform_arrivals

SEED = 7  # another seed than the demo's
REQUESTS_PER_DAY = 20_000  # enough traffic that the regular keys spend dollars an hour
DAYS = 35


@dataclass(frozen=True)
class Story:
    """A story of the second log: its span (ms from the Monday of `now`'s week; `end` None: to `now`),
    the keys it shows on as `dimension:key` (none: it should alert nobody), and for a leak its token
    and rate."""

    name: str
    start: int
    end: int | None
    keys: tuple[str, ...]
    token: Token | None = None
    endpoint: str = ""
    dollars_per_hour: float = 0.0


LEAK_COST = 0.12  # claude-opus-4-1, the leak's mean call (catalogue.LEAK_PROMPT, LEAK_COMPLETION)
CREEP_ENDPOINT, CREEP_TO = "/summarise-ticket", 5.0
PRICING_ENDPOINT, PRICING_MODEL = "/chat", ("anthropic", "claude-opus-4-1-20250805")
LULL_FACTOR = 0.2


def _leak(name: str, prefix: str, endpoint: str, dollars: float, start: int, hours: int | None) -> Story:
    token = (f"tok_{prefix}{'x' * (20 - len(prefix))}", f"pg_live_{prefix}", name)
    end = None if hours is None else start + hours * HOUR
    return Story(name, start, end, (f"token:pg_live_{prefix}…",), token, endpoint, dollars)


STORIES = (
    _leak("leak-small", "lk1", "/support-reply", 4.0, -10 * DAY + 14 * HOUR + 20 * MINUTE, None),
    Story("creep", -11 * DAY, -4 * DAY, (f"endpoint:{CREEP_ENDPOINT}",)),
    _leak("leak-medium", "lk2", "/research-agent", 15.0, -8 * DAY + 3 * HOUR + 40 * MINUTE, 48),
    Story("pricing-change day", -6 * DAY, -5 * DAY, (f"endpoint:{PRICING_ENDPOINT}",)),
    _leak("leak-large", "lk3", "/code-review", 60.0, -3 * DAY + 10 * HOUR + 10 * MINUTE, 6),
    Story("weekend lull", -2 * DAY, 0, ()),
)


class StoriesLog(LogGenerator):
    """The second log's rows: the demo's regular traffic with `STORIES` instead of the demo's three."""

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.tokens += [s.token for s in STORIES if s.token is not None]

    def span(self, story: Story) -> tuple[int, int]:
        """A story's [start, end) in epoch ms."""
        end = self.params.now_ms if story.end is None else self.monday_ms + story.end
        return self.monday_ms + story.start, end

    def stories(self, t0: int, t1: int, rng: np.random.Generator, regular: Batch) -> list[Batch]:
        parts = []
        for story in STORIES:
            start, end = self.span(story)
            a, b = max(t0, start), min(t1, end)
            if story.token is not None and a < b:
                ts = uniform_arrivals(a, b, story.dollars_per_hour / LEAK_COST / HOUR, rng)
                parts.append(self.leak_rows(rng, ts, story.endpoint, story.token[0]))
        creep = self.span(STORIES[1])
        if (a := max(t0, creep[0])) < t1:  # 1× to CREEP_TO× over the week: the extra, thinned by the ramp
            index = ENDPOINT_INDEX[CREEP_ENDPOINT]
            ts = self._arrivals(a, t1, rng, scale=(CREEP_TO - 1) * self.endpoint_p[index])
            ts = ts[rng.random(len(ts)) < np.clip((ts - creep[0]) / (creep[1] - creep[0]), 0.0, 1.0)]
            parts.append(self._rows(rng, ts, np.full(len(ts), index)))
        day = self.span(STORIES[3])
        switched = (regular["endpoint"] == PRICING_ENDPOINT) & (regular["created_at"] >= day[0])
        switched &= regular["created_at"] < day[1]
        regular["provider"][switched], regular["model"][switched] = PRICING_MODEL
        return parts

    def rate_factor(self, starts: np.ndarray) -> np.ndarray | float:
        lull = self.span(STORIES[5])
        return np.where((starts >= lull[0]) & (starts < lull[1]), LULL_FACTOR, 1.0)
