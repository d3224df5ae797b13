"""What an answer is asked for, before any group is read: how fresh the log is, the filters, the
token directory that resolves token filters and displays tokens, the `group_by` dimensions, the query
parameters they become, and the ranking of keyed totals. Re-exported by `aggregator`, where the
lenses import them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from cost_api.aggregation.groups import Groups, Totals
from cost_api.aggregation.tags import OFF, TagBook
from cost_api.config.tags import TAG_KEY
from cost_api.errors import BadParameter
from cost_api.pricing.file import MAX_THRESHOLDS
from cost_api.pricing.table import PriceTable
from cost_api.store.result import Row

_PAD = 2**62  # a threshold no request exceeds: pads the table's thresholds to MAX_THRESHOLDS
# How far ahead of now a row may be dated (the gateway's clock running ahead of this one) and still
# count. Rows dated later are in no figure, no `latest_request_at` and no lag: they are counted in
# `data_quality` as `future_created_at` (docs/request-log.md).
FUTURE_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Freshness:
    """How fresh the log is at `now` (the aggregator's clock): its newest row dated up to
    `now + FUTURE_SKEW`, and how many rows are dated after that."""

    now: datetime
    latest: datetime | None
    future: int

    @property
    def cutoff(self) -> datetime:
        return self.now + FUTURE_SKEW


@dataclass(frozen=True, slots=True)
class Filters:
    """The repeatable filters every analytics endpoint takes."""

    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()  # `tag=key:value`: (key, value)


class TokenDirectory:
    """Displays tokens as `prefix…` + name, never the id; resolves token filters."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows  # (id, prefix, name), as read: the tag book is built from them too
        self.labels = {token_id: (prefix, name) for token_id, prefix, name in rows}
        self.book: asyncio.Future[TagBook] | None = None  # the tag book of these tokens, read once (aggregator)

    def display(self, token_id: str | None) -> tuple[str, str | None]:
        if token_id is None:
            return "anonymous", None
        label = self.labels.get(token_id)
        if label is not None:
            return f"{label[0]}…", label[1]
        shown = token_id[:11] if len(token_id) > 11 else token_id[: len(token_id) // 2]
        return f"{shown}…", None

    def filter_params(self, values: Sequence[str]) -> dict[str, Any]:
        """SQL parameters for `token=` filters: ids, displayed prefixes, or `anonymous`."""
        if not values:
            return {"token_filter": 0, "token_ids": None, "token_prefixes": None, "anonymous": 0}
        ids: list[str] = []
        prefixes: list[str] = []
        anonymous = 0
        for raw in values:
            value = raw.removesuffix("…").removesuffix("...")
            if value == "anonymous":
                anonymous = 1
                continue
            ids.append(value)
            ids.extend(tid for tid, (prefix, _) in self.labels.items() if prefix == value)
            if len(value) == 11:
                prefixes.append(value)
        return {"token_filter": 1, "token_ids": ids, "token_prefixes": prefixes, "anonymous": anonymous}


def filter_params(filters: Filters, directory: TokenDirectory | None) -> dict[str, Any]:
    """The filter parameters every filtered query takes (`:providers`, …, `:token_ids`, …)."""
    return {
        "providers": list(filters.providers) or None,
        "models": list(filters.models) or None,
        "endpoints": list(filters.endpoints) or None,
        **(directory or TokenDirectory([])).filter_params(filters.tokens),
        **OFF,  # the tag filter, set per span of time by the aggregator (`tag_spans`)
    }


def threshold_params(pricing: PriceTable) -> dict[str, int]:
    """`:t1 … :t8`: the table's long-context thresholds, padded to MAX_THRESHOLDS."""
    padded = list(pricing.thresholds) + [_PAD] * (MAX_THRESHOLDS - len(pricing.thresholds))
    return {f"t{i + 1}": t for i, t in enumerate(padded)}


def ranked(
    current: dict[Any, Totals], previous: dict[Any, Totals], top: int | None = None
) -> list[tuple[Any, Totals, float]]:
    """Keys by spend, descending (ties by key), each with its previous spend (0.0 where it had none)."""
    order = sorted(current.items(), key=lambda kv: (-kv[1].spend, str(kv[0])))[:top]
    return [(key, totals, previous[key].spend if key in previous else 0.0) for key, totals in order]


def top_ranked(current: Groups, previous: Groups, top: int) -> list[tuple[Any, Totals, float]]:
    """`ranked` by the `key` column, the `top` keys only: the rest of the keys are never folded."""
    leading = current.leading(top)
    keys = np.unique(leading.key)
    return ranked(leading.by("key"), previous.subset(np.isin(previous.key, keys)).by("key"), top)


@dataclass(frozen=True, slots=True)
class Dimension:
    """One `group_by` value: the SQL dimension it needs, the `Groups` columns it keys by, its fields."""

    name: str
    dim: str | None
    columns: tuple[str, ...]
    fields: tuple[str, ...]

    def key_fields(self, key: Any, directory: TokenDirectory) -> dict[str, Any]:
        """The answer's key fields for one key of `Groups.by(*self.columns)`."""
        if self.name == "token":
            token, name = directory.display(key)
            return {"token": token, "name": name}
        if self.name == "cache_key":
            return {"cache_key": None if key is None else key[:12]}
        if self.name.startswith("tag:"):
            return {"tag": key}
        if len(self.columns) > 1:
            return dict(zip(self.fields, key, strict=True))
        return {self.name: key}


GROUP_BY = {
    "provider": Dimension("provider", None, ("provider",), ("provider",)),
    "endpoint": Dimension("endpoint", "endpoint", ("key",), ("endpoint",)),
    "token": Dimension("token", "token", ("key",), ("token", "name")),
    "model": Dimension("model", None, ("provider", "model", "priced_as"), ("provider", "model", "priced_as")),
    "cache_key": Dimension("cache_key", "cache_key", ("key",), ("cache_key",)),
}


def dimension(group_by: str, accepted: Sequence[str]) -> Dimension:
    """The `group_by` parameter, checked against what one endpoint accepts (else a 400 naming it);
    `tag:<key>` where it accepts `tag` (the key is checked against the tokens' tags when read)."""
    if group_by.startswith("tag:") and "tag" in accepted:
        if not TAG_KEY.match(group_by[4:]):
            expected = "tag:<key> with a key of letters, digits, '_', '.' or '-'"
            raise BadParameter("group_by", f"expected {expected}; got {group_by!r}")
        return Dimension(group_by, group_by, ("key",), ("tag",))
    if group_by not in accepted or group_by == "tag":
        shown = ", ".join("tag:<key>" if a == "tag" else a for a in accepted)
        raise BadParameter("group_by", f"expected one of {shown}; got {group_by!r}")
    return GROUP_BY[group_by]
