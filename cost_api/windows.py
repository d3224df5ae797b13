"""Time ranges: windows, calendar spans in a zone, previous periods and local buckets.

Ranges are half-open `[start, end)` of aware UTC datetimes. SQLite has no zone database, so local
days are never computed in SQL: the SQL groups by a UTC slot (`slot_ms`: an hour, or the largest
part of an hour that every local hour starts on, e.g. 15 minutes in Asia/Kathmandu) and Python
folds the slots into local buckets (`Groups.buckets`). docs/windows.md explains the rules.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from cost_api.errors import BadParameter

MAX_RANGE = timedelta(days=400)
MAX_BUCKETS = 2000
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def hour_runs(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Hours (epoch hour numbers) as runs [h0, h1) of consecutive ones, in order."""
    runs: list[tuple[int, int]] = []
    for hour in sorted(set(hours)):
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + 1)
        else:
            runs.append((hour, hour + 1))
    return runs


def epoch_ms(value: datetime) -> int:
    """An instant as epoch milliseconds (exact, whatever the zone)."""
    return (value - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds as a UTC instant."""
    return datetime.fromtimestamp(ms / 1000, UTC)


INTERVALS = ("day", "hour")
CALENDAR = ("today", "week", "month")
_DURATION = re.compile(r"^([1-9]\d{0,5})([mhd])$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)
_EPOCH_MS = re.compile(r"^-?\d{1,18}$")


@dataclass(frozen=True, slots=True)
class Range:
    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def as_json(self) -> dict[str, str]:
        return {"from": iso(self.start), "to": iso(self.end)}


@dataclass(frozen=True, slots=True)
class Window:
    range: Range
    previous: Range
    tz: zoneinfo.ZoneInfo


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- parameters


def parse_zone(name: str | None, default: str) -> zoneinfo.ZoneInfo:
    name = name or default
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: `tz=Europe`
        raise BadParameter(
            "tz", f"unknown time zone {name!r}; expected an IANA zone like Europe/Berlin or UTC"
        ) from exc


def parse_instant(name: str, raw: str) -> datetime:
    """RFC 3339 (`2026-11-29T19:00:00Z`) or epoch milliseconds (what Grafana sends)."""
    text = raw.strip()
    value: datetime | None = None
    try:
        if _EPOCH_MS.match(text):
            value = _EARLIEST + timedelta(milliseconds=int(text))
        else:
            value = datetime.fromisoformat(text.replace("z", "Z"))
            value = value.astimezone(UTC) if value.tzinfo is not None else None
    except (ValueError, OverflowError):
        value = None
    if value is None:
        raise BadParameter(
            name,
            f"expected RFC 3339 with an offset (2026-11-29T19:00:00Z) or epoch milliseconds, got {raw!r}",
        )
    if not _EARLIEST <= value < _LATEST:
        raise BadParameter(name, f"must lie between 1970-01-01 and 9999-01-01, got {raw!r}")
    return value


def parse_duration(name: str, raw: str) -> timedelta:
    """A whole number of m, h or d (`d` = 24 h), at most 400 days."""
    match = _DURATION.match(raw.strip())
    if match is None:
        spans = ", or today, week, month" if name == "window" else ""
        raise BadParameter(name, f"expected a whole number of m, h or d (15m, 24h, 30d){spans}; got {raw!r}")
    length = int(match.group(1)) * _UNIT[match.group(2)]
    if length > MAX_RANGE:
        raise BadParameter(name, f"the range may span at most 400 days, got {raw!r}")
    return length


def parse_window(
    *,
    window: str | None,
    from_: str | None,
    to: str | None,
    tz: zoneinfo.ZoneInfo,
    default: str,
    now: datetime,
) -> Window:
    """The range of a request and its previous period. `from` wins over `window`; without `to`, the
    range ends at `now` (the service's clock) floored to the second."""
    end = parse_instant("to", to) if to else now.replace(microsecond=0)
    if from_:
        start = parse_instant("from", from_)
        if start >= end:
            raise BadParameter("from", "must be before `to`")
        if end - start > MAX_RANGE:
            raise BadParameter("from", "the range may span at most 400 days")
        return Window(Range(start, end), Range(start - (end - start), start), tz)
    spec = (window or default).strip()
    if spec in CALENDAR:
        # the span holding the range's last instant: with `to` exactly at local midnight, `today`
        # is the whole day before (never an empty range)
        start = calendar_start(spec, end - timedelta(microseconds=1), tz)
        prev_start = previous_calendar_start(spec, start, tz)
        current = Range(start, end)
        return Window(current, Range(prev_start, min(prev_start + current.length, start)), tz)
    length = parse_duration("window", spec)
    return Window(Range(end - length, end), Range(end - 2 * length, end - length), tz)


# --------------------------------------------------------------------------- calendar spans


def local_midnight(day: date, tz: zoneinfo.ZoneInfo) -> datetime:
    """The first instant (UTC) of the local date `day`.

    Usually local 00:00 (the first one, where a zone repeats midnight). Where a zone skips
    midnight (America/Havana springs from 00:00 to 01:00) the day begins at the transition; a date
    the zone skips entirely (Pacific/Apia, 2011-12-30) begins where the next one does.
    """
    naive = datetime.combine(day, time())
    guess = naive.replace(tzinfo=tz).astimezone(UTC)
    if guess.astimezone(tz).replace(tzinfo=None) == naive:
        return guess
    # midnight lies in a gap: the first second whose local date is `day`, by bisection between
    # two instants on either side of it whatever the offset (offsets lie within ±26 h)
    base = naive.replace(tzinfo=UTC)
    lo, hi = -27 * 3600, 27 * 3600
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (base + timedelta(seconds=mid)).astimezone(tz).date() >= day:
            hi = mid
        else:
            lo = mid
    return base + timedelta(seconds=hi)


def calendar_start(kind: str, at: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """Start (UTC) of the local day (`today`), ISO week or month containing `at`."""
    day = at.astimezone(tz).date()
    if kind == "week":
        day -= timedelta(days=day.weekday())
    elif kind == "month":
        day = day.replace(day=1)
    return local_midnight(day, tz)


def previous_calendar_start(kind: str, start: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """Start of the day, week or month before the one starting at `start`."""
    day = start.astimezone(tz).date()
    if kind == "today":
        prev = day - timedelta(days=1)
    elif kind == "week":
        prev = day - timedelta(days=7)
    else:
        prev = (day.replace(day=1) - timedelta(days=1)).replace(day=1)
    return local_midnight(prev, tz)


# --------------------------------------------------------------------------- buckets


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime  # UTC
    end: datetime
    date: date | None  # local date, for day buckets

    def as_json(self) -> dict[str, str]:
        """`{"t", "date"}` of a chart point (`date` for day buckets only)."""
        out = {"t": iso(self.start)}
        if self.date is not None:
            out["date"] = self.date.isoformat()
        return out


def buckets(rng: Range, tz: zoneinfo.ZoneInfo, interval: str) -> list[Bucket]:
    """The whole local days (or local hours) that overlap `rng`, in order, none empty.

    Day buckets run from local midnight to local midnight (23 or 25 hours across a DST change);
    hour buckets start on local whole hours (so at :15 UTC in Asia/Kathmandu). More than
    MAX_BUCKETS is a 400 naming `interval`.
    """
    out: list[Bucket] = []
    if interval == "day":
        day = rng.start.astimezone(tz).date()
        start = local_midnight(day, tz)
        while start < rng.end and len(out) <= MAX_BUCKETS:
            nxt = local_midnight(day + timedelta(days=1), tz)
            if nxt > start:  # a date the zone skips has no bucket
                out.append(Bucket(start, nxt, day))
            day, start = day + timedelta(days=1), nxt
    else:
        start = _local_hour(rng.start, tz)
        while start < rng.end and len(out) <= MAX_BUCKETS:
            nxt = _local_hour(start + timedelta(hours=1), tz)
            if nxt <= start:  # never step backwards, whatever a zone's changes do
                nxt = start + timedelta(hours=1)
            out.append(Bucket(start, nxt, None))
            start = nxt
    if len(out) > MAX_BUCKETS:
        raise BadParameter(
            "interval",
            f"interval={interval} gives more than {MAX_BUCKETS} buckets per series over this range; "
            "use interval=day or a shorter range",
        )
    return out


def _local_hour(at: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """The start (UTC) of the local whole hour containing `at`."""
    return at.astimezone(tz).replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def slot_ms(tz: zoneinfo.ZoneInfo, rng: Range) -> int:
    """The SQL grouping slot that folds exactly into the local hours and days of `tz` over `rng`.

    A local whole hour starts at a UTC instant ≡ −offset (mod 1 h), and zones change offset at whole
    local hours, so every bucket boundary falls on the greatest common divisor of an hour and the
    offsets in force: an hour in Europe/Berlin, 30 minutes in Asia/Kolkata, 15 in Asia/Kathmandu.
    It divides a UTC day, so no slot spans two price days. Offsets last months: probing each day
    (and both ends) finds them all.
    """
    probes = [rng.start + timedelta(days=d) for d in range((rng.end - rng.start).days + 1)]
    offsets = {(p.astimezone(tz).utcoffset() or timedelta(0)) for p in [*probes, rng.end]}
    return math.gcd(HOUR_MS, *(abs(o) // timedelta(milliseconds=1) for o in offsets))
