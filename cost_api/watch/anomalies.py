"""Anomaly episodes: every rule replayed hour by hour on the hourly aggregates, the episodes behind
`GET /v1/anomalies` (lenses/anomalies.py), the live alert engine (alerts.py) and Grafana's annotations.

The rules are in rules.py (`burn_rate`, `new_spender`, over one matrix of spend and one of requests per
key and hour) and storm.py (`request_storm`, which alone needs per-minute request counts). The budget
rules read the `BudgetTracker`'s figures, never the log.

An hour is judged at its end, on what happened before that instant. The range's last, unfinished hour
is judged at the range's end on the trailing windows that end there (an hour that such a window cuts
counts in proportion); it can start or extend an episode, never end one: an episode ends at the first
whole hour in which its rule no longer holds. docs/alerts.md states every rule's arithmetic.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from cost_api.aggregation.aggregator import money
from cost_api.aggregation.rollups import ceil_hour, floor_hour
from cost_api.watch.rules import (
    DAY_H,
    DAYS,
    HISTORY_H,
    NEW_ELAPSED,
    WEEK_H,
    Clock,
    Judged,
    Matrix,
    Watched,
    burn_rate,
    days_text,
    enough_requests,
    hour_start,
    matrices,
    new_spender,
    spend_ceiling,
    spend_windows,
    usd,
)
from cost_api.watch.storm import MINUTE_MS, STORM_MINUTES, request_storm
from cost_api.windows import HOUR_MS, Range, epoch_ms, iso

if TYPE_CHECKING:
    from cost_api.config import Alerts
    from cost_api.watch.budgets import BudgetTracker

__all__ = ["Episode", "Reading", "Watched", "budget_episodes", "episode_id", "episodes", "ratio_json", "replay"]

BASELINE_RULES = ("burn_rate", "request_storm")  # their words say a young log's baseline (new_spender's say its days)
LEAD_H = WEEK_H  # evaluated before the range: an episode running at its start keeps its true start
STORM_LEAD_H = 2  # the same for request_storm, whose minutes are read per evaluated hour


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
    baseline_days: int = DAYS  # the days of log its baselines covered (fewer in a young log)


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
    extra: float = 0.0  # spend over the key's usual spend in its holding hours (incidents.py)
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
            "extra": money(self.extra),
            "baseline_days": self.last.baseline_days,
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
    """Every rule replayed hour by hour over `rng` (never past `now`, by default the service's clock)."""
    found = await _hourly_episodes(service, rng, now or service.aggregator.now().replace(microsecond=0))
    if budgets is not None:
        found += budget_episodes(budgets, rng)
    found.sort(key=lambda e: (-e.started_at.timestamp(), e.rule, e.dimension, e.key))
    return found


# --------------------------------------------------------------------------- the hourly rules' episodes


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
    # the log's first whole hour (its first, maybe partial, hour is left out): judged from there, on
    # the history before it (rules.spend_windows)
    log_start = floor_hour(oldest) + 1
    first_eval = max(floor_hour(epoch_ms(rng.start)) - LEAD_H, log_start)
    if first_eval > last_hour:
        return []
    first = first_eval - HISTORY_H
    clock = Clock(
        first=first,
        e0=HISTORY_H,
        last=last_hour - first,
        frac=(end_ms - last_hour * HOUR_MS) / HOUR_MS,
        end_minute=end_ms // MINUTE_MS,
        storm_from=max(0, floor_hour(epoch_ms(rng.start)) - STORM_LEAD_H - first_eval),
        log_start=log_start - first,
    )
    found_matrices, directory = await matrices(service, dict.fromkeys(cfg.dimensions), first, end)
    found: list[Episode] = []
    for m in found_matrices:
        m = _prune(m, clock, cfg)
        if not m.labels:
            continue
        if clock.log_start > 0:  # the log's first, partial hour is history for no rule
            m.spend[:, : clock.log_start] = 0.0
            m.requests[:, : clock.log_start] = 0.0
        windows = spend_windows(m.spend, clock)
        counts = spend_windows(m.requests, clock)
        judged = [burn_rate(windows, enough_requests(counts, cfg), cfg), new_spender(windows, counts[0], cfg, clock)]
        if (ceiling := _ceiling(cfg, m.dimension)) is not None:
            judged.append(spend_ceiling(windows, ceiling))
        if not m.dimension.startswith("tag:"):  # minutes are counted per logged column; a team's storm is its token's
            judged.append(await request_storm(service, m, directory, clock, windows, cfg))
        for j in judged:
            found += _runs(j, m, clock, rng, windows[1])
    return found


def _ceiling(cfg: Alerts, dimension: str) -> float | None:
    """`max_spend_per_hour` of a dimension (None: no `spend_ceiling` on it)."""
    ceilings: dict[str, float] = {str(k): v for k, v in cfg.max_spend_per_hour.items()}
    return ceilings.get(dimension)


def _prune(m: Matrix, clock: Clock, cfg: Alerts) -> Matrix:
    """Only the keys a rule could hold for: an evaluated hour's trailing spend is at most twice the
    largest hourly spend of the hours its windows reach (the 24-hour window: up to 24 hours before the
    first evaluated one), a new key's rate in an unfinished hour its spend over the elapsed part, and a
    storm needs 5 × min_requests_per_minute requests within two hours."""
    s, q = m.spend[:, clock.e0 - DAY_H :], m.requests[:, clock.e0 - 1 :]
    floor = min(cfg.min_spend_per_hour, _ceiling(cfg, m.dimension) or math.inf)
    spends = (s.max(axis=1) > 0) & (2 * s.max(axis=1) >= floor)
    if clock.partial:  # a new key's rate over the elapsed part of the last hour (rules.new_spender)
        spends |= m.spend[:, clock.last] >= floor * max(clock.frac, NEW_ELAPSED)
    storms = (q[:, 1:] + q[:, :-1]).max(axis=1) >= max(STORM_MINUTES * cfg.min_requests_per_minute, 1)
    keep = np.flatnonzero(spends | storms)
    if len(keep) == len(m.labels):
        return m
    labels = [m.labels[i] for i in keep]
    return Matrix(
        m.dimension,
        labels,
        [m.names[i] for i in keep],
        m.spend[keep],
        m.requests[keep],
        {label: row for row, label in enumerate(labels)},
    )


def _runs(j: Judged, m: Matrix, clock: Clock, rng: Range, usual: np.ndarray) -> list[Episode]:
    """Episodes: runs of consecutive holding hours. The last hour, when unfinished, cannot end a run.
    `usual`: B1, each evaluated hour's baseline (an episode's `extra` is its spend above it)."""
    out: list[Episode] = []
    spend = m.spend[:, clock.columns]
    over = np.maximum(spend - np.nan_to_num(usual, nan=0.0), 0.0)  # no baseline yet: all of it is extra
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
            reading = _reading(j, row, b - 1, clock)
            out.append(
                Episode(
                    rule=j.rule,
                    dimension=m.dimension,
                    key=m.labels[row],
                    started_at=hour_start(clock.first + clock.e0 + a),
                    ended_at=None if end_hour is None else hour_start(end_hour),
                    peak_ratio=float(j.ratio[row, a:b].max()),
                    spend=float(spend[row, a:b].sum()),
                    last=reading,
                    after=None if end_hour is None else _reading(j, row, b, clock),
                    name=m.names[row],
                    clipped=a == j.first,
                    extra=float(over[row, a:b].sum()),
                )
            )
    return out


def _reading(j: Judged, row: int, col: int, clock: Clock) -> Reading:
    days = clock.baseline_days(col)
    words = j.words(row, col)
    if days < DAYS and j.rule in BASELINE_RULES:
        words += f" (a young log: a baseline of {days_text(days)})"
    baseline = float(j.baseline[row, col])
    return Reading(
        recent=float(j.recent[row, col]),
        baseline=None if math.isnan(baseline) else baseline,
        ratio=float(j.ratio[row, col]),
        words=words,
        baseline_days=days,
    )


# --------------------------------------------------------------------------- budgets


def budget_episodes(budgets: BudgetTracker, rng: Range) -> list[Episode]:
    """`budget_forecast` (`forecast_episode`), `budget_warning` and `budget_exceeded` as the tracker sees
    its current periods: one episode per budget and period (it starts with the period, so that it is
    sent once per period), open until the period resets; past periods are not replayed."""
    found: list[Episode] = []
    for item in budgets.overview()["items"]:
        forecast = forecast_episode(item, rng)
        found += [forecast] if forecast is not None else []
        if item["status"] not in ("warning", "exceeded"):
            continue
        start = datetime.fromisoformat(item["period_start"].replace("Z", "+00:00"))
        resets = datetime.fromisoformat(item["resets_at"].replace("Z", "+00:00"))
        if not (start < rng.end and resets > rng.start):
            continue
        spent, limit = item["spent"], item["limit_usd"]
        words = f"{usd(spent)} of its {usd(limit)} {item['period']} budget ({item['used_pct']}%)"
        reading = Reading(None, None, spent / limit, words)
        rules = ["budget_warning"] + (["budget_exceeded"] if item["status"] == "exceeded" else [])
        for rule in rules:
            found.append(Episode(rule, *budget_key(item), start, None, spent / limit, spent, reading))
    return found


def budget_key(item: dict[str, Any]) -> tuple[str, str]:
    """The dimension and key of a budget's episodes: `endpoint` /x, `token` sk-…, or `tag:team` search."""
    if item["token"] is not None:
        return "token", item["token"]
    if item["tag"] is not None:
        key, _, value = item["tag"].partition(":")
        return f"tag:{key}", value
    return "endpoint", item["endpoint"]


def forecast_episode(item: dict[str, Any], rng: Range) -> Episode | None:
    """`budget_forecast`: a budget (a /v1/budgets item) projected to reach its limit before its period
    ends (`projected_exceed_at`), while under it: one episode per budget and period, like the others."""
    exceed_at = item["projected_exceed_at"]
    start = datetime.fromisoformat(item["period_start"].replace("Z", "+00:00"))
    resets = datetime.fromisoformat(item["resets_at"].replace("Z", "+00:00"))
    if exceed_at is None or not (start < rng.end and resets > rng.start):
        return None
    spent, limit, projected = item["spent"], item["limit_usd"], item["projected"]
    words = (
        f"{usd(spent)} of its {usd(limit)} {item['period']} budget, projected to reach it at {exceed_at} "
        f"({usd(projected)} by {item['resets_at']})"
    )
    reading = Reading(None, None, projected / limit, words)
    return Episode("budget_forecast", *budget_key(item), start, None, projected / limit, spent, reading)
