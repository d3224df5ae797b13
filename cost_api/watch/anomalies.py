"""Anomaly rules, replayed hour by hour on the hourly aggregates: the episodes behind `GET /v1/anomalies`,
the live alert engine (alerts.py) and Grafana's annotations.

For each configured dimension (endpoint, token, provider, model) the hourly priced groups of the range
(and of the history its baselines need) are folded into one matrix of spend and one of requests per
key and hour: closed hours come from the in-memory rollups, so a replay prices no raw row. Each rule
is then a few numpy expressions over those matrices; `request_storm` alone needs per-minute request
counts, read (`requests_per_minute`) only for the hours where a key's hourly requests could reach
`min_requests_per_minute`. The budget rules read the `BudgetTracker`'s figures, never the log.

An hour is judged at its end, on what happened before that instant. The range's last, unfinished hour
is judged at the range's end on the trailing windows that end there (an hour that such a window cuts
counts in proportion); it can start or extend an episode, never end one: an episode ends at the first
whole hour in which its rule no longer holds. docs/alerts.md states every rule's arithmetic.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from cost_api.aggregation.aggregator import TokenDirectory, data_quality_block, money, pricing_block
from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.aggregation.groups import Groups
from cost_api.aggregation.rollups import ceil_hour, floor_hour
from cost_api.windows import HOUR_MS, Range, Window, epoch_ms, from_ms, iso, now_utc

if TYPE_CHECKING:
    from cost_api.aggregation.aggregator import Aggregator
    from cost_api.config import Alerts, Settings
    from cost_api.watch.budgets import BudgetTracker



class Watched(Protocol):
    """What the rules read: the aggregation layer and the settings (the service has both)."""

    @property
    def aggregator(self) -> Aggregator: ...

    @property
    def settings(self) -> Settings: ...


MINUTE_MS = 60_000
DAY_H = 24
WEEK_H = 7 * DAY_H
DAYS = 7  # the baselines cover the previous 7 days
HISTORY_H = WEEK_H + DAY_H  # hours before an evaluated hour that its baselines read (+1 for a partial hour)
LEAD_H = WEEK_H  # evaluated before the range: an episode running at its start keeps its true start
STORM_LEAD_H = 2  # the same for request_storm, whose minutes are read per evaluated hour
STORM_MINUTES = 5
READ_MINUTES = 1440  # one `requests_per_minute` read covers at most a day: each stays well under the time limit
EPSILON = 1e-9  # dollars: below this a sum of spends counts as no spend
# the `groups` dimension each rule dimension is read with; provider and model share the base read
_READ_DIM = {"endpoint": "endpoint", "token": "token", "provider": None, "model": None}
_COLUMNS = {"endpoint": ("key",), "token": ("key",), "provider": ("provider",), "model": ("provider", "model")}


def episode_id(rule: str, dimension: str, key: str, started_at: datetime) -> str:
    """The same episode gets the same id on every replica and after every restart."""
    text = "\x1f".join((rule, dimension, key, iso(started_at)))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Reading:
    """What a rule measured in one hour: spend per hour (recent and baseline), the rule's ratio, and the
    same in words (for a storm, in requests per minute)."""

    recent: float | None
    baseline: float | None
    ratio: float  # math.inf when the baseline is zero
    words: str


@dataclass(slots=True)
class Episode:
    rule: str
    dimension: str
    key: str
    started_at: datetime
    ended_at: datetime | None  # None while open
    peak_ratio: float  # math.inf when a holding hour had a zero baseline
    spend: float
    last: Reading  # in the episode's last hour that held
    after: Reading | None = None  # in the first whole hour that no longer held (None while open)
    name: str | None = None  # a token's name
    clipped: bool = False  # running since the first evaluated hour: its true start may lie before
    id: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = episode_id(self.rule, self.dimension, self.key, self.started_at)

    @property
    def open(self) -> bool:
        return self.ended_at is None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "dimension": self.dimension,
            "key": self.key,
            "started_at": iso(self.started_at),
            "ended_at": None if self.ended_at is None else iso(self.ended_at),
            "peak_ratio": ratio_json(self.peak_ratio),
            "spend": money(self.spend),
        }


def ratio_json(value: float | None) -> float | None:
    """A ratio as JSON: 2 decimals, null when undefined (a zero baseline)."""
    return None if value is None or not math.isfinite(value) else round(value, 2) + 0.0


async def episodes(
    service: Watched, rng: Range, *, now: datetime | None = None, budgets: BudgetTracker | None = None
) -> list[dict[str, Any]]:
    """The episodes that overlap `rng` (newest first) as JSON: `{id, rule, dimension, key, started_at,
    ended_at (null while open), peak_ratio, spend}`. Budget episodes come from `budgets` when given."""
    return [e.as_json() for e in await replay(service, rng, now=now, budgets=budgets)]


async def replay(
    service: Watched, rng: Range, *, now: datetime | None = None, budgets: BudgetTracker | None = None
) -> list[Episode]:
    """Every rule replayed hour by hour over `rng` (never past `now`)."""
    found = await _hourly_episodes(service, rng, now or now_utc())
    if budgets is not None:
        found += budget_episodes(budgets, rng)
    found.sort(key=lambda e: (-e.started_at.timestamp(), e.rule, e.dimension, e.key))
    return found


# --------------------------------------------------------------------------- hourly matrices


@dataclass(slots=True)
class _Matrix:
    """One dimension's hours: spend and requests per key (row) and hour (column `hour - first`)."""

    dimension: str
    labels: list[str]
    names: list[str | None]
    spend: np.ndarray
    requests: np.ndarray
    rows: dict[str, int]


