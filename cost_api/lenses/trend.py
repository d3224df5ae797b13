"""GET /v1/trend — the daily (or hourly) chart: one series of local buckets, or one per key.

The SQL groups by UTC slot (`windows.slot_ms`: one that every local hour starts on) and
`Groups.buckets` folds the slots into the local days or hours of `tz`, so SQLite (no zone
database) and Postgres give identical numbers. docs/windows.md explains the buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cost_api.aggregation.aggregator import (
    Aggregator,
    Dimension,
    Filters,
    Groups,
    TokenDirectory,
    Totals,
    data_quality_block,
    dimension,
    money,
    pricing_block,
)
from cost_api.errors import BadParameter
from cost_api.windows import INTERVALS, Bucket, Window, buckets, epoch_ms, iso, slot_ms

GROUP_BY = ("provider", "endpoint", "token", "model")
OTHER = "other"


@dataclass(frozen=True, slots=True)
class Series:
    key: str
    fields: dict[str, Any]  # the key's fields, as /v1/spend shows them (none for total and other)
    points: list[Totals]  # one per bucket


def series_key(dim: Dimension, fields: dict[str, Any]) -> str:
    """The series `key`: the key as displayed; a model is `provider/model`."""
    if dim.name == "model":
        return f"{fields['provider']}/{fields['model']}"
    return str(fields[dim.name])


def keyed_series(
    groups: Groups, dim: Dimension, directory: TokenDirectory, starts_ms: list[int], top: int
) -> list[Series]:
    """One series per displayed key, the largest `top` by spend; the rest summed as `other`. A key only
    bad rows have (see `Groups.counted`) is no series."""
    groups = groups.counted()
    if not len(groups):
        return []
    codes = np.empty(len(groups), dtype=np.int64)  # each group's series number
    by_raw: dict[Any, int] = {}  # raw key, as `Groups.by(*dim.columns)` has it → series number
    by_key: dict[str, int] = {}  # two token ids shown alike are one series, as `token=` filters them
    keys: list[tuple[str, dict[str, Any]]] = []
    columns = [groups.values(c) for c in dim.columns]  # decoded, as `key_fields` takes them
    for i, raw in enumerate(zip(*columns, strict=True) if len(columns) > 1 else columns[0]):
        code = by_raw.get(raw)
        if code is None:
            fields = dim.key_fields(raw, directory)
            key = series_key(dim, fields)
            code = by_raw[raw] = by_key.setdefault(key, len(keys))
            if code == len(keys):
                keys.append((key, fields))
        codes[i] = code
    spend = np.bincount(codes, weights=groups.spend, minlength=len(keys))
    order = sorted(range(len(keys)), key=lambda c: (-spend[c], keys[c][0]))
    out = [Series(keys[c][0], keys[c][1], groups.subset(codes == c).buckets(starts_ms)) for c in order[:top]]
    if len(order) > top:
        rest = np.isin(codes, order[top:])
        out.append(Series(OTHER, {"count": len(order) - top}, groups.subset(rest).buckets(starts_ms)))
    return out


def _points(bks: list[Bucket], totals: list[Totals]) -> list[dict[str, Any]]:
    return [
        {
            **bucket.as_json(),
            "spend": money(t.spend),
            "saved_by_cache": money(t.saved_by_cache),
            "requests": t.requests,
        }
        for bucket, t in zip(bks, totals, strict=True)
    ]


async def trend(
    agg: Aggregator, window: Window, *, interval: str, group_by: str | None, top: int, filters: Filters
) -> dict[str, Any]:
    if interval not in INTERVALS:
        raise BadParameter("interval", f"expected day or hour; got {interval!r}")
    dim = dimension(group_by, GROUP_BY) if group_by is not None else None
    bks = buckets(window.range, window.tz, interval)
    directory = await agg.tokens()
    starts_ms = [epoch_ms(b.start) for b in bks]
    groups = await agg.groups(
        window.range,
        filters=filters,
        directory=directory,
        dim=dim.dim if dim else None,
        slot_ms=slot_ms(window.tz, window.range),
        # local days that are UTC days (UTC, or a zone at +00:00 throughout) fold whole-day groups
        coarse=interval == "day" and all(start % 86_400_000 == 0 for start in starts_ms),
    )
    fresh = await agg.freshness()
    if dim is None:
        series = [Series("total", {}, groups.buckets(starts_ms))]
    else:
        series = keyed_series(groups, dim, directory, starts_ms, top)
    return {
        "interval": interval,
        "tz": window.tz.key,
        "range": window.range.as_json(),
        "group_by": group_by,
        "series": [{"key": s.key, **s.fields, "points": _points(bks, s.points)} for s in series],
        "pricing": pricing_block(groups, agg.pricing),
        "data_quality": data_quality_block(groups, fresh),
        "as_of": iso(fresh.now),
        "latest_request_at": iso(fresh.latest) if fresh.latest else None,
    }


def csv_columns(interval: str) -> tuple[str, ...]:
    return ("key", "t", *(("date",) if interval == "day" else ()), "spend", "saved_by_cache", "requests")


def csv_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (series key, bucket) of a trend answer."""
    return [{"key": s["key"], **point} for s in body["series"] for point in s["points"]]
