"""The `request_storm` rule: the one rule that needs per-minute request counts, read
(`requests_per_minute`) only for the hours where a key's hourly requests could reach
`min_requests_per_minute`. docs/alerts.md states its arithmetic.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from cost_api.aggregation.aggregator import TokenDirectory
from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.watch.rules import DAYS, Clock, Judged, Matrix, Watched, label, times
from cost_api.windows import from_ms

if TYPE_CHECKING:
    from cost_api.config import Alerts

MINUTE_MS = 60_000
STORM_MINUTES = 5
READ_MINUTES = 1440  # one `requests_per_minute` read covers at most a day: each stays well under the time limit


async def request_storm(
    service: Watched,
    m: Matrix,
    directory: TokenDirectory,
    clock: Clock,
    windows: tuple[np.ndarray, ...],
    cfg: Alerts,
) -> Judged:
    """An hour holds when a 5-minute window ending in it (live: the last 5 minutes) ran at
    ≥ min_requests_per_minute and ≥ ratio × the same clock minutes' mean over the previous 7 days (in
    a young log, over the days it has; not before its second day).

    Minutes are read in two steps, only where the rule could hold: first the busy minutes (≥
    min_requests_per_minute requests: a qualifying window holds at least one) of the hours whose
    hourly requests allow a qualifying window, then every minute of the windows around those busy
    minutes, on the day and on each of the 7 days before."""
    r1, b1 = windows[:2]
    holds = np.zeros(r1.shape, dtype=bool)
    ratio = np.zeros(r1.shape)
    rpm: dict[tuple[int, int], tuple[float, float]] = {}

    def words(row: int, col: int) -> str:
        recent, base = rpm.get((row, col), (0.0, 0.0))
        if base <= 0:  # as burn_rate says it: no "new its baseline of 0.0/min"
            return f"{recent:,.0f} requests/min over 5 minutes, nothing in its baseline"
        return f"{recent:,.0f} requests/min over 5 minutes, {times(recent / base)} its baseline of {base:,.1f}/min"

    judged = Judged("request_storm", holds, ratio, r1, b1, words, clock.storm_from)
    idx = clock.columns
    # a window ending in hour h lies in hours h-1 and h, and needs 5 × min_requests_per_minute requests
    possible = m.requests[:, idx - 1] + m.requests[:, idx] >= max(STORM_MINUTES * cfg.min_requests_per_minute, 1)
    hours = [clock.first + int(idx[c]) for c in np.flatnonzero(possible.any(axis=0)) if c >= clock.storm_from]
    if not hours:
        return judged
    busy_at = max(1, math.ceil(cfg.min_requests_per_minute))
    spans = [(h * 60 - STORM_MINUTES + 1, min(h * 60 + 60, clock.end_minute)) for h in hours]
    busy = await _minute_counts(service, m, directory, spans, busy_at)
    first_end = (clock.first + clock.e0 + clock.storm_from) * 60 + 1  # windows end in (60 × hour, 60 × hour + 60]
    ends = {  # the windows holding a busy minute, among those the replay judges
        row: sorted(
            {
                e
                for minute in minutes
                for e in range(minute + 1, minute + STORM_MINUTES + 1)
                if first_end <= e <= clock.end_minute
            }
        )
        for row, minutes in busy.items()
    }
    spans = [
        (e - STORM_MINUTES - d * 1440, e - d * 1440) for row_ends in ends.values() for e in row_ends
        for d in range(DAYS + 1)
    ]  # fmt: skip
    counts = await _minute_counts(service, m, directory, spans, 1)
    for row, row_ends in ends.items():
        per_minute = counts.get(row, {})
        for e in row_ends:
            col = (e - 1) // 60 - clock.first - clock.e0
            history = clock.baseline_days(col)  # a young log: the days it has
            if history < 1:
                continue
            days = [
                sum(per_minute.get(e - d * 1440 - j, 0) for j in range(1, STORM_MINUTES + 1))
                for d in range(history + 1)
            ]
            recent, base = days[0] / STORM_MINUTES, sum(days[1:]) / history / STORM_MINUTES
            r = math.inf if base <= 0 else recent / base
            if not (recent >= cfg.min_requests_per_minute and recent > 0 and recent >= cfg.ratio * base):
                continue
            ratio[row, col] = max(ratio[row, col], r) if holds[row, col] else r
            holds[row, col] = True
            if recent > rpm.get((row, col), (0.0, 0.0))[0]:  # the hour's busiest qualifying 5 minutes
                rpm[(row, col)] = recent, base
    return judged


async def _minute_counts(
    service: Watched, m: Matrix, directory: TokenDirectory, spans: list[tuple[int, int]], at_least: int
) -> dict[int, dict[int, int]]:
    """Requests per (row, epoch minute) over the spans of minutes `[a, b)`, where at least `at_least`:
    one `requests_per_minute` read per stretch of overlapping spans (and per day of a longer one)."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        elif start < end:
            merged.append([start, end])
    pieces = [(a, min(a + READ_MINUTES, end)) for start, end in merged for a in range(start, end, READ_MINUTES)]
    reads = [service.aggregator.minute_counts(_minute(a), _minute(b), m.dimension, at_least) for a, b in pieces]
    rows_of: dict[Any, int | None] = {}
    counts: dict[int, dict[int, int]] = {}
    for found in await gather_or_cancel(*reads):
        for minute, raw, n in found:
            if raw not in rows_of:
                key = tuple(raw.split("/", 1)) if m.dimension == "model" else raw  # SQL: provider/model
                rows_of[raw] = m.rows.get(label(m.dimension, key, directory)[0])
            row = rows_of[raw]
            if row is not None:
                per_row = counts.setdefault(row, {})
                per_row[int(minute)] = per_row.get(int(minute), 0) + int(n)
    return counts


def _minute(minute: int) -> datetime:
    return from_ms(minute * MINUTE_MS)