def _label(dimension: str, raw: Any, directory: TokenDirectory) -> tuple[str, str | None]:
    if dimension == "token":
        return directory.display(raw)
    if dimension == "model":
        return f"{raw[0]}/{raw[1]}", None
    return str(raw), None


def _matrix(dimension: str, groups: Groups, directory: TokenDirectory, first: int, hours: int) -> _Matrix:
    """Fold hourly groups into key × hour matrices; keys shown alike (two token ids with one
    prefix) are one row, as the `token=` filter treats them."""
    columns = _COLUMNS[dimension]
    arrays = [getattr(groups, c).astype(np.int64) for c in columns]
    combined = arrays[0]
    for array in arrays[1:]:  # codes are ≥ 0; no groups (a quiet lookback) make empty arrays
        combined = combined * (int(array.max(initial=0)) + 1) + array
    uniques, firsts, inverse = np.unique(combined, return_index=True, return_inverse=True)
    decoded = [groups.values(c)[firsts] for c in columns]
    raws = list(zip(*decoded, strict=True)) if len(columns) > 1 else list(decoded[0])
    rows: dict[str, int] = {}
    labels: list[str] = []
    names: list[str | None] = []
    row_of = np.empty(len(uniques), dtype=np.int64)
    for i, raw in enumerate(raws):
        label, name = _label(dimension, raw, directory)
        row = rows.setdefault(label, len(labels))
        if row == len(labels):
            labels.append(label)
            names.append(name)
        row_of[i] = row
    k = len(labels)
    cell = row_of[inverse.reshape(-1)] * hours + (groups.slot - first)
    spend = np.bincount(cell, weights=groups.spend, minlength=k * hours).reshape(k, hours)
    requests = np.bincount(cell, weights=groups.counts["requests"], minlength=k * hours).reshape(k, hours)
    return _Matrix(dimension, labels, names, spend, requests, rows)


async def _matrices(
    service: Watched, dimensions: Iterable[str], first: int, end: datetime
) -> tuple[list[_Matrix], TokenDirectory]:
    """Hourly matrices of hours [first, the hour holding `end`] for each dimension, one read per
    `groups` dimension (provider and model share one)."""
    agg = service.aggregator
    dimensions = list(dimensions)
    reads = list(dict.fromkeys(_READ_DIM[d] for d in dimensions))
    span = Range(_hour(first), end)
    directory_read = agg.tokens() if "token" in dimensions else _no_directory()
    directory, *parts = await gather_or_cancel(directory_read, *(agg.groups(span, dim=d) for d in reads))
    by_read = dict(zip(reads, parts, strict=True))
    hours = ceil_hour(epoch_ms(end)) - first
    return [_matrix(d, by_read[_READ_DIM[d]], directory, first, hours) for d in dimensions], directory


async def _no_directory() -> TokenDirectory:
    return TokenDirectory([])


def _hour(hour: int) -> datetime:
    return from_ms(hour * HOUR_MS)


# --------------------------------------------------------------------------- the hourly rules


@dataclass(slots=True)
class _Judged:
    """One rule over one dimension: which (key, evaluated hour) held, and what it measured."""

    rule: str
    holds: np.ndarray  # bool, keys × evaluated hours
    ratio: np.ndarray  # the rule's ratio per cell (inf: zero baseline)
    recent: np.ndarray  # spend per hour the cell's reading reports
    baseline: np.ndarray
    words: Any  # (row, column) -> the reading in words
    first: int = 0  # the first column evaluated (an episode starting there may have started before)


