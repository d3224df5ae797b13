"""Priced groups as columns: the unit every lens folds, whether it came from SQL or a rollup.

Strings (provider, model, the dimension key, the price entry) are interned once in a `Vocab` and
carried as integer codes, so that folding hundreds of thousands of groups is a few numpy calls.

Bad rows (a negative token count, no provider or model: the SQL's `quality` column) come in groups of
their own. Those groups count their rows in `counts["excluded"]` only: no requests, tokens, errors or
money, so every fold leaves them out; `excluded()` counts them per reason for `data_quality`.

The log's optional columns (docs/request-log.md) ride along: the service tier is part of the
price-uniform key (`tier`, a Vocab code, 0 = standard), the 1-hour cache writes and the requests with
estimated usage are counts, and pricing counts the requests of a tier the price has no rates for
(`counts["no_tier_rate_requests"]`: priced at standard, never silently).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

import numpy as np

from cost_api.store.result import Coded

COUNTS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "prompt_tokens_avoided",
    "completion_tokens_avoided",
    "cache_write_1h_tokens",  # the part of cache_write_tokens written for an hour
    "estimated_requests",  # rows whose usage_exact is false: estimated or zero counts
)
EXCLUDED = "excluded"  # the rows of a bad group: counted apart, in nothing else
NO_TIER_RATE = "no_tier_rate_requests"  # requests of a tier their price has no rates for: at standard
# A group's quality (the SQL's `quality` column) is the index of its reason here; 0 is a good group.
QUALITY = ("ok", "negative_tokens", "missing_provider_or_model")


class Vocab:
    """Interned strings: code 0 is None. New codes are handed out under a lock: a large read is priced
    in a worker thread (priced.py) while answers encode on the event loop."""

    def __init__(self) -> None:
        self._codes: dict[str | None, int] = {None: 0}
        self._values: list[str | None] = [None]
        self._array: np.ndarray | None = None
        self._lock = threading.Lock()

    def code(self, value: str | None) -> int:
        found = self._codes.get(value)
        if found is None:
            with self._lock:
                found = self._codes.get(value)
                if found is None:
                    self._values.append(value)
                    found = self._codes[value] = len(self._values) - 1
                    self._array = None
        return found

    def encode(self, values: Sequence[str | None] | Coded) -> np.ndarray:
        if isinstance(values, Coded):  # a columnar driver's text: each distinct value looked up once
            coded: np.ndarray = self.encode(values.values)[values.codes]
            return coded
        codes = self._codes
        get = codes.get
        out = np.empty(len(values), dtype=np.int32)
        for i, value in enumerate(values):
            found = get(value)
            out[i] = self.code(value) if found is None else found
        return out

    def codes_of(self, values: Sequence[str | None]) -> np.ndarray:
        """Codes of values already seen (unknown ones match nothing)."""
        return np.array([self._codes[v] for v in values if v in self._codes], dtype=np.int32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        if self._array is None or len(self._array) != len(self._values):
            self._array = np.array(self._values, dtype=object)
        decoded: np.ndarray = self._array[codes]
        return decoded

    def value(self, code: int) -> str | None:
        return self._values[code]


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
    cache_write_1h_tokens: int = 0
    estimated_requests: int = 0
    excluded: int = 0  # bad rows, in no other figure
    no_tier_rate_requests: int = 0


_TOTALS_FIELDS = tuple(f.name for f in fields(Totals))


def totals_at(sums: dict[str, np.ndarray], i: int) -> Totals:
    """The `Totals` of one key of `Groups.sums_by`, as Python numbers."""
    return Totals(*(sums[name][i].item() for name in _TOTALS_FIELDS))


_CODED = ("provider", "model", "key", "priced_as", "tier")
# the array columns, in the constructor's order before and after `counts`
_POSITIONAL = ("slot", "provider", "model", "key", "size_class", "cache_hit")
_TRAILING = ("spend", "saved", "priced_as", "quality", "tier")
_ALL_COUNTS = (*COUNTS, EXCLUDED, NO_TIER_RATE)
# a count column whose every value lies within ±NARROW_LIMIT is held as int32 (`Groups.narrowed`): half
# the bytes of the rollups' counts. 2^28, not 2^31, so that adding a few such columns cell by cell
# (requests + excluded) cannot overflow; a column past it stays int64, and sums are taken in int64 or
# float64 (`sum`, `bincount`) whatever a column's type
NARROW_LIMIT = 1 << 28


@dataclass(slots=True)
class Groups:
    """Priced groups, column by column (numpy arrays of equal length).

    `provider`, `model`, `key`, `priced_as` and `tier` are Vocab codes (`priced_as` 0: unpriced,
    `tier` 0: standard); `by()` and `values()` give them back as strings. `quality` > 0 marks a group
    of bad rows.
    """

    vocab: Vocab
    slot_ms: int
    slot: np.ndarray  # int64: slot index; slot start = slot * slot_ms (epoch ms)
    provider: np.ndarray
    model: np.ndarray
    key: np.ndarray
    size_class: np.ndarray  # int8
    cache_hit: np.ndarray  # bool
    counts: dict[str, np.ndarray]  # int64 (or int32: `narrowed`) per COUNTS name, EXCLUDED and NO_TIER_RATE
    spend: np.ndarray  # float64 USD
    saved: np.ndarray  # float64 USD
    priced_as: np.ndarray
    quality: np.ndarray  # int8: an index into QUALITY
    tier: np.ndarray  # int32: the service tier's Vocab code (0: standard)

    def __len__(self) -> int:
        return len(self.slot)

    @property
    def unpriced(self) -> np.ndarray:
        unpriced: np.ndarray = self.priced_as == 0
        return unpriced

    def counted(self) -> Groups:
        """The groups the figures count: without the bad rows' groups (whose figures are all 0)."""
        return self.subset(self.quality == 0) if self.quality.any() else self

    def excluded(self) -> dict[str, int]:
        """Bad rows per reason (QUALITY's names but `ok`)."""
        per = np.bincount(self.quality, weights=self.counts[EXCLUDED], minlength=len(QUALITY))
        return {name: round(per[code]) for code, name in enumerate(QUALITY) if code}

    def values(self, column: str) -> np.ndarray:
        data = getattr(self, column)
        return self.vocab.decode(data) if column in _CODED else data

    def total(self) -> Totals:
        """Every group summed (each column once: no pass per key)."""
        requests = self.counts["requests"]
        ints = {**self.counts, "cache_hits": requests * self.cache_hit, "unpriced_requests": requests * self.unpriced}
        sums: dict[str, Any] = {name: int(column.sum()) for name, column in ints.items()}
        sums |= {"spend": float(self.spend.sum()), "saved_by_cache": float(self.saved.sum())}
        return Totals(**{name: sums.get(name, 0) for name in _TOTALS_FIELDS})

    def by(self, *columns: str) -> dict[Any, Totals]:
        """Totals per value of one column (or per tuple of several), keyed by the decoded values;
        a value only bad rows have is no key."""
        counted = self.counted()
        keys, inverse = counted._keyed(columns)
        return dict(zip(keys, counted._fold(inverse, len(keys)), strict=True))

    def sums_by(self, *columns: str) -> tuple[list[Any], dict[str, np.ndarray]]:
        """`by` as columns: the keys, and per `Totals` field its sums in the keys' order (int64 arrays,
        float64 for spend and saved) — no `Totals` per key, for a lens that ranks 20,000 tokens and
        shows a few (`totals_at`)."""
        counted = self.counted()
        keys, inverse = counted._keyed(columns)
        return keys, counted._arrays(inverse, len(keys))

    def spend_by(self, *columns: str) -> dict[Any, float]:
        """`by`'s spend alone: what a lens needs of the previous period."""
        counted = self.counted()
        keys, inverse = counted._keyed(columns)
        return dict(zip(keys, np.bincount(inverse, weights=counted.spend, minlength=len(keys)).tolist(), strict=True))

    def _keyed(self, columns: Sequence[str]) -> tuple[list[Any], np.ndarray]:
        """The decoded values of `columns` present (one, or tuples of several), and each group's index
        among them."""
        if not len(self):
            return [], np.zeros(0, dtype=np.int64)
        arrays = [getattr(self, c).astype(np.int64) for c in columns]
        combined = arrays[0]
        for array in arrays[1:]:
            combined = combined * (int(array.max()) + 1) + array
        # the distinct values in order, and each group's index among them: a counting pass
        # (no sort) while the combined codes are small, as interned codes are
        if int(combined.max()) < 4 * len(combined) + 65_536:
            present = np.flatnonzero(np.bincount(combined))
            lookup = np.zeros(int(combined.max()) + 1, dtype=np.int64)
            lookup[present] = np.arange(len(present))
            inverse = lookup[combined]
            first = np.zeros(len(present), dtype=np.int64)
            first[inverse[::-1]] = np.arange(len(combined) - 1, -1, -1)
        else:
            _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
            inverse = inverse.reshape(-1)
        decoded = [self.values(c)[first] for c in columns]
        return (list(zip(*decoded, strict=True)) if len(columns) > 1 else list(decoded[0])), inverse

    def leading(self, top: int) -> Groups:
        """The counted groups of the `top` keys (the `key` column) by spend and of any key tied with the
        last of them: all a ranked top list folds, without a `Totals` per key of 20,000 tokens."""
        counted = self.counted()
        if not len(counted):
            return counted
        spend = np.bincount(counted.key, weights=counted.spend)
        codes = np.flatnonzero(np.bincount(counted.key))
        if len(codes) <= top:
            return counted
        per_key = spend[codes]
        least = np.partition(per_key, len(per_key) - top)[len(per_key) - top]  # the top-th largest
        return counted.subset(np.isin(counted.key, codes[per_key >= least]))

    def buckets(self, starts_ms: Sequence[int]) -> list[Totals]:
        """Totals per bucket (ascending start instants, epoch ms): a group counts in the bucket
        holding its slot's start; slots before the first bucket count in the first."""
        index = np.searchsorted(np.asarray(starts_ms, dtype=np.int64), self.slot_starts(), side="right") - 1
        return self._fold(np.clip(index, 0, None), len(starts_ms))

    def _fold(self, inverse: np.ndarray, n: int) -> list[Totals]:
        """Totals per index 0…n-1, each group adding into `inverse[group]`."""
        by_field = self._sums(inverse, n)
        return list(map(Totals, *(by_field[name] for name in _TOTALS_FIELDS)))

    def _sums(self, inverse: np.ndarray, n: int) -> dict[str, list[Any]]:
        """Per `Totals` field, its sum per index 0…n-1 (each group adding into `inverse[group]`), as
        Python numbers: whole columns converted at once (a loop over numpy scalars costs more than the
        sums themselves when n is many thousands)."""
        return {name: column.tolist() for name, column in self._arrays(inverse, n).items()}

    def _arrays(self, inverse: np.ndarray, n: int) -> dict[str, np.ndarray]:
        """`_sums` as arrays."""
        requests = self.counts["requests"]

        def summed(weights: np.ndarray) -> np.ndarray:
            return np.bincount(inverse, weights=weights, minlength=n)

        ints = {**self.counts, "cache_hits": requests * self.cache_hit, "unpriced_requests": requests * self.unpriced}
        by_field = {name: np.rint(summed(col)).astype(np.int64) for name, col in ints.items()}
        by_field |= {"spend": summed(self.spend), "saved_by_cache": summed(self.saved)}
        zeros = np.zeros(n, dtype=np.int64)
        return {name: by_field.get(name, zeros) for name in _TOTALS_FIELDS}

    def subset(self, mask: np.ndarray | slice) -> Groups:
        if isinstance(mask, np.ndarray) and mask.dtype == np.bool_:
            mask = np.flatnonzero(mask)  # one pass over the mask, not one per column: each column gathers its picks
        return Groups(
            self.vocab,
            self.slot_ms,
            self.slot[mask],
            self.provider[mask],
            self.model[mask],
            self.key[mask],
            self.size_class[mask],
            self.cache_hit[mask],
            {k: v[mask] for k, v in self.counts.items()},
            self.spend[mask],
            self.saved[mask],
            self.priced_as[mask],
            self.quality[mask],
            self.tier[mask],
        )

    def narrowed(self) -> Groups:
        """These groups with every count column that fits NARROW_LIMIT as int32: what the rollups hold
        (a 20,000-token log's token rollup is millions of cells, and its counts most of their bytes)."""

        def narrow(column: np.ndarray) -> np.ndarray:
            fits = column.dtype == np.int64 and (
                not len(column) or (int(column.min()) >= -NARROW_LIMIT and int(column.max()) <= NARROW_LIMIT)
            )
            return column.astype(np.int32) if fits else column

        narrowed = self.subset(slice(None))
        narrowed.counts = {k: narrow(v) for k, v in self.counts.items()}
        return narrowed

    def _rebuilt(self, build: Callable[[Callable[[Groups], np.ndarray]], np.ndarray]) -> Groups:
        """New groups whose every column is `build(column getter)`: one column at a time."""
        columns = {name: build(attrgetter(name)) for name in (*_POSITIONAL, *_TRAILING)}
        counts = {k: build(_count_getter(k)) for k in self.counts}
        return Groups(self.vocab, self.slot_ms, counts=counts, **columns)

    def insert_sorted(self, added: Groups) -> Groups:
        """These groups (sorted by slot) with `added` inserted in slot order: no sort of the whole."""
        if not len(added):
            return self
        added = added.subset(np.argsort(added.slot, kind="stable"))
        at = np.searchsorted(self.slot, added.slot, side="right")

        def build(get: Callable[[Groups], np.ndarray]) -> np.ndarray:
            column, values = get(self), get(added)  # np.insert casts to the column's type: widen it first
            return np.insert(column.astype(np.result_type(column, values), copy=False), at, values)

        return self._rebuilt(build)

    def splice(self, cuts: Sequence[tuple[int, int]], pieces: Sequence[Groups]) -> Groups:
        """These groups with the rows [lo, hi) of each cut (ascending, disjoint) replaced by the piece
        of the same index: one copy of each column, no sort."""

        def build(get: Callable[[Groups], np.ndarray]) -> np.ndarray:
            column, out, done = get(self), [], 0
            for (lo, hi), piece in zip(cuts, pieces, strict=True):
                out += [column[done:lo], get(piece)]
                done = hi
            return np.concatenate([*out, column[done:]])

        return self._rebuilt(build)

    def daily(self) -> Groups:
        """Hourly groups summed per UTC day (slot = the day's first hour), for windows that only
        total over their range."""
        return self.collapsed(24)

    def collapsed(self, slots: int = 1, *, keep_sizes: bool = False) -> Groups:
        """One group per `slots` slots, provider, model, key, tier, cache hit and quality: priced already,
        so the size class no longer matters (slot = the first slot of each run of `slots`) — unless
        `keep_sizes`: then per size class too (a what-if reprices groups by their size class)."""
        if not len(self):
            return self
        day = self.slot // slots
        sizes = (self.size_class,) if keep_sizes else ()
        columns = (day, self.provider, self.model, self.key, self.tier, *sizes)
        codes = [np.unique(c, return_inverse=True)[1].reshape(-1) for c in columns]
        combined = np.zeros(len(self), dtype=np.int64)
        for compact in codes:
            combined = combined * (int(compact.max()) + 1) + compact
        combined = (combined * 2 + self.cache_hit) * len(QUALITY) + self.quality
        _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        n = len(first)

        def summed(column: np.ndarray) -> np.ndarray:
            return np.bincount(inverse, weights=column, minlength=n)

        return Groups(
            self.vocab,
            self.slot_ms,
            day[first] * slots,
            self.provider[first],
            self.model[first],
            self.key[first],
            self.size_class[first] if keep_sizes else np.zeros(n, dtype=np.int8),
            self.cache_hit[first],
            {k: summed(v).round().astype(np.int64) for k, v in self.counts.items()},
            summed(self.spend),
            summed(self.saved),
            self.priced_as[first],
            self.quality[first],
            self.tier[first],
        )

    def slot_starts(self) -> np.ndarray:
        """Each group's slot start in epoch milliseconds."""
        return self.slot * self.slot_ms

    @staticmethod
    def empty(vocab: Vocab, slot_ms: int) -> Groups:
        """No groups: every column empty, of the type `priced.from_columns` gives it."""
        code = np.zeros(0, dtype=np.int32)
        small = np.zeros(0, dtype=np.int8)
        counts = {name: np.zeros(0, dtype=np.int64) for name in _ALL_COUNTS}
        cache_hit = np.zeros(0, dtype=bool)
        return Groups(
            vocab,
            slot_ms,
            np.zeros(0, dtype=np.int64),
            code,
            code,
            code,
            small,
            cache_hit,
            counts,
            np.zeros(0),
            np.zeros(0),
            code,
            small,
            code,
        )

    @staticmethod
    def concat(vocab: Vocab, slot_ms: int, parts: Sequence[Groups | None]) -> Groups:
        """The groups of every part (None: none) in one."""
        present = [p for p in parts if p is not None and len(p)]
        if not present:
            return Groups.empty(vocab, slot_ms)
        if len(present) == 1:
            return present[0]
        parts = present
        assert all(p.slot_ms == slot_ms for p in parts)
        cat = np.concatenate
        return Groups(
            vocab,
            slot_ms,
            cat([p.slot for p in parts]),
            cat([p.provider for p in parts]),
            cat([p.model for p in parts]),
            cat([p.key for p in parts]),
            cat([p.size_class for p in parts]),
            cat([p.cache_hit for p in parts]),
            {k: cat([p.counts[k] for p in parts]) for k in _ALL_COUNTS},
            cat([p.spend for p in parts]),
            cat([p.saved for p in parts]),
            cat([p.priced_as for p in parts]),
            cat([p.quality for p in parts]),
            cat([p.tier for p in parts]),
        )


def _count_getter(name: str) -> Callable[[Groups], np.ndarray]:
    """The getter of one of the `counts` columns (for `Groups._rebuilt`)."""
    return lambda groups: groups.counts[name]
