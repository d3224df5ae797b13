"""Windows, calendar spans, previous periods and local buckets (pure: no database).

Every expected instant is worked out by hand from the zone's offsets, noted beside it.
"""

from __future__ import annotations

import itertools
import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest

from cost_api.errors import BadParameter
from cost_api.windows import (
    HOUR_MS,
    MAX_BUCKETS,
    Range,
    buckets,
    local_midnight,
    parse_duration,
    parse_instant,
    parse_window,
    parse_zone,
    slot_ms,
)

from .logdb import at

UTC_TZ = zoneinfo.ZoneInfo("UTC")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")  # CET +01, CEST +02: 2026-03-29 is 23 h, 2026-10-25 25 h
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")  # EST −05, EDT −04: 2026-03-08 23 h, 2026-11-01 25 h
KATHMANDU = zoneinfo.ZoneInfo("Asia/Kathmandu")  # +05:45 all year
KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")  # +05:30 all year
TO = "2026-11-20T12:00:00Z"  # a Friday


def window(spec: str | None = None, *, to: str | None = TO, from_: str | None = None, tz=UTC_TZ):
    return parse_window(window=spec, from_=from_, to=to, tz=tz, default="30d", now=at(TO))


def span(rng: Range) -> tuple[str, str]:
    return rng.as_json()["from"], rng.as_json()["to"]


def bad(field: str, call, *args, **kwargs) -> str:
    with pytest.raises(BadParameter) as info:
        call(*args, **kwargs)
    assert info.value.field == field
    return info.value.message


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("spec", "current", "previous"),
    [
        ("15m", "2026-11-20T11:45:00Z", "2026-11-20T11:30:00Z"),
        ("1h", "2026-11-20T11:00:00Z", "2026-11-20T10:00:00Z"),
        ("24h", "2026-11-19T12:00:00Z", "2026-11-18T12:00:00Z"),
        ("7d", "2026-11-13T12:00:00Z", "2026-11-06T12:00:00Z"),
        ("14d", "2026-11-06T12:00:00Z", "2026-10-23T12:00:00Z"),
        ("30d", "2026-10-21T12:00:00Z", "2026-09-21T12:00:00Z"),
        ("90d", "2026-08-22T12:00:00Z", "2026-05-24T12:00:00Z"),  # 30 + 30 + 30 days back, twice
        ("400d", "2025-10-16T12:00:00Z", "2024-09-11T12:00:00Z"),  # the longest; 2024 is a leap year
    ],
)
def test_durations_end_at_to_and_their_previous_period_ends_where_they_start(
    spec: str, current: str, previous: str
) -> None:
    w = window(spec)
    assert span(w.range) == (current, TO)
    assert span(w.previous) == (previous, current)


def test_default_window_and_a_day_is_24_hours_even_across_a_dst_change() -> None:
    assert span(window(None).range) == ("2026-10-21T12:00:00Z", TO)  # default 30d
    # Berlin's 2026-03-29 has 23 hours, but `1d` is 24 h ending at `to`, not "the same local time"
    w = window("1d", to="2026-03-29T12:00:00Z", tz=BERLIN)
    assert span(w.range) == ("2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z")


@pytest.mark.parametrize("spec", ["", "0d", "1w", "1.5h", "-1d", "7 d", "7D", "d", "abc", "1000000d"])
def test_bad_durations_name_the_window(spec: str) -> None:
    message = bad("window", window, spec or " ")
    assert "15m, 24h, 30d" in message


@pytest.mark.parametrize(("longest", "too_long"), [("400d", "401d"), ("9600h", "9601h"), ("576000m", "576001m")])
def test_more_than_400_days_is_a_400(longest: str, too_long: str) -> None:
    assert window(longest).range.length == timedelta(days=400)
    assert "at most 400 days" in bad("window", window, too_long)


def test_parse_duration_names_its_own_parameter() -> None:
    assert parse_duration("top_window", "7d") == timedelta(days=7)
    assert "today" not in bad("top_window", parse_duration, "top_window", "7x")  # no calendar spans there
    bad("top_window", parse_duration, "top_window", "999999d")


# --------------------------------------------------------------------------- from / to


