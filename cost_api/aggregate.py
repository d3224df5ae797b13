"""The one aggregation path: SQL sums tokens per price-uniform group, Python prices the groups.

Every lens (summary, spend, trend, savings, live) reads `Groups` from here and folds them; no lens
prices rows itself and no lens runs SQL of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from .db import Database
from .errors import BadParameter
from .pricing import MAX_THRESHOLDS, PriceTable, Rates
from .windows import HOUR_MS, Range

_PAD = 2**62  # a threshold no request exceeds: pads the table's thresholds to MAX_THRESHOLDS
_EPOCH_DAY = date(1970, 1, 1)
_DAY_MS = 86_400_000
DIMENSIONS = ("endpoint", "token", "cache_key")


def money(value: float) -> float:
    return round(float(value), 6) + 0.0


def pct(part: float, whole: float) -> float | None:
    return None if not whole else round(part / whole * 100, 1) + 0.0


def change_pct(current: float, previous: float) -> float | None:
    return None if not previous else round((current - previous) / previous * 100, 1) + 0.0


def threshold_params(pricing: PriceTable) -> dict[str, int]:
    """`:t1 … :t8`: the table's long-context thresholds, padded to MAX_THRESHOLDS."""
    padded = list(pricing.thresholds) + [_PAD] * (MAX_THRESHOLDS - len(pricing.thresholds))
    return {f"t{i + 1}": t for i, t in enumerate(padded)}


@dataclass(frozen=True, slots=True)
class Filters:
    """The repeatable filters every analytics endpoint takes."""

    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()


@dataclass(slots=True)
class Totals:
    spend: float = 0.0
    saved_by_cache: float = 0.0
    requests: int = 0
    cache_hits: int = 0
    errors: int = 0
    unpriced_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    prompt_tokens_avoided: int = 0
    completion_tokens_avoided: int = 0


class TokenDirectory:
    """Displays tokens as `prefix…` + name, never the id; resolves token filters."""

    def __init__(self, labels: Iterable[tuple[str, str, str | None]]) -> None:
        self.labels = {token_id: (prefix, name) for token_id, prefix, name in labels}

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


@dataclass(slots=True)
class Groups:
    """Priced groups, column by column (numpy arrays of equal length)."""

    slot_ms: int
    slot: np.ndarray
    provider: np.ndarray
    model: np.ndarray
    key: np.ndarray
    cache_hit: np.ndarray
    counts: dict[str, np.ndarray]  # requests, errors and the token sums, by Totals field name
    spend: np.ndarray
    saved: np.ndarray
    priced_as: np.ndarray  # the matched entry's key, or None
    unpriced: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.unpriced = np.array([p is None for p in self.priced_as], dtype=bool)

    def __len__(self) -> int:
        return len(self.slot)

    def total(self, mask: np.ndarray | None = None) -> Totals:
        sel = slice(None) if mask is None else mask
        out = Totals(spend=float(self.spend[sel].sum()), saved_by_cache=float(self.saved[sel].sum()))
        for name, column in self.counts.items():
            setattr(out, name, int(column[sel].sum()))
        out.cache_hits = int(self.counts["requests"][sel][self.cache_hit[sel]].sum())
        out.unpriced_requests = int(self.counts["requests"][sel][self.unpriced[sel]].sum())
        return out

    def by(self, *columns: str) -> dict[Any, Totals]:
        """Totals per value of one column (or per tuple of several)."""
        if not len(self):
            return {}
        values = [getattr(self, c) for c in columns]
        keys = list(zip(*values, strict=True)) if len(columns) > 1 else list(values[0])
        index: dict[Any, int] = {}
        inverse = np.fromiter(
            (index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys)
        )
        folded = self._fold(inverse, len(index))
        return {key: folded[i] for key, i in index.items()}

    def buckets(self, starts_ms: Sequence[int]) -> list[Totals]:
        """Totals per bucket (ascending start instants, epoch ms): a group counts in the bucket
        holding its slot's start; slots before the first bucket count in the first."""
        index = np.searchsorted(np.asarray(starts_ms, dtype=np.int64), self.slot_starts(), side="right") - 1
        return self._fold(np.clip(index, 0, None), len(starts_ms))

    def _fold(self, inverse: np.ndarray, n: int) -> list[Totals]:
        """Totals per index 0…n-1, each group adding into `inverse[group]`."""
        sums = {name: np.bincount(inverse, weights=col, minlength=n) for name, col in self.counts.items()}
        spend = np.bincount(inverse, weights=self.spend, minlength=n)
        saved = np.bincount(inverse, weights=self.saved, minlength=n)
        hits = np.bincount(inverse, weights=self.counts["requests"] * self.cache_hit, minlength=n)
        unpriced = np.bincount(inverse, weights=self.counts["requests"] * self.unpriced, minlength=n)
        out: list[Totals] = []
        for i in range(n):
            totals = Totals(spend=float(spend[i]), saved_by_cache=float(saved[i]))
            for name in sums:
                setattr(totals, name, round(sums[name][i]))
            totals.cache_hits = round(hits[i])
            totals.unpriced_requests = round(unpriced[i])
            out.append(totals)
        return out

    def subset(self, mask: np.ndarray) -> Groups:
        return Groups(
            self.slot_ms,
            self.slot[mask],
            self.provider[mask],
            self.model[mask],
            self.key[mask],
            self.cache_hit[mask],
            {k: v[mask] for k, v in self.counts.items()},
            self.spend[mask],
            self.saved[mask],
            self.priced_as[mask],
        )

    def slot_starts(self) -> np.ndarray:
        """Each group's slot start in epoch milliseconds."""
        return self.slot * self.slot_ms


