"""Groups read from the log and priced: the `groups` query's rows (and the row readers') taken apart
into the columns of a `Groups`, each group priced at the rates of its UTC day, size class and service
tier (a group is uniform in price), bad groups set apart as nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import numpy as np

from cost_api.aggregation.groups import COUNTS, EXCLUDED, NO_TIER_RATE, Groups, Vocab
from cost_api.pricing.table import Entry, PriceTable
from cost_api.store.result import Rows, Table
from cost_api.windows import DAY_MS

_EPOCH_DAY = date(1970, 1, 1)

# The columns `from_rows` reads, by name: the `groups` query's (and `rows_between`'s, `rows_after`'s).
ROW_COLUMNS = ("slot", "provider", "model", "key", "size_class", "cache_hit", *COUNTS, "quality", "tier")
_NO_ROWS: dict[str, tuple[Any, ...]] = dict.fromkeys(ROW_COLUMNS, ())
OFF_LOOP_ROWS = 20_000  # a read of more groups is priced in a worker thread (docs/performance.md)


def from_rows(
    vocab: Vocab,
    slot_ms: int,
    rows: Table | Sequence[tuple[Any, ...]],
    pricing: PriceTable | None,
    at_slot: int | None = None,
) -> Groups:
    """Columns from the `groups` query's rows (or `rows_between`'s), priced (each group is uniform in
    price): a store `Table` or `Rows`, read by its column names (ROW_COLUMNS); an empty plain list is
    no rows. `at_slot`: every row is of this slot, whatever the query said (a read of one slot for a
    whole span in which no rate changes: its groups are priced, and tagged, as of the span's first slot)."""
    if isinstance(rows, Table | Rows):
        cols = rows.columns()
        if at_slot is not None:
            cols = {**cols, "slot": np.full(len(rows), at_slot, dtype=np.int64)}
        return from_columns(vocab, slot_ms, cols, len(rows), pricing)
    if rows:
        raise TypeError("from_rows reads a query's Table or Rows, by their column names")
    return from_columns(vocab, slot_ms, _NO_ROWS, 0, pricing)


async def priced_rows(
    vocab: Vocab,
    slot_ms: int,
    rows: Table,
    pricing: PriceTable,
    at_slot: int | None = None,
    then: Callable[[Groups], Groups] | None = None,
) -> Groups:
    """`from_rows`, then `then` of its groups (a reduction: summed per key), in a worker thread for a read
    of more than OFF_LOOP_ROWS groups: decoding, pricing and summing a million token groups takes
    seconds, during which no other request would be answered."""

    def priced() -> Groups:
        groups = from_rows(vocab, slot_ms, rows, pricing, at_slot)
        return groups if then is None else then(groups)

    if len(rows) > OFF_LOOP_ROWS:
        return await asyncio.to_thread(priced)
    return priced()


def from_columns(
    vocab: Vocab, slot_ms: int, cols: Mapping[str, Sequence[Any]], n: int, pricing: PriceTable | None
) -> Groups:
    """`from_rows` on rows already taken apart into columns (`Table.columns()`: `n` values each, by
    name). A group's quality and tier come with its counts; a bad group's rows go to EXCLUDED, its
    other counts to 0 (as is a count that is NULL)."""
    quality = column_array(cols["quality"], np.int8, n)
    bad = quality != 0
    counts = {name: column_array(cols[name], np.int64, n, null=0) for name in COUNTS}
    counts[EXCLUDED] = np.where(bad, counts["requests"], 0)
    counts[NO_TIER_RATE] = np.zeros(n, dtype=np.int64)
    for name in COUNTS:
        counts[name][bad] = 0
    groups = Groups(
        vocab,
        slot_ms,
        column_array(cols["slot"], np.int64, n),
        vocab.encode(cols["provider"]),
        vocab.encode(cols["model"]),
        vocab.encode(cols["key"]),
        column_array(cols["size_class"], np.int8, n),
        column_array(cols["cache_hit"], np.bool_, n),
        counts,
        np.zeros(n),
        np.zeros(n),
        np.zeros(n, dtype=np.int32),
        quality,
        vocab.encode(cols["tier"]),
    )
    if pricing is not None and n:
        price(groups, pricing)
    return groups


def column_array(
    column: Sequence[Any] | np.ndarray, dtype: type[np.generic], n: int, null: int | None = None
) -> np.ndarray:
    """A column as an array of `dtype`: a columnar driver's as it came (NULL already 0), a row driver's
    values converted (`null`: what NULL reads as)."""
    if isinstance(column, np.ndarray):
        return column.astype(dtype, copy=False)
    values = column if null is None else (null if v is None else v for v in column)
    return np.fromiter(values, dtype=dtype, count=n)


def price(groups: Groups, pricing: PriceTable) -> None:
    """Fill spend, saved, priced_as and the no-tier-rate count: rates looked up once per (entry, UTC
    day, size class, tier). Bad groups are priced as nothing: no entry, spend 0, saved 0."""
    vocab = groups.vocab
    pairs = groups.provider.astype(np.int64) * (int(groups.model.max()) + 1) + groups.model
    _, pair_first, pair_inverse = np.unique(pairs, return_index=True, return_inverse=True)
    entries = [_match(pricing, vocab.value(groups.provider[i]), vocab.value(groups.model[i])) for i in pair_first]
    entry_codes = np.array([vocab.code(e.key) if e else 0 for e in entries], dtype=np.int32)
    priced_as = np.where(groups.quality == 0, entry_codes[pair_inverse.reshape(-1)], 0)
    groups.priced_as = priced_as

    entry_index = np.arange(len(entries), dtype=np.int64)[pair_inverse.reshape(-1)]
    day = groups.slot * groups.slot_ms // DAY_MS
    day0 = int(day.min())
    classes = int(groups.size_class.max()) + 1
    days = int(day.max()) - day0 + 1
    tier_codes, tier_index = np.unique(groups.tier, return_inverse=True)  # few: standard and a handful
    tiers = len(tier_codes)
    combo = ((entry_index * days + (day - day0)) * classes + groups.size_class) * tiers + tier_index.reshape(-1)
    uniques, inverse = np.unique(combo, return_inverse=True)
    inverse = inverse.reshape(-1)
    rates = np.zeros((len(uniques), 6))
    for j, value in enumerate(uniques.tolist()):
        entry = entries[value // (days * classes * tiers)]
        if entry is None:
            continue
        on = _EPOCH_DAY + timedelta(days=day0 + (value // (classes * tiers)) % days)
        tier = vocab.value(int(tier_codes[value % tiers]))
        r, standard = entry.tier_rates(on, (value // tiers) % classes, tier)
        rates[j] = (r.input, r.output, r.cache_read, r.cache_write, r.cache_write_1h, standard)
    r_in, r_out, r_read, r_write, r_write_1h, at_standard = (rates[inverse, k] for k in range(6))
    c = groups.counts
    billed = (
        c["prompt_tokens"] * r_in
        + c["completion_tokens"] * r_out
        + c["cache_read_tokens"] * r_read
        + (c["cache_write_tokens"] - c["cache_write_1h_tokens"]) * r_write
        + c["cache_write_1h_tokens"] * r_write_1h
    ) / 1_000_000
    avoided = (c["prompt_tokens_avoided"] * r_in + c["completion_tokens_avoided"] * r_out) / 1_000_000
    hit = groups.cache_hit
    groups.spend = np.where(hit | (priced_as == 0), 0.0, billed)
    groups.saved = np.where(hit & (priced_as != 0), avoided, 0.0)
    c[NO_TIER_RATE] = np.where((priced_as != 0) & (at_standard != 0), c["requests"], 0)


def _match(pricing: PriceTable, provider: str | None, model: str | None) -> Entry | None:
    """The price entry, or None: a missing provider or model (a bad row) matches nothing."""
    return None if provider is None or model is None else pricing.match(provider, model)
