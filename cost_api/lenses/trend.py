"""GET /v1/trend — the daily (or hourly) chart: one series of local buckets, or one per key.

The SQL groups by UTC slot (`windows.slot_ms`: one that every local hour starts on) and
`Groups.buckets` folds the slots into the local days or hours of `tz`, so SQLite (no zone
database) and Postgres give identical numbers. docs/windows.md explains the buckets.

`chart` is the one computation of a chart over a `BucketSpec`: /v1/trend cuts its range with
`local_buckets`, Grafana's time series (cost_api.web.grafana) with `step_buckets`, whose `1d` is
/v1/trend's `day`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
from msgspec import Meta

from cost_api.aggregation.aggregator import (
    Aggregator,
    Dimension,
    Filters,
    Groups,
    TokenDirectory,
    Totals,
    dimension,
    money,
)
from cost_api.aggregation.blocks import (
    UNSET,
    AsOf,
    Block,
    Count,
    DataQuality,
    GroupByName,
    KeyEndpoint,
    KeyModel,
    KeyName,
    KeyPricedAs,
    KeyProvider,
    KeyTag,
    KeyToken,
    LatestRequestAt,
    Money,
    PricingCoverage,
    TimeRange,
    UnsetType,
    data_quality,
    pricing_coverage,
    time_range,
)
from cost_api.errors import BadParameter
from cost_api.windows import HOUR_MS, INTERVALS, Bucket, Range, Window, buckets, epoch_ms, from_ms, iso, slot_ms

GROUP_BY = ("provider", "endpoint", "token", "model", "tag")
OTHER = "other"
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """How a chart cuts its range: the buckets (in order, the first one holding the range's start),
    the SQL slot that folds exactly into them, and `coarse`: every bucket boundary is a UTC midnight,
    so whole UTC days may come as one group each (`Aggregator.groups`)."""

    buckets: list[Bucket]
    starts_ms: list[int]  # each bucket's start, epoch ms
    slot_ms: int
    coarse: bool


def local_buckets(rng: Range, tz: ZoneInfo, interval: str) -> BucketSpec:
    """The local days or hours of `tz` that overlap `rng` (/v1/trend's `interval`), in slots that every
    local hour starts on."""
    bks = buckets(rng, tz, interval)
    starts = [epoch_ms(b.start) for b in bks]
    # local days that are UTC days (UTC, or a zone at +00:00 throughout) fold whole-day groups
    coarse = interval == "day" and all(start % DAY_MS == 0 for start in starts)
    return BucketSpec(bks, starts, slot_ms(tz, rng), coarse)


def step_buckets(rng: Range, tz: ZoneInfo, step_ms: int) -> BucketSpec:
    """Buckets of `step_ms` over `rng` (Grafana's steps). A whole number of days is that many local
    days of `tz` per bucket, from the one holding the range's start: one day is /v1/trend's `day`
    exactly. A shorter step starts on UTC multiples of itself (so `1h` buckets start on the UTC hour,
    whatever the zone), the first one at or before the range's start, in slots of at most an hour."""
    if step_ms % DAY_MS == 0:
        days = local_buckets(rng, tz, "day")
        n = step_ms // DAY_MS
        if n == 1:
            return days
        bks = [
            Bucket(days.buckets[i].start, days.buckets[min(i + n, len(days.buckets)) - 1].end, days.buckets[i].date)
            for i in range(0, len(days.buckets), n)
        ]
        return BucketSpec(bks, days.starts_ms[::n], days.slot_ms, days.coarse)
    start, end = epoch_ms(rng.start), epoch_ms(rng.end)
    starts = list(range(start // step_ms * step_ms, end, step_ms))
    bks = [Bucket(from_ms(at), from_ms(at + step_ms), None) for at in starts]
    return BucketSpec(bks, starts, min(step_ms, HOUR_MS), coarse=False)


@dataclass(frozen=True, slots=True)
class Series:
    key: str
    fields: dict[str, Any]  # the key's fields, as /v1/spend shows them (none for total and other)
    points: list[Totals]  # one per bucket


def series_key(dim: Dimension, fields: dict[str, Any]) -> str:
    """The series `key`: the key as displayed; a model is `provider/model`."""
    if dim.name == "model":
        return f"{fields['provider']}/{fields['model']}"
    return str(fields[dim.fields[0]])


def key_codes(
    groups: Groups, dim: Dimension, directory: TokenDirectory
) -> tuple[np.ndarray, list[tuple[str, dict[str, Any]]]]:
    """Each group's key number, and the keys (`series_key`, key fields): each distinct raw key (the
    Vocab codes of `dim.columns`) is displayed once."""
    arrays = [getattr(groups, c).astype(np.int64) for c in dim.columns]
    combined = arrays[0]
    for array in arrays[1:]:
        combined = combined * (int(array.max()) + 1) + array
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    decoded = [groups.values(c)[first] for c in dim.columns]  # as `key_fields` takes them
    by_key: dict[str, int] = {}  # two token ids shown alike are one key, as `token=` filters them
    keys: list[tuple[str, dict[str, Any]]] = []
    numbers = np.empty(len(first), dtype=np.int64)
    for i, raw in enumerate(zip(*decoded, strict=True) if len(decoded) > 1 else decoded[0]):
        fields = dim.key_fields(raw, directory)
        key = series_key(dim, fields)
        numbers[i] = by_key.setdefault(key, len(keys))
        if numbers[i] == len(keys):
            keys.append((key, fields))
    return numbers[inverse.reshape(-1)], keys


def keyed_series(
    groups: Groups, dim: Dimension, directory: TokenDirectory, starts_ms: list[int], top: int
) -> list[Series]:
    """One series per displayed key, the largest `top` by spend; the rest summed as `other`. A key only
    bad rows have (see `Groups.counted`) is no series."""
    groups = groups.counted()
    if not len(groups):
        return []
    codes, keys = key_codes(groups, dim, directory)
    spend = np.bincount(codes, weights=groups.spend, minlength=len(keys))
    order = sorted(range(len(keys)), key=lambda c: (-spend[c], keys[c][0]))
    out = [Series(keys[c][0], keys[c][1], groups.subset(codes == c).buckets(starts_ms)) for c in order[:top]]
    if len(order) > top:
        rest = np.isin(codes, order[top:])
        out.append(Series(OTHER, {"count": len(order) - top}, groups.subset(rest).buckets(starts_ms)))
    return out


async def chart(
    agg: Aggregator,
    rng: Range,
    spec: BucketSpec,
    *,
    dim: Dimension | None,
    top: int,
    filters: Filters,
    directory: TokenDirectory,
) -> tuple[Groups, list[Series]]:
    """The groups of `rng` and their series over `spec`'s buckets: one `total`, or (with `dim`) one
    per key as `keyed_series` has them. /v1/trend and Grafana's time series are this computation."""
    groups = await agg.groups(
        rng,
        filters=filters,
        directory=directory,
        dim=dim.dim if dim else None,
        slot_ms=spec.slot_ms,
        coarse=spec.coarse,
    )
    if dim is None:
        return groups, [Series("total", {}, groups.buckets(spec.starts_ms))]
    return groups, keyed_series(groups, dim, directory, spec.starts_ms, top)


async def key_values(
    agg: Aggregator, rng: Range, group_by: str, *, filters: Filters, directory: TokenDirectory | None = None
) -> list[tuple[str, str]]:
    """(value, text) of every value of a `group_by` key logged in `rng` under `filters` (what a
    filter on that key can take), sorted by text. A model is its name alone; a token's value is its
    displayed prefix (what `token=` filters take), its text adds the name."""
    directory = directory or await agg.tokens()
    dim = dimension(group_by, GROUP_BY)
    groups = await agg.groups(rng, filters=filters, directory=directory, dim=dim.dim)
    column = "model" if group_by == "model" else dim.columns[0]
    found: dict[str, str] = {}
    for raw in groups.by(column):
        if group_by == "token":
            shown, name = directory.display(raw)
            found[shown] = f"{name} ({shown})" if name else shown
        elif raw is not None:
            found[str(raw)] = str(raw)
    return sorted(found.items(), key=lambda kv: (kv[1].lower(), kv[0]))


class TrendPoint(Block, kw_only=True):
    """One bucket of a series: its start, (day buckets) its local date, and its figures."""

    t: Annotated[str, Meta(description="the bucket's start, RFC 3339 UTC")]
    date: Annotated[str | UnsetType, Meta(description="interval day: the local date", examples=["2026-11-19"])] = UNSET
    spend: Money
    saved_by_cache: Money
    requests: Count


class TrendSeries(Block, kw_only=True):
    """One series: `total`, a key of `group_by` (with its key fields, as /v1/spend has them) or `other`
    (the keys past `top`, summed: `count` of them)."""

    key: Annotated[str, Meta(description="total, the key as displayed (a model: provider/model) or other")]
    provider: KeyProvider = UNSET
    model: KeyModel = UNSET
    priced_as: KeyPricedAs = UNSET
    endpoint: KeyEndpoint = UNSET
    token: KeyToken = UNSET
    name: KeyName = UNSET
    tag: KeyTag = UNSET
    count: Annotated[int, Meta(ge=1, description="other: how many keys it sums")] | UnsetType = UNSET
    points: list[TrendPoint]


class Trend(Block):
    """GET /v1/trend: the chart of the range, one point per local day (or hour) of `tz`."""

    interval: Literal["day", "hour"]
    tz: str
    range: TimeRange
    group_by: GroupByName | None
    series: list[TrendSeries]
    pricing: PricingCoverage
    data_quality: DataQuality
    as_of: AsOf
    latest_request_at: LatestRequestAt


def _points(bks: list[Bucket], totals: list[Totals]) -> list[TrendPoint]:
    return [
        TrendPoint(
            t=iso(bucket.start),
            date=UNSET if bucket.date is None else bucket.date.isoformat(),
            spend=money(t.spend),
            saved_by_cache=money(t.saved_by_cache),
            requests=t.requests,
        )
        for bucket, t in zip(bks, totals, strict=True)
    ]


async def trend(
    agg: Aggregator, window: Window, *, interval: str, group_by: str | None, top: int, filters: Filters
) -> Trend:
    if interval not in INTERVALS:
        raise BadParameter("interval", f"expected day or hour; got {interval!r}")
    dim = dimension(group_by, GROUP_BY) if group_by is not None else None
    spec = local_buckets(window.range, window.tz, interval)
    directory = await agg.tokens()
    groups, series = await chart(agg, window.range, spec, dim=dim, top=top, filters=filters, directory=directory)
    fresh = await agg.freshness()
    return Trend(
        interval=interval,  # type: ignore[arg-type]  # checked against INTERVALS above
        tz=window.tz.key,
        range=time_range(window.range),
        group_by=group_by,
        series=[TrendSeries(key=s.key, **s.fields, points=_points(spec.buckets, s.points)) for s in series],
        pricing=pricing_coverage(groups, agg.pricing),
        data_quality=data_quality(groups, fresh),
        as_of=iso(fresh.now),
        latest_request_at=iso(fresh.latest) if fresh.latest else None,
    )


def csv_columns(interval: str) -> tuple[str, ...]:
    return ("key", "t", *(("date",) if interval == "day" else ()), "spend", "saved_by_cache", "requests")


def csv_rows(body: Trend) -> list[dict[str, Any]]:
    """One row per (series key, bucket) of a trend answer."""
    return [{"key": s.key, **msgspec.to_builtins(point)} for s in body.series for point in s.points]