@dataclass(frozen=True, slots=True)
class _Clock:
    """Where the evaluated hours lie in a matrix: columns `e0 … last`, the last one judged at `frac`
    of its length (1.0: a whole hour)."""

    first: int  # the matrix's first hour
    e0: int  # first evaluated column
    last: int  # last evaluated column
    frac: float
    end_minute: int  # storms: windows end no later than this epoch minute
    storm_from: int  # storms: the first evaluated column

    @property
    def columns(self) -> np.ndarray:
        return np.arange(self.e0, self.last + 1)

    @property
    def partial(self) -> bool:
        return self.frac < 1.0


def _ratio(recent: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(baseline > EPSILON, recent / np.where(baseline > EPSILON, baseline, 1.0), np.inf)


def _spend_windows(s: np.ndarray, clock: _Clock) -> tuple[np.ndarray, ...]:
    """Per evaluated cell: the last hour's spend and its baseline, the last 24 hours' spend per hour
    and theirs, and the spend of the 7 days before the hour."""
    idx = clock.columns
    cs = np.concatenate([np.zeros((len(s), 1)), np.cumsum(s, axis=1)], axis=1)  # cs[:, j] = Σ s[:, :j]
    r1 = s[:, idx].copy()
    b1 = sum(s[:, idx - DAY_H * k] for k in range(1, DAYS + 1)) / DAYS
    r24 = (cs[:, idx + 1] - cs[:, idx - 23]) / DAY_H
    b24 = (cs[:, idx - 23] - cs[:, idx - 23 - WEEK_H]) / WEEK_H
    week = cs[:, idx] - cs[:, idx - WEEK_H]
    if clock.partial:  # the trailing windows end inside the last hour: split the hours they cut evenly
        i, f = clock.last, clock.frac
        g = 1.0 - f
        r1[:, -1] = s[:, i] + g * s[:, i - 1]
        b1[:, -1] = sum(g * s[:, i - 1 - DAY_H * k] + f * s[:, i - DAY_H * k] for k in range(1, DAYS + 1)) / DAYS
        r24[:, -1] = (cs[:, i + 1] - cs[:, i - 23] + g * s[:, i - 24]) / DAY_H
        b24[:, -1] = (g * s[:, i - HISTORY_H] + cs[:, i - 24] - cs[:, i - 23 - WEEK_H] + f * s[:, i - 24]) / WEEK_H
    clean = [np.where(np.abs(a) < EPSILON, 0.0, a) for a in (r1, b1, r24, b24, week)]
    return tuple(clean)


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def _times(ratio: float) -> str:
    return "new" if not math.isfinite(ratio) else f"{ratio:.1f}×"


def _burn_rate(windows: tuple[np.ndarray, ...], cfg: Alerts) -> _Judged:
    r1, b1, r24, b24, _ = windows
    ratio1, ratio24 = _ratio(r1, b1), _ratio(r24, b24)
    hold1 = (r1 >= cfg.min_spend_per_hour) & (r1 > 0) & (r1 >= cfg.ratio * b1)
    hold24 = (r24 >= cfg.min_spend_per_hour) & (r24 > 0) & (r24 >= cfg.ratio * b24)
    use24 = hold24 & (~hold1 | (ratio24 > ratio1))  # report the window that holds, the stronger if both
    recent, baseline, ratio = np.where(use24, r24, r1), np.where(use24, b24, b1), np.where(use24, ratio24, ratio1)

    def words(row: int, col: int) -> str:
        span = "over the last 24 h" if use24[row, col] else "over the last hour"
        if not math.isfinite(ratio[row, col]):
            return f"{_usd(recent[row, col])}/h {span}, nothing in its baseline"
        return (
            f"{_usd(recent[row, col])}/h {span}, {_times(ratio[row, col])} its baseline of {_usd(baseline[row, col])}/h"
        )

    return _Judged("burn_rate", hold1 | hold24, ratio, recent, baseline, words)


def _new_spender(windows: tuple[np.ndarray, ...], cfg: Alerts) -> _Judged:
    r1, b1, _, _, week = windows
    holds = (week <= 0) & (r1 >= cfg.min_spend_per_hour) & (r1 > 0)

    def words(row: int, col: int) -> str:
        return f"{_usd(r1[row, col])} in the last hour, nothing in the 7 days before"

    return _Judged("new_spender", holds, _ratio(r1, np.zeros_like(r1)), r1, b1, words)


async def _request_storm(
    service: Watched,
    m: _Matrix,
    directory: TokenDirectory,
    clock: _Clock,
    windows: tuple[np.ndarray, ...],
    cfg: Alerts,
) -> _Judged:
    """An hour holds when a 5-minute window ending in it (live: the last 5 minutes) ran at
    ≥ min_requests_per_minute and ≥ ratio × the same clock minutes' mean over the previous 7 days.

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
        times = _times(math.inf if base <= 0 else recent / base)
        return f"{recent:,.0f} requests/min over 5 minutes, {times} its baseline of {base:,.1f}/min"

    judged = _Judged("request_storm", holds, ratio, r1, b1, words, clock.storm_from)
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
            days = [
                sum(per_minute.get(e - d * 1440 - j, 0) for j in range(1, STORM_MINUTES + 1)) for d in range(DAYS + 1)
            ]
            recent, base = days[0] / STORM_MINUTES, sum(days[1:]) / DAYS / STORM_MINUTES
            r = math.inf if base <= 0 else recent / base
            if not (recent >= cfg.min_requests_per_minute and recent > 0 and recent >= cfg.ratio * base):
                continue
            col = (e - 1) // 60 - clock.first - clock.e0
            ratio[row, col] = max(ratio[row, col], r) if holds[row, col] else r
            holds[row, col] = True
            if recent > rpm.get((row, col), (0.0, 0.0))[0]:  # the hour's busiest qualifying 5 minutes
                rpm[(row, col)] = recent, base
    return judged


async def _minute_counts(
    service: Watched, m: _Matrix, directory: TokenDirectory, spans: list[tuple[int, int]], at_least: int
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
    reads = [
        service.aggregator.minute_counts(_minute(a), _minute(b), m.dimension, at_least)
        for a, b in pieces
    ]
    rows_of: dict[Any, int | None] = {}
    counts: dict[int, dict[int, int]] = {}
    for found in await gather_or_cancel(*reads):
        for minute, raw, n in found:
            if raw not in rows_of:
                key = tuple(raw.split("/", 1)) if m.dimension == "model" else raw  # SQL: provider/model
                rows_of[raw] = m.rows.get(_label(m.dimension, key, directory)[0])
            row = rows_of[raw]
            if row is not None:
                per_row = counts.setdefault(row, {})
                per_row[int(minute)] = per_row.get(int(minute), 0) + int(n)
    return counts


def _minute(minute: int) -> datetime:
    return from_ms(minute * MINUTE_MS)


# --------------------------------------------------------------------------- episodes


async def _hourly_episodes(service: Watched, rng: Range, now: datetime) -> list[Episode]:
    cfg = service.settings.alerts
    end = min(rng.end, now)
    if end <= rng.start or not cfg.dimensions:
        return []
    oldest = (await service.aggregator.log_bounds())[0]
    if oldest is None:
        return []
    end_ms = epoch_ms(end)
    last_hour = ceil_hour(end_ms) - 1
    # the first hour whose baselines lie wholly in the log (its first, maybe partial, hour excluded)
    first_eval = max(floor_hour(epoch_ms(rng.start)) - LEAD_H, floor_hour(oldest) + 1 + HISTORY_H)
    if first_eval > last_hour:
        return []
    first = first_eval - HISTORY_H
    clock = _Clock(
        first=first,
        e0=HISTORY_H,
        last=last_hour - first,
        frac=(end_ms - last_hour * HOUR_MS) / HOUR_MS,
        end_minute=end_ms // MINUTE_MS,
        storm_from=max(0, floor_hour(epoch_ms(rng.start)) - STORM_LEAD_H - first_eval),
    )
    matrices, directory = await _matrices(service, dict.fromkeys(cfg.dimensions), first, end)
    found: list[Episode] = []
    for m in matrices:
        m = _prune(m, clock, cfg)
        if not m.labels:
            continue
        windows = _spend_windows(m.spend, clock)
        judged = [_burn_rate(windows, cfg), _new_spender(windows, cfg)]
        judged.append(await _request_storm(service, m, directory, clock, windows, cfg))
        for j in judged:
            found += _runs(j, m, clock, rng)
    return found


def _prune(m: _Matrix, clock: _Clock, cfg: Alerts) -> _Matrix:
    """Only the keys a rule could hold for: an evaluated hour's trailing spend is at most twice the
    largest hourly spend, and a storm needs 5 × min_requests_per_minute requests within two hours."""
    s, q = m.spend[:, clock.e0 - 1 :], m.requests[:, clock.e0 - 1 :]
    spends = (s.max(axis=1) > 0) & (2 * s.max(axis=1) >= cfg.min_spend_per_hour)
    storms = (q[:, 1:] + q[:, :-1]).max(axis=1) >= max(STORM_MINUTES * cfg.min_requests_per_minute, 1)
    keep = np.flatnonzero(spends | storms)
    if len(keep) == len(m.labels):
        return m
    labels = [m.labels[i] for i in keep]
    return _Matrix(
        m.dimension,
        labels,
        [m.names[i] for i in keep],
        m.spend[keep],
        m.requests[keep],
        {label: row for row, label in enumerate(labels)},
    )


def _runs(j: _Judged, m: _Matrix, clock: _Clock, rng: Range) -> list[Episode]:
    """Episodes: runs of consecutive holding hours. The last hour, when unfinished, cannot end a run."""
    out: list[Episode] = []
    spend = m.spend[:, clock.columns]
    n = j.holds.shape[1]
    start_ms = epoch_ms(rng.start)
    for row in np.flatnonzero(j.holds.any(axis=1)).tolist():
        held = np.concatenate([[False], j.holds[row], [False]])
        edges = np.flatnonzero(np.diff(held.astype(np.int8)))
        for a, b in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):  # columns [a, b) held
            still_open = b == n or (b == n - 1 and clock.partial)
            end_hour = None if still_open else clock.first + clock.e0 + b
            if end_hour is not None and end_hour * HOUR_MS <= start_ms:
                continue  # ended before the range
            reading = _reading(j, row, b - 1)
            out.append(
                Episode(
                    rule=j.rule,
                    dimension=m.dimension,
                    key=m.labels[row],
                    started_at=_hour(clock.first + clock.e0 + a),
                    ended_at=None if end_hour is None else _hour(end_hour),
                    peak_ratio=float(j.ratio[row, a:b].max()),
                    spend=float(spend[row, a:b].sum()),
                    last=reading,
                    after=None if end_hour is None else _reading(j, row, b),
                    name=m.names[row],
                    clipped=a == j.first,
                )
            )
    return out


def _reading(j: _Judged, row: int, col: int) -> Reading:
    return Reading(
        recent=float(j.recent[row, col]),
        baseline=float(j.baseline[row, col]),
        ratio=float(j.ratio[row, col]),
        words=j.words(row, col),
    )


# --------------------------------------------------------------------------- budgets


def budget_episodes(budgets: BudgetTracker, rng: Range) -> list[Episode]:
    """`budget_warning` and `budget_exceeded` as the tracker sees its current periods: one episode per
    budget and period (it starts with the period, so that it is sent once per period), open until the
    period resets; past periods are not replayed."""
    found: list[Episode] = []
    for item in budgets.overview()["items"]:
        if item["status"] not in ("warning", "exceeded"):
            continue
        start = datetime.fromisoformat(item["period_start"].replace("Z", "+00:00"))
        resets = datetime.fromisoformat(item["resets_at"].replace("Z", "+00:00"))
        if not (start < rng.end and resets > rng.start):
            continue
        spent, limit = item["spent"], item["limit_usd"]
        words = f"{_usd(spent)} of its {_usd(limit)} {item['period']} budget ({item['used_pct']}%)"
        reading = Reading(None, None, spent / limit, words)
        rules = ["budget_warning"] + (["budget_exceeded"] if item["status"] == "exceeded" else [])
        for rule in rules:
            found.append(Episode(rule, "endpoint", item["endpoint"], start, None, spent / limit, spent, reading))
    return found


# --------------------------------------------------------------------------- GET /v1/anomalies


async def anomalies(service: Watched, window: Window, *, budgets: BudgetTracker | None = None) -> dict[str, Any]:
    """`GET /v1/anomalies`: the episodes of the window, newest first."""
    agg = service.aggregator
    found, groups = await gather_or_cancel(episodes(service, window.range, budgets=budgets), agg.groups(window.range))
    fresh = await agg.freshness()
    return {
        "range": window.range.as_json(),
        "items": found,
        "pricing": pricing_block(groups, agg.pricing),
        "data_quality": data_quality_block(groups, fresh),
        "as_of": iso(fresh.now),
        "latest_request_at": iso(fresh.latest) if fresh.latest else None,
    }
