"""Time ranges: windows, calendar spans in a zone, previous periods and local buckets.

Ranges are half-open `[start, end)` of aware UTC datetimes. SQLite has no zone database, so local
days are never computed in SQL: the SQL groups by a UTC slot (an hour, or a quarter hour where the
zone's offset is not whole hours) and Python folds slots into local buckets.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .errors import BadParameter

MAX_RANGE = timedelta(days=400)
MAX_BUCKETS = 2000
HOUR_MS = 3_600_000
QUARTER_MS = 900_000
_DURATION = re.compile(r"^([1-9]\d{0,5})([mhd])$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
CALENDAR = ("today", "week", "month")


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


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def parse_zone(name: str | None, default: str) -> zoneinfo.ZoneInfo:
    name = name or default
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise BadParameter(
            "tz", f"unknown time zone {name!r}; expected an IANA zone like Europe/Berlin"
        ) from exc


def parse_instant(name: str, raw: str) -> datetime:
    """RFC 3339 (`2026-11-29T19:00:00Z`) or epoch milliseconds (what Grafana sends)."""
    text = raw.strip()
    if re.fullmatch(r"-?\d{1,15}", text):
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise BadParameter(
            name,
            f"expected RFC 3339 with an offset (2026-11-29T19:00:00Z) or epoch milliseconds, got {raw!r}",
        )
    return value.astimezone(UTC)


def parse_duration(name: str, raw: str) -> timedelta:
    match = _DURATION.match(raw.strip())
    if match is None:
        raise BadParameter(
            name, f"expected a whole number of m, h or d (15m, 24h, 30d), or today, week, month; got {raw!r}"
        )
    return int(match.group(1)) * _UNIT[match.group(2)]


def calendar_start(kind: str, at: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """Start (UTC) of the local day, ISO week or month containing `at`."""
    local = at.astimezone(tz)
    day = local.date()
    if kind == "week":
        day -= timedelta(days=day.weekday())
    elif kind == "month":
        day = day.replace(day=1)
    return local_midnight(day, tz)


def local_midnight(day: date, tz: zoneinfo.ZoneInfo) -> datetime:
    """The first instant of a local date, as UTC (a zone may skip midnight: take the first valid time)."""
    naive = datetime(day.year, day.month, day.day)
    for minutes in range(0, 24 * 60, 15):
        candidate = (naive + timedelta(minutes=minutes)).replace(tzinfo=tz)
        as_utc = candidate.astimezone(UTC)
        if as_utc.astimezone(tz).replace(tzinfo=None) == candidate.replace(tzinfo=None):
            return as_utc
    raise AssertionError(f"no valid local time on {day} in {tz}")


def previous_calendar_start(kind: str, start: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    day = start.astimezone(tz).date()
    if kind == "today":
        prev = day - timedelta(days=1)
    elif kind == "week":
        prev = day - timedelta(days=7)
    else:
        prev = (day.replace(day=1) - timedelta(days=1)).replace(day=1)
    return local_midnight(prev, tz)


def parse_window(
    *,
    window: str | None,
    from_: str | None,
    to: str | None,
    tz: zoneinfo.ZoneInfo,
    default: str,
    now: datetime | None = None,
) -> Window:
    end = parse_instant("to", to) if to else (now or now_utc())
    if from_:
        start = parse_instant("from", from_)
        if start >= end:
            raise BadParameter("from", "must be before `to`")
        current = Range(start, end)
        previous = Range(start - current.length, start)
    else:
        spec = (window or default).strip()
        if spec in CALENDAR:
            start = calendar_start(spec, end, tz)
            if start >= end:  # `to` is exactly at the boundary: the span is the one before
                start = previous_calendar_start(spec, start, tz)
            prev_start = previous_calendar_start(spec, start, tz)
            current = Range(start, end)
            previous = Range(prev_start, min(prev_start + current.length, start))
        else:
            length = parse_duration("window", spec)
            current = Range(end - length, end)
            previous = Range(end - 2 * length, end - length)
    if current.length > MAX_RANGE:
        raise BadParameter("from" if from_ else "window", "the range may span at most 400 days")
    return Window(current, previous, tz)


def slot_ms(tz: zoneinfo.ZoneInfo, rng: Range) -> int:
    """The SQL grouping slot that folds exactly into local hours and days of `tz` over `rng`."""
    probe = rng.start
    while probe <= rng.end + timedelta(days=1):
        offset = probe.astimezone(tz).utcoffset() or timedelta(0)
        if offset % timedelta(hours=1):
            return QUARTER_MS
        probe += timedelta(days=1)
    return HOUR_MS


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime  # UTC
    end: datetime
    date: date | None  # local date, for day buckets


def buckets(rng: Range, tz: zoneinfo.ZoneInfo, interval: str) -> list[Bucket]:
    """The whole local days (or local hours) that overlap `rng`."""
    out: list[Bucket] = []
    if interval == "day":
        day = rng.start.astimezone(tz).date()
        start = local_midnight(day, tz)
        while start < rng.end:
            nxt = local_midnight(day + timedelta(days=1), tz)
            out.append(Bucket(start, nxt, day))
            day, start = day + timedelta(days=1), nxt
            if len(out) > MAX_BUCKETS:
                break
    else:
        # local hours: whole UTC hours shifted by the zone's sub-hour offset at that instant
        local = rng.start.astimezone(tz)
        start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        while start < rng.end:
            nxt = (start + timedelta(hours=1)).astimezone(tz)
            nxt = nxt.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
            if nxt <= start:
                nxt = start + timedelta(hours=1)
            out.append(Bucket(start, nxt, None))
            start = nxt
            if len(out) > MAX_BUCKETS:
                break
    if len(out) > MAX_BUCKETS:
        raise BadParameter(
            "interval", f"more than {MAX_BUCKETS} buckets per series; use a shorter range or interval=day"
        )
    return out