def test_from_and_to_in_rfc_3339_with_any_offset_and_in_epoch_milliseconds() -> None:
    # 08:00 at +05:45 is 02:15 UTC; 1795176000000 ms = 20777 days + 12 h after 1970 = 2026-11-20T12:00Z
    w = window(from_="2026-11-20T08:00:00+05:45", to="1795176000000")
    assert span(w.range) == ("2026-11-20T02:15:00Z", TO)
    assert span(w.previous) == ("2026-11-19T16:30:00Z", "2026-11-20T02:15:00Z")  # 9 h 45 m before
    assert parse_instant("to", "2026-11-20t12:00:00z") == at(TO)
    assert parse_instant("to", "2026-11-20 13:00:00+01:00") == at(TO)
    assert parse_instant("from", "0") == datetime(1970, 1, 1, tzinfo=UTC)  # Grafana's "all time"


def test_from_wins_over_window() -> None:
    w = window("not-a-window", from_="2026-11-20T11:00:00Z")
    assert span(w.range) == ("2026-11-20T11:00:00Z", TO)


def test_to_defaults_to_now_floored_to_the_second() -> None:
    now = at(TO) + timedelta(seconds=0.75)  # the service's clock
    w = parse_window(window="1h", from_=None, to=None, tz=UTC_TZ, default="30d", now=now)
    assert span(w.range) == ("2026-11-20T11:00:00Z", TO)
    assert w.range.end == at(TO)


