"""The hourly anomaly rules, `burn_rate` and `new_spender`, over one matrix of spend and one of requests
per key and hour (`request_storm`, which also reads per-minute counts, is in storm.py; anomalies.py
replays them all into episodes).

For each configured dimension (endpoint, token, provider, model) the hourly priced groups of the range
(and of the history its baselines need) are folded into those matrices: closed hours come from the
in-memory rollups, so a replay prices no raw row. Each rule is then a few numpy expressions over them.
docs/alerts.md states every rule's arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from cost_api.aggregation.aggregator import TokenDirectory
from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.aggregation.groups import Groups
from cost_api.aggregation.rollups import ceil_hour
from cost_api.windows import HOUR_MS, Range, epoch_ms, from_ms

if TYPE_CHECKING:
    from cost_api.aggregation.aggregator import Aggregator
    from cost_api.config import Alerts, Settings


class Watched(Protocol):
    """What the rules read: the aggregation layer and the settings (the service has both)."""

    @property
    def aggregator(self) -> Aggregator: ...

    @property
    def settings(self) -> Settings: ...


DAY_H = 24
WEEK_H = 7 * DAY_H
DAYS = 7  # the baselines cover the previous 7 days
HISTORY_H = WEEK_H + DAY_H  # hours before an evaluated hour that its baselines read (+1 for a partial hour)
EPSILON = 1e-9  # dollars: below this a sum of spends counts as no spend
NEW_MIN_REQUESTS = 3  # `new_spender` holds on at least this many requests in its hour (or elapsed part)
NEW_ELAPSED = 0.25  # of an hour: the shortest elapsed part a new key's rate is judged over
# the `groups` dimension each rule dimension is read with; provider and model share the base read;
# `tag:<key>` is read as itself (the token rollup folded through the tokens' tags)
_READ_DIM = {"endpoint": "endpoint", "token": "token", "provider": None, "model": None}
_COLUMNS = {"endpoint": ("key",), "token": ("key",), "provider": ("provider",), "model": ("provider", "model")}


def _read_dim(dimension: str) -> str | None:
    return dimension if dimension.startswith("tag:") else _READ_DIM[dimension]


# --------------------------------------------------------------------------- hourly matrices


@dataclass(slots=True)
class Matrix:
    """One dimension's hours: spend and requests per key (row) and hour (column `hour - first`)."""

    dimension: str
    labels: list[str]
    names: list[str | None]
    spend: np.ndarray
    requests: np.ndarray
    rows: dict[str, int]


def label(dimension: str, raw: Any, directory: TokenDirectory) -> tuple[str, str | None]:
    """A key as the answers show it (a token by its display prefix), and a token's name."""
    if dimension == "token":
        return directory.display(raw)
    if dimension == "model":
        return f"{raw[0]}/{raw[1]}", None
    return str(raw), None


def _matrix(dimension: str, groups: Groups, directory: TokenDirectory, first: int, hours: int) -> Matrix:
    """Fold hourly groups into key × hour matrices; keys shown alike (two token ids with one
    prefix) are one row, as the `token=` filter treats them."""
    columns = _COLUMNS.get(dimension, ("key",))
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
        shown, name = label(dimension, raw, directory)
        row = rows.setdefault(shown, len(labels))
        if row == len(labels):
            labels.append(shown)
            names.append(name)
        row_of[i] = row
    k = len(labels)
    cell = row_of[inverse.reshape(-1)] * hours + (groups.slot - first)
    spend = np.bincount(cell, weights=groups.spend, minlength=k * hours).reshape(k, hours)
    requests = np.bincount(cell, weights=groups.counts["requests"], minlength=k * hours).reshape(k, hours)
    return Matrix(dimension, labels, names, spend, requests, rows)


async def matrices(
    service: Watched, dimensions: Iterable[str], first: int, end: datetime
) -> tuple[list[Matrix], TokenDirectory]:
    """Hourly matrices of hours [first, the hour holding `end`] for each dimension, one read per
    `groups` dimension (provider and model share one)."""
    agg = service.aggregator
    dimensions = list(dimensions)
    if any(d.startswith("tag:") for d in dimensions):  # a key no token carries (yet) has no values to watch
        keys = (await agg.tag_book()).keys
        dimensions = [d for d in dimensions if not d.startswith("tag:") or d[4:] in keys]
    reads = list(dict.fromkeys(_read_dim(d) for d in dimensions))
    span = Range(hour_start(first), end)
    directory_read = agg.tokens() if "token" in dimensions else _no_directory()
    # one gather of two kinds of read: the token directory first, then the groups of each read
    read: list[Any] = await gather_or_cancel(directory_read, *(agg.groups(span, dim=d) for d in reads))
    directory: TokenDirectory = read[0]
    parts: list[Groups] = read[1:]
    by_read = dict(zip(reads, parts, strict=True))
    hours = ceil_hour(epoch_ms(end)) - first
    return [_matrix(d, by_read[_read_dim(d)], directory, first, hours) for d in dimensions], directory