_COUNT_COLUMNS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "prompt_tokens_avoided",
    "completion_tokens_avoided",
)


class Aggregator:
    def __init__(self, db: Database, pricing: PriceTable) -> None:
        self.db = db
        self.pricing = pricing
        self._thresholds = threshold_params(pricing)

    async def tokens(self) -> TokenDirectory:
        try:
            return TokenDirectory(await self.db.fetch("token_labels"))
        except Exception as exc:  # no api_tokens table: tokens are shown by their id's start
            if "api_tokens" in str(exc):
                return TokenDirectory([])
            raise

    async def latest_request_at(self) -> datetime | None:
        rows = await self.db.fetch("latest_request")
        value = rows[0][0] if rows else None
        return None if value is None else datetime.fromtimestamp(int(value) / 1000, UTC)

    async def groups(
        self,
        rng: Range,
        *,
        filters: Filters = Filters(),
        directory: TokenDirectory | None = None,
        dim: str | None = None,
        slot_ms: int = HOUR_MS,
    ) -> Groups:
        if filters.tokens and directory is None:
            directory = await self.tokens()
        params: dict[str, Any] = {
            "start": rng.start,
            "end": rng.end,
            "slot_ms": slot_ms,
            "dim": dim or "",
            "providers": list(filters.providers) or None,
            "models": list(filters.models) or None,
            "endpoints": list(filters.endpoints) or None,
            **(directory or TokenDirectory([])).filter_params(filters.tokens),
            **self._thresholds,
        }
        rows = await self.db.fetch("groups", **params)
        return self._price(rows, slot_ms)

    async def groups_many(self, *requests: tuple[Range, dict[str, Any]]) -> list[Groups]:
        return list(await asyncio.gather(*(self.groups(rng, **kw) for rng, kw in requests)))

    def _price(self, rows: list[tuple[Any, ...]], slot_ms: int) -> Groups:
        n = len(rows)
        cols = list(zip(*rows, strict=True)) if rows else [()] * 14
        slot = np.fromiter(cols[0], dtype=np.int64, count=n)
        provider = np.array(cols[1], dtype=object)
        model = np.array(cols[2], dtype=object)
        key = np.array(cols[3], dtype=object)
        size_class = cols[4]
        cache_hit = np.fromiter((bool(v) for v in cols[5]), dtype=bool, count=n)
        counts = {
            name: np.fromiter((int(v or 0) for v in cols[6 + i]), dtype=np.int64, count=n)
            for i, name in enumerate(_COUNT_COLUMNS)
        }
        spend = np.zeros(n)
        saved = np.zeros(n)
        priced_as = np.empty(n, dtype=object)
        rates_cache: dict[tuple[str, int, int], Rates] = {}
        p, c = counts["prompt_tokens"], counts["completion_tokens"]
        cr, cw = counts["cache_read_tokens"], counts["cache_write_tokens"]
        pa, ca = counts["prompt_tokens_avoided"], counts["completion_tokens_avoided"]
        for i in range(n):
            entry = self.pricing.match(provider[i], model[i])
            if entry is None:
                continue
            priced_as[i] = entry.key
            day = int(slot[i]) * slot_ms // _DAY_MS
            cache_key = (entry.key, day, int(size_class[i]))
            rates = rates_cache.get(cache_key)
            if rates is None:
                rates = entry.rates(_EPOCH_DAY + timedelta(days=day), int(size_class[i]))
                rates_cache[cache_key] = rates
            if cache_hit[i]:
                saved[i] = (int(pa[i]) * rates.input + int(ca[i]) * rates.output) / 1_000_000
            else:
                spend[i] = (
                    int(p[i]) * rates.input
                    + int(c[i]) * rates.output
                    + int(cr[i]) * rates.cache_read
                    + int(cw[i]) * rates.cache_write
                ) / 1_000_000
        return Groups(slot_ms, slot, provider, model, key, cache_hit, counts, spend, saved, priced_as)


def pricing_block(groups: Groups, pricing: PriceTable) -> dict[str, Any]:
    """`pricing: {version, coverage_pct, unpriced}` for the groups of an answer's range."""
    total = groups.total()
    unpriced = []
    if total.unpriced_requests:
        sub = groups.subset(groups.unpriced)
        for (provider, model), t in sorted(
            sub.by("provider", "model").items(), key=lambda kv: -kv[1].requests
        ):
            unpriced.append(
                {
                    "provider": provider,
                    "model": model,
                    "requests": t.requests,
                    "prompt_tokens": t.prompt_tokens,
                    "completion_tokens": t.completion_tokens,
                    "prompt_tokens_avoided": t.prompt_tokens_avoided,
                    "completion_tokens_avoided": t.completion_tokens_avoided,
                }
            )
    coverage = 100.0 if not total.requests else pct(total.requests - total.unpriced_requests, total.requests)
    return {"version": pricing.version, "coverage_pct": coverage, "unpriced": unpriced}


def ranked(
    current: dict[Any, Totals], previous: dict[Any, Totals], top: int | None = None
) -> list[tuple[Any, Totals, float]]:
    """Keys by spend, descending (ties by key), each with its previous spend (0.0 where it had none)."""
    order = sorted(current.items(), key=lambda kv: (-kv[1].spend, str(kv[0])))[:top]
    return [(key, totals, previous[key].spend if key in previous else 0.0) for key, totals in order]


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
    """The `group_by` parameter, checked against what one endpoint accepts (else a 400 naming it)."""
    if group_by not in accepted:
        raise BadParameter("group_by", f"expected one of {', '.join(accepted)}; got {group_by!r}")
    return GROUP_BY[group_by]