@pytest.mark.parametrize(
    "raw",
    [
        "yesterday",
        "2026-11-20T12:00:00",  # no offset: which zone?
        "2026-11-20",
        "2026-13-01T00:00:00Z",
        "1795176000000.5",
        "99999999999999999",  # epoch ms past year 9999
        "-1",  # before 1970
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_bad_timestamps_name_their_parameter(raw: str) -> None:
    bad("to", window, "1h", to=raw)
    bad("from", window, from_=raw)


def test_from_not_before_to_and_ranges_over_400_days() -> None:
    assert "before" in bad("from", window, from_=TO)
    bad("from", window, from_="2026-11-20T12:00:01Z")
    assert "400 days" in bad("from", window, from_="2025-10-16T11:59:59Z")  # 400 d + 1 s
    assert span(window(from_="2025-10-16T12:00:00Z").range) == ("2025-10-16T12:00:00Z", TO)


def test_zones() -> None:
    assert parse_zone(None, "Europe/Berlin") == BERLIN
    assert parse_zone("Asia/Kathmandu", "UTC") == KATHMANDU
    for name in ["Mars/Olympus", "Europe", "europe/berlin", "../etc/passwd", "Europe/Berlin\x00"]:
        assert "IANA" in bad("tz", parse_zone, name, "UTC")


# --------------------------------------------------------------------------- calendar spans


def test_today_in_a_45_minute_zone() -> None:
    # 12:00Z is 17:45 in Kathmandu; its day began at 00:00 +05:45 = 2026-11-19T18:15Z (17 h 45 m ago)
    w = window("today", tz=KATHMANDU)
    assert span(w.range) == ("2026-11-19T18:15:00Z", TO)
    assert span(w.previous) == ("2026-11-18T18:15:00Z", "2026-11-19T12:00:00Z")


def test_today_with_to_exactly_at_local_midnight_is_the_whole_day_before() -> None:
    # [midnight, midnight) would be empty: the span is the one holding the range's last instant
    w = window("today", to="2026-11-19T18:15:00Z", tz=KATHMANDU)
    assert span(w.range) == ("2026-11-18T18:15:00Z", "2026-11-19T18:15:00Z")
    assert span(w.previous) == ("2026-11-17T18:15:00Z", "2026-11-18T18:15:00Z")
    utc = window("today", to="2026-11-20T00:00:00Z")
    assert span(utc.range) == ("2026-11-19T00:00:00Z", "2026-11-20T00:00:00Z")


def test_today_across_dst_compares_the_same_elapsed_time() -> None:
    # 2026-03-29 (23 h) began at 00:00 CET = 03-28T23:00Z; 13 h have elapsed by 12:00Z.
    w = window("today", to="2026-03-29T12:00:00Z", tz=BERLIN)
    assert span(w.range) == ("2026-03-28T23:00:00Z", "2026-03-29T12:00:00Z")
    assert span(w.previous) == ("2026-03-27T23:00:00Z", "2026-03-28T12:00:00Z")  # 13 h of the 28th
    # 2026-10-25 (25 h) began at 00:00 CEST = 10-24T22:00Z; by 22:30Z 24 h 30 m have elapsed, more
    # than the whole 24-hour day before: the previous period is that whole day
    w = window("today", to="2026-10-25T22:30:00Z", tz=BERLIN)
    assert span(w.range) == ("2026-10-24T22:00:00Z", "2026-10-25T22:30:00Z")
    assert span(w.previous) == ("2026-10-23T22:00:00Z", "2026-10-24T22:00:00Z")


def test_week_starts_on_monday() -> None:
    # Friday 2026-11-20 12:00Z; Monday 2026-11-16 00:00 CET = 11-15T23:00Z, 4 d 13 h ago
    w = window("week", tz=BERLIN)
    assert span(w.range) == ("2026-11-15T23:00:00Z", TO)
    assert span(w.previous) == ("2026-11-08T23:00:00Z", "2026-11-13T12:00:00Z")
    # on a Monday at 00:00 exactly, `week` is the whole week before
    w = window("week", to="2026-11-15T23:00:00Z", tz=BERLIN)
    assert span(w.range) == ("2026-11-08T23:00:00Z", "2026-11-15T23:00:00Z")


def test_week_across_dst_is_the_same_elapsed_time_not_the_same_wall_clock() -> None:
    # Wednesday 2026-10-28 12:00Z (13:00 CET); Monday 10-26 00:00 CET = 10-25T23:00Z: 2 d 13 h.
    # The week before began Monday 10-19 00:00 CEST = 10-18T22:00Z; + 2 d 13 h = 10-21T11:00Z.
    w = window("week", to="2026-10-28T12:00:00Z", tz=BERLIN)
    assert span(w.range) == ("2026-10-25T23:00:00Z", "2026-10-28T12:00:00Z")
    assert span(w.previous) == ("2026-10-18T22:00:00Z", "2026-10-21T11:00:00Z")


@pytest.mark.parametrize(
    ("to", "current", "previous"),
    [
        # 14 d 12 h into March; 14 d 12 h into February
        ("2026-03-15T12:00:00Z", "2026-03-01T00:00:00Z", ("2026-02-01T00:00:00Z", "2026-02-15T12:00:00Z")),
        # 30 d 12 h into January; December has 31 days: 30 d 12 h into December
        ("2026-01-31T12:00:00Z", "2026-01-01T00:00:00Z", ("2025-12-01T00:00:00Z", "2025-12-31T12:00:00Z")),
        # 30 d 12 h into May; April has only 30 days: all of April
        ("2026-05-31T12:00:00Z", "2026-05-01T00:00:00Z", ("2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z")),
        # 30 d 12 h into March: all of February's 28 days
        ("2026-03-31T12:00:00Z", "2026-03-01T00:00:00Z", ("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")),
        # 29 d into March 2028: exactly February's 29 days
        ("2028-03-30T00:00:00Z", "2028-03-01T00:00:00Z", ("2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z")),
        # `to` at the first instant of a month: the whole month before, against the one before that
        ("2026-03-01T00:00:00Z", "2026-02-01T00:00:00Z", ("2026-01-01T00:00:00Z", "2026-01-29T00:00:00Z")),
    ],
)
def test_month_and_its_previous_month_over_the_same_elapsed_time(
    to: str, current: str, previous: tuple[str, str]
) -> None:
    w = window("month", to=to)
    assert span(w.range) == (current, to)
    assert span(w.previous) == previous


def test_month_in_a_zone() -> None:
    # March began at 00:00 CET = 02-28T23:00Z; by 03-31T10:00Z (12:00 CEST) 30 d 11 h have passed:
    # more than February (from 01-31T23:00Z), so the previous period is all of February
    w = window("month", to="2026-03-31T10:00:00Z", tz=BERLIN)
    assert span(w.range) == ("2026-02-28T23:00:00Z", "2026-03-31T10:00:00Z")
    assert span(w.previous) == ("2026-01-31T23:00:00Z", "2026-02-28T23:00:00Z")


# --------------------------------------------------------------------------- local days


@pytest.mark.parametrize(
    ("tz", "day", "start"),
    [
        (BERLIN, date(2026, 3, 29), "2026-03-28T23:00:00Z"),  # still CET at midnight
        (BERLIN, date(2026, 3, 30), "2026-03-29T22:00:00Z"),  # CEST
        (NEW_YORK, date(2026, 11, 1), "2026-11-01T04:00:00Z"),  # EDT at midnight, EST from 02:00
        (NEW_YORK, date(2026, 11, 2), "2026-11-02T05:00:00Z"),
        (KATHMANDU, date(2026, 6, 1), "2026-05-31T18:15:00Z"),
        (KOLKATA, date(2026, 6, 1), "2026-05-31T18:30:00Z"),
        # Havana springs from 00:00 to 01:00 on 2026-03-08: the day begins at 01:00 CDT = 05:00Z
        (zoneinfo.ZoneInfo("America/Havana"), date(2026, 3, 8), "2026-03-08T05:00:00Z"),
        # Samoa skipped 2011-12-30: it "begins" where the 31st does, 00:00 +14 = 12-30T10:00Z
        (zoneinfo.ZoneInfo("Pacific/Apia"), date(2011, 12, 30), "2011-12-30T10:00:00Z"),
        (zoneinfo.ZoneInfo("Pacific/Apia"), date(2011, 12, 31), "2011-12-30T10:00:00Z"),
    ],
)
def test_local_midnight(tz: zoneinfo.ZoneInfo, day: date, start: str) -> None:
    assert local_midnight(day, tz) == at(start)


def day_buckets(start: str, end: str, tz: zoneinfo.ZoneInfo) -> list[tuple[str, str, float]]:
    """(local date, start, hours) per bucket."""
    return [
        (str(b.date), b.as_json()["t"], (b.end - b.start) / timedelta(hours=1))
        for b in buckets(Range(at(start), at(end)), tz, "day")
    ]


def test_day_buckets_over_berlin_dst_changes() -> None:
    assert day_buckets("2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z", BERLIN) == [
        ("2026-03-28", "2026-03-27T23:00:00Z", 24),
        ("2026-03-29", "2026-03-28T23:00:00Z", 23),
        ("2026-03-30", "2026-03-29T22:00:00Z", 24),
    ]
    assert day_buckets("2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z", BERLIN) == [
        ("2026-10-24", "2026-10-23T22:00:00Z", 24),
        ("2026-10-25", "2026-10-24T22:00:00Z", 25),
        ("2026-10-26", "2026-10-25T23:00:00Z", 24),
    ]


def test_day_buckets_over_new_york_dst_changes() -> None:
    assert day_buckets("2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z", NEW_YORK) == [
        ("2026-03-07", "2026-03-07T05:00:00Z", 24),
        ("2026-03-08", "2026-03-08T05:00:00Z", 23),
        ("2026-03-09", "2026-03-09T04:00:00Z", 24),
    ]
    assert day_buckets("2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z", NEW_YORK) == [
        ("2026-10-31", "2026-10-31T04:00:00Z", 24),
        ("2026-11-01", "2026-11-01T04:00:00Z", 25),
        ("2026-11-02", "2026-11-02T05:00:00Z", 24),
    ]


def test_day_buckets_in_30_and_45_minute_zones() -> None:
    # [00:00Z, 12:00Z) is 05:45–17:45 in Kathmandu and 05:30–17:30 in Kolkata: one local day each
    assert day_buckets("2026-06-01T00:00:00Z", "2026-06-01T12:00:00Z", KATHMANDU) == [
        ("2026-06-01", "2026-05-31T18:15:00Z", 24)
    ]
    # [18:00Z, 19:00Z) crosses Kathmandu's midnight at 18:15Z and Kolkata's at 18:30Z
    assert day_buckets("2026-06-01T18:00:00Z", "2026-06-01T19:00:00Z", KATHMANDU) == [
        ("2026-06-01", "2026-05-31T18:15:00Z", 24),
        ("2026-06-02", "2026-06-01T18:15:00Z", 24),
    ]
    assert day_buckets("2026-06-01T18:00:00Z", "2026-06-01T19:00:00Z", KOLKATA) == [
        ("2026-06-01", "2026-05-31T18:30:00Z", 24),
        ("2026-06-02", "2026-06-01T18:30:00Z", 24),
    ]


def test_day_buckets_where_midnight_or_a_whole_day_is_skipped() -> None:
    havana = zoneinfo.ZoneInfo("America/Havana")  # CST −05 until 2026-03-08 00:00, then CDT −04
    assert day_buckets("2026-03-07T12:00:00Z", "2026-03-08T12:00:00Z", havana) == [
        ("2026-03-07", "2026-03-07T05:00:00Z", 24),
        ("2026-03-08", "2026-03-08T05:00:00Z", 23),
    ]
    apia = zoneinfo.ZoneInfo(
        "Pacific/Apia"
    )  # −10 until 2011-12-29 24:00, then +14: no 30th (12-31T10:00Z is 2012-01-01 00:00 there)
    assert day_buckets("2011-12-29T12:00:00Z", "2011-12-31T10:00:00Z", apia) == [
        ("2011-12-29", "2011-12-29T10:00:00Z", 24),
        ("2011-12-31", "2011-12-30T10:00:00Z", 24),
    ]


def hour_starts(start: str, end: str, tz: zoneinfo.ZoneInfo) -> list[str]:
    out = buckets(Range(at(start), at(end)), tz, "hour")
    assert all(b.date is None and "date" not in b.as_json() for b in out)
    assert all(a.end == b.start for a, b in itertools.pairwise(out))
    return [b.as_json()["t"] for b in out]


def test_hour_buckets_are_local_hours() -> None:
    # Kathmandu's hours start at :15 UTC, Kolkata's at :30; the range's partial hours are buckets too
    assert hour_starts("2026-06-01T00:00:00Z", "2026-06-01T02:00:00Z", KATHMANDU) == [
        "2026-05-31T23:15:00Z",  # 05:00–06:00 local, of which 05:45–06:00 lies in the range
        "2026-06-01T00:15:00Z",
        "2026-06-01T01:15:00Z",
    ]
    assert hour_starts("2026-06-01T00:30:00Z", "2026-06-01T02:30:00Z", KOLKATA) == [
        "2026-06-01T00:30:00Z",
        "2026-06-01T01:30:00Z",
    ]
    # Berlin springs from 02:00 to 03:00 on 2026-03-29: local hours 01 and 03 are adjacent
    assert hour_starts("2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z", BERLIN) == [
        "2026-03-29T00:00:00Z",
        "2026-03-29T01:00:00Z",
    ]
    # and the 25-hour day has 25 hour buckets (02:00 comes twice)
    assert len(hour_starts("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", BERLIN)) == 25


def test_hour_buckets_in_a_half_hour_dst_change() -> None:
    # Lord Howe Island moves between +10:30 and +11 at 02:00 local; buckets stay contiguous
    lord_howe = zoneinfo.ZoneInfo("Australia/Lord_Howe")
    # 2026-10-04 02:00 +10:30 = 10-03T15:30Z becomes 02:30 +11: the local hour 02 is half an hour
    assert hour_starts("2026-10-03T14:30:00Z", "2026-10-03T16:30:00Z", lord_howe) == [
        "2026-10-03T14:30:00Z",  # 01:00 +10:30
        "2026-10-03T15:30:00Z",  # 02:30 +11 (the clock jumped from 02:00)
        "2026-10-03T16:00:00Z",  # 03:00 +11
    ]


def test_more_than_2000_buckets_names_interval() -> None:
    ok = Range(at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z") + timedelta(hours=MAX_BUCKETS))
    assert len(buckets(ok, UTC_TZ, "hour")) == MAX_BUCKETS
    too_many = Range(ok.start, ok.end + timedelta(minutes=1))
    assert "interval=day" in bad("interval", buckets, too_many, UTC_TZ, "hour")
    assert len(buckets(Range(ok.start, ok.start + timedelta(days=400)), UTC_TZ, "day")) == 400


@pytest.mark.parametrize(
    ("tz", "slot"),
    [
        (UTC_TZ, HOUR_MS),
        (BERLIN, HOUR_MS),
        (NEW_YORK, HOUR_MS),
        (KOLKATA, 1_800_000),
        (zoneinfo.ZoneInfo("America/St_Johns"), 1_800_000),  # −03:30 / −02:30
        (zoneinfo.ZoneInfo("Australia/Lord_Howe"), 1_800_000),  # +10:30 / +11
        (KATHMANDU, 900_000),
        (zoneinfo.ZoneInfo("Australia/Eucla"), 900_000),  # +08:45
    ],
)
def test_slot_divides_every_local_hour(tz: zoneinfo.ZoneInfo, slot: int) -> None:
    year = Range(at("2026-01-01T00:00:00Z"), at("2026-12-31T00:00:00Z"))
    assert slot_ms(tz, year) == slot
    assert 86_400_000 % slot == 0  # a slot never spans two UTC (price) days
    ms = [
        int(b.start.timestamp() * 1000) for b in buckets(Range(year.start, year.start + timedelta(days=80)), tz, "hour")
    ]
    assert all(m % slot == 0 for m in ms[1:])