async def _no_directory() -> TokenDirectory:
    return TokenDirectory([])


def hour_start(hour: int) -> datetime:
    """The instant epoch hour `hour` starts."""
    return from_ms(hour * HOUR_MS)


# --------------------------------------------------------------------------- the hourly rules


@dataclass(slots=True)
class Judged:
    """One rule over one dimension: which (key, evaluated hour) held, and what it measured."""

    rule: str
    holds: np.ndarray  # bool, keys × evaluated hours
    ratio: np.ndarray  # the rule's ratio per cell (inf: zero baseline)
    recent: np.ndarray  # spend per hour the cell's reading reports
    baseline: np.ndarray
    words: Any  # (row, column) -> the reading in words
    first: int = 0  # the first column evaluated (an episode starting there may have started before)


@dataclass(frozen=True, slots=True)
class Clock:
    """Where the evaluated hours lie in a matrix: columns `e0 … last`, the last one judged at `frac`
    of its length (1.0: a whole hour)."""

    first: int  # the matrix's first hour
    e0: int  # first evaluated column
    last: int  # last evaluated column
    frac: float
    end_minute: int  # storms: windows end no later than this epoch minute
    storm_from: int  # storms: the first evaluated column
    log_start: int = 0  # the column of the log's first whole hour (≤ 0: the log is older than the matrix)

    @property
    def columns(self) -> np.ndarray:
        return np.arange(self.e0, self.last + 1)

    @property
    def history(self) -> np.ndarray:
        """Per evaluated column: the whole hours of log before it."""
        return self.columns - self.log_start

    def baseline_days(self, col: int) -> int:
        """The days of log the baselines of evaluated column `col` cover: 7 once the log is 8 days old."""
        return int(min(DAYS, max(0, self.e0 + col - self.log_start) // DAY_H))

    @property
    def partial(self) -> bool:
        return self.frac < 1.0


def _ratio(recent: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(baseline > EPSILON, recent / np.where(baseline > EPSILON, baseline, 1.0), np.inf)


def spend_windows(s: np.ndarray, clock: Clock) -> tuple[np.ndarray, ...]:
    """Per evaluated cell: the last hour's spend and its baseline, the last 24 hours' spend per hour
    and theirs, and the spend of the 7 days before the hour.

    A young log's baselines cover the history it has (the columns before `clock.log_start` hold
    nothing): B1 the mean of the same hour on the days before that lie in the log, B24 the mean hour
    of the (up to 168) hours before the 24-hour window. A baseline is NaN, and the rules comparing
    with it do not hold, without a day of history: B1 before the log's second day, B24 before its
    third (the 24 hours and a day before them); so is the week's spend that `new_spender` reads."""
    idx = clock.columns
    days = np.minimum(np.maximum(clock.history, 0) // DAY_H, DAYS)
    hours24 = np.minimum(np.maximum(clock.history - (DAY_H - 1), 0), WEEK_H)  # before the 24-hour window
    cs = np.concatenate([np.zeros((len(s), 1)), np.cumsum(s, axis=1)], axis=1)  # cs[:, j] = Σ s[:, :j]
    r1 = s[:, idx].copy()
    b1 = cast(np.ndarray, sum(s[:, idx - DAY_H * k] for k in range(1, DAYS + 1)))  # DAYS ≥ 1 arrays
    r24 = (cs[:, idx + 1] - cs[:, idx - 23]) / DAY_H
    b24 = cs[:, idx - 23] - cs[:, idx - 23 - WEEK_H]
    week = cs[:, idx] - cs[:, idx - WEEK_H]
    if clock.partial:  # the trailing windows end inside the last hour: split the hours they cut evenly
        i, f = clock.last, clock.frac
        g = 1.0 - f
        r1[:, -1] = s[:, i] + g * s[:, i - 1]
        b1[:, -1] = sum(g * s[:, i - 1 - DAY_H * k] + f * s[:, i - DAY_H * k] for k in range(1, DAYS + 1))
        r24[:, -1] = (cs[:, i + 1] - cs[:, i - 23] + g * s[:, i - 24]) / DAY_H
        b24[:, -1] = g * s[:, i - HISTORY_H] + cs[:, i - 24] - cs[:, i - 23 - WEEK_H] + f * s[:, i - 24]
    with np.errstate(divide="ignore", invalid="ignore"):
        b1 = np.where(days >= 1, b1 / days, np.nan)
        b24 = np.where(hours24 >= DAY_H, b24 / hours24, np.nan)
    week = np.where(days >= 1, week, np.nan)
    clean = [np.where(np.abs(a) < EPSILON, 0.0, a) for a in (r1, b1, r24, b24, week)]
    return tuple(clean)


def usd(value: float) -> str:
    return f"${value:,.2f}"


def days_text(n: int) -> str:
    return f"{n} day" + ("" if n == 1 else "s")


def times(ratio: float) -> str:
    return "new" if not math.isfinite(ratio) else f"{ratio:.1f}×"


def enough_requests(counts: tuple[np.ndarray, ...], cfg: Alerts) -> tuple[np.ndarray, np.ndarray]:
    """Per evaluated cell: whether the last hour, and the last 24 hours, hold at least `min_requests`
    requests (the windows `burn_rate` reads, cut alike in an unfinished hour). `counts`: `spend_windows`
    of the request matrix."""
    q1, _, q24, _, _ = counts
    return q1 >= cfg.min_requests - EPSILON, q24 * DAY_H >= cfg.min_requests - EPSILON


def burn_rate(windows: tuple[np.ndarray, ...], enough: tuple[np.ndarray, np.ndarray], cfg: Alerts) -> Judged:
    """`enough`: `enough_requests`, the request floor of each window."""
    r1, b1, r24, b24, _ = windows
    ratio1, ratio24 = _ratio(r1, b1), _ratio(r24, b24)
    hold1 = (r1 >= cfg.min_spend_per_hour) & (r1 > 0) & (r1 >= cfg.ratio * b1) & enough[0]
    hold24 = (r24 >= cfg.min_spend_per_hour) & (r24 > 0) & (r24 >= cfg.ratio * b24) & enough[1]
    use24 = hold24 & (~hold1 | (ratio24 > ratio1))  # report the window that holds, the stronger if both
    recent, baseline, ratio = np.where(use24, r24, r1), np.where(use24, b24, b1), np.where(use24, ratio24, ratio1)

    def words(row: int, col: int) -> str:
        span = "over the last 24 h" if use24[row, col] else "over the last hour"
        if not math.isfinite(ratio[row, col]):
            return f"{usd(recent[row, col])}/h {span}, nothing in its baseline"
        return f"{usd(recent[row, col])}/h {span}, {times(ratio[row, col])} its baseline of {usd(baseline[row, col])}/h"

    return Judged("burn_rate", hold1 | hold24, ratio, recent, baseline, words)


def new_spender(windows: tuple[np.ndarray, ...], requests: np.ndarray, cfg: Alerts, clock: Clock) -> Judged:
    """`requests`: the last hour's requests per cell (`spend_windows` of the request matrix). In an
    unfinished hour a new key's spend all lies in its elapsed part (nothing in the hour before either):
    its rate is judged over that part, at least NEW_ELAPSED of an hour, so that a leak shows in its first
    minutes; NEW_MIN_REQUESTS requests keep one expensive call from being a rate."""
    r1, b1, _, _, week = windows
    rate = r1.copy()
    if clock.partial:
        rate[:, -1] /= max(clock.frac, NEW_ELAPSED)
    holds = (week <= 0) & (rate >= cfg.min_spend_per_hour) & (r1 > 0) & (requests >= NEW_MIN_REQUESTS - EPSILON)
    elapsed = f"{round(max(clock.frac, NEW_ELAPSED) * 60)} minutes"

    def words(row: int, col: int) -> str:
        before = f"nothing in the {days_text(clock.baseline_days(col))} before"
        if clock.partial and col == rate.shape[1] - 1:
            return f"{usd(rate[row, col])}/h over the hour's first {elapsed} ({usd(r1[row, col])}), {before}"
        return f"{usd(r1[row, col])} in the last hour, {before}"

    return Judged("new_spender", holds, _ratio(rate, np.zeros_like(rate)), rate, b1, words)


def spend_ceiling(windows: tuple[np.ndarray, ...], ceiling: float) -> Judged:
    """The last hour's spend at or over a fixed `ceiling` (USD per hour): no baseline, so it judges a
    log's first hours as well."""
    r1 = windows[0]
    holds = r1 >= ceiling

    def words(row: int, col: int) -> str:
        return f"{usd(r1[row, col])} in the last hour, at or over its ceiling of {usd(ceiling)}/h"

    return Judged("spend_ceiling", holds, r1 / ceiling, r1, np.full_like(r1, ceiling), words)
