"""The rollups' closed hours saved to a local file, so that a restart reads only what changed.

A snapshot holds every rollup's hourly cells up to its horizon (priced: it is only used with the
very price table that priced it); where the token rollup was past the memory cap, the pieces of the
unfiltered read by token for totals (`Views.totals`: each UTC day or hour summed per token, at 100M
rows ~0.85 s a day to read from the log); and per hour what the log held when they were taken: how
many rows, the highest id and the sum of the ids (query `hour_ids`, read from the created_at index).
At start-up the same figures are read again for the snapshot's hours (within the warm-up's id bound):
an hour whose figures differ (a late row, a delete, a backfill, another database behind the URL) or
whose saved cells do not count its rows is read again from the log (and a piece over it when next
asked); the hours closed since the save are read as at any warm-up. Updates in place (same ids,
other token counts) are left to the reconciliation sweep, as they are in a process that never
restarted. A snapshot is saved every SAVE_EVERY_HOURS closed hours, and once pieces read since the
last one cover as many (after they are read: not while answers are still having them read).

The file lives in a local cache directory, never in the gateway's database: one per database URL
(named by a hash of it), written whole to a temporary file and renamed over the old one, so several
workers can write and read it at once and a reader sees one whole snapshot or none. A file that
cannot be read, of another format or another price table is ignored (and replaced at the next
save): never a wrong answer, at worst a cold warm-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from cost_api.aggregation.groups import Groups, Vocab
from cost_api.aggregation.rollups import SAVE_EVERY_HOURS, Bound, Held
from cost_api.pricing.table import PriceTable
from cost_api.store.result import Rows
from cost_api.windows import HOUR_MS, from_ms

log = logging.getLogger("cost_api.aggregation.snapshot")

FORMAT = 2  # bumped whenever what a file holds, or what the rollups mean, changes
_CHECK_HOURS = 10 * 24  # hours per `hour_ids` query: each well inside query_timeout on a large log
_LABELS = {None: "base", "endpoint": "endpoint", "token": "token"}
_PIECES = "pieces"  # the pieces' cells, one after another, and per piece its hours and cells (`.bounds`)
_CODED = ("provider", "model", "key", "priced_as", "tier")
_ARRAYS = tuple(f.name for f in fields(Groups) if f.name not in ("vocab", "slot_ms", "counts"))

# per hour: (rows, highest id, sum of ids, the token counts of the row with the highest id)
HourIds = dict[int, tuple[int, ...]]
_FIGURES = 4
Fetch = Callable[..., Awaitable[Rows]]


def identity(pricing: PriceTable) -> str:
    """What a snapshot's cells depend on besides the log: the format and the whole price table."""
    described = repr((FORMAT, pricing.version, pricing.thresholds, pricing.entries))
    return hashlib.sha256(described.encode()).hexdigest()


def snapshot_path(directory: Path, database_url: str) -> Path:
    """The snapshot file of one database URL (a hash of it: no credentials in file names)."""
    return directory / f"rollups-{hashlib.sha256(database_url.encode()).hexdigest()[:16]}.npz"


def rows_per_hour(base: Groups) -> dict[int, int]:
    """The rows each hour of the base rollup counts: its requests and its bad rows."""
    if not len(base):
        return {}
    hours, inverse = np.unique(base.slot, return_inverse=True)
    total = np.bincount(inverse.reshape(-1), weights=base.counts["requests"] + base.counts["excluded"])
    return {int(h): round(n) for h, n in zip(hours.tolist(), total.tolist(), strict=True)}


class Snapshots:
    """One database's snapshot file: load it checked against the log, save it atomically."""

    def __init__(self, path: Path, pricing: PriceTable, fetch: Fetch) -> None:
        self.path = path
        self._identity = identity(pricing)
        self._fetch = fetch
        self.saved_horizon: int | None = None  # the horizon of the last snapshot saved or loaded
        self.saved_pieces = 0  # the hours its pieces cover
        self.saving = False  # a save runs (its file not written yet)

    def present(self) -> bool:
        return self.path.is_file()

    async def hour_ids(self, h0: int, h1: int, bound: Bound) -> HourIds:
        """The log's figures per hour of [h0, h1) within `bound`, `_CHECK_HOURS` per query."""
        found: HourIds = {}
        for start in range(h0, h1, _CHECK_HOURS):
            rows = await self._fetch(
                "hour_ids",
                start=from_ms(start * HOUR_MS),
                end=from_ms(min(h1, start + _CHECK_HOURS) * HOUR_MS),
                **bound.params(),
            )
            picked = rows.pick("hour", "n", "max_id", "id_sum", "last_tokens")
            found.update({int(h): tuple(int(v or 0) for v in figures) for h, *figures in picked})
        return found

    async def load(self, vocab: Vocab) -> tuple[Held, HourIds] | None:
        """The saved rollups (codes in `vocab`) and hour figures; None when missing, unreadable, of
        another format or price table."""
        if not self.present():
            return None
        try:
            loaded = await asyncio.to_thread(_read, self.path, self._identity)
        except Exception as exc:  # a torn, truncated or foreign file: rebuilt from the log
            log.warning("rollup snapshot %s ignored: %s", self.path, exc)
            return None
        if loaded is None:
            log.info("rollup snapshot %s ignored: another format or price table", self.path)
            return None
        horizon, values, columns, ids = loaded
        codes = vocab.encode(values)
        # a rollup dropped past the memory cap (memory.py) was saved without its cells
        parts = {
            dim: _groups(vocab, codes, columns, label) for dim, label in _LABELS.items() if f"{label}.slot" in columns
        }
        pieces = {}
        if f"{_PIECES}.slot" in columns:
            cells, start = _groups(vocab, codes, columns, _PIECES), 0
            for a, b, n in columns[f"{_PIECES}.bounds"].tolist():
                pieces[a, b], start = cells.subset(slice(start, start + n)), start + n
        held = Held(horizon, parts, pieces)
        self.saved_horizon, self.saved_pieces = horizon, held.piece_hours
        return held, ids

    @staticmethod
    def stale_hours(held: Held, saved: HourIds, logged: HourIds, h0: int) -> set[int]:
        """The hours of [h0, held.horizon) to read again: where the log's figures now (`logged`) differ
        from the saved ones, or the saved cells do not count the hour's rows."""
        counted = rows_per_hour(held.parts[None])
        differ = {h for h in set(logged) | set(saved) if logged.get(h) != saved.get(h)}
        differ |= {h for h, figures in saved.items() if counted.get(h, 0) != figures[0]}
        differ |= {h for h in counted if h not in saved}
        return {h for h in differ if h0 <= h < held.horizon}

    def due(self, held: Held) -> bool:
        """Whether to save `held` (what the rollups hold now): SAVE_EVERY_HOURS more hours closed, or
        covered by pieces, since the last save or load."""
        if self.saved_horizon is None:
            return True
        return (
            held.horizon - self.saved_horizon >= SAVE_EVERY_HOURS
            or held.piece_hours - self.saved_pieces >= SAVE_EVERY_HOURS
        )

    async def save(self, held: Held, vocab: Vocab, bound: Bound) -> None:
        """Write `held` (taken with the rollups holding exactly the ids of `bound`) with the log's
        hour figures; an hour whose cells no longer count its rows (a delete since) is saved without
        them, so that the next start reads it again."""
        self.saving = True
        try:
            await self._save(held, vocab, bound)
        finally:
            self.saving = False

    async def _save(self, held: Held, vocab: Vocab, bound: Bound) -> None:
        self.saved_horizon, self.saved_pieces = held.horizon, held.piece_hours
        base = held.parts[None]
        first = int(base.slot[0]) if len(base) else held.horizon
        ids = await self.hour_ids(first, held.horizon, bound)
        counted = rows_per_hour(base)
        ids = {h: v for h, v in ids.items() if counted.get(h, 0) == v[0]}  # else left out: read again
        cells = [*held.parts.values(), *held.pieces.values()]
        top = max((int(c.max()) for p in cells for c in _coded(p) if len(c)), default=0)
        values = [vocab.value(code) for code in range(top + 1)]
        try:
            await asyncio.to_thread(_write, self.path, self._identity, held, values, ids)
        except OSError as exc:
            log.warning("rollup snapshot not saved to %s: %s", self.path, exc)
            return
        log.info("rollup snapshot saved: %d hours to %s", held.horizon - first, self.path)


def _coded(part: Groups) -> list[np.ndarray]:
    return [getattr(part, name) for name in _CODED]


def _write(path: Path, ident: str, held: Held, values: list[str | None], ids: HourIds) -> None:
    """The snapshot as an .npz archive (`np.load` reads it), written one array at a time: the pieces'
    columns are concatenated only as each is written (at 100M rows they are ~400 MB)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            with zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, array in _arrays(ident, held, values, ids):
                    with archive.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _arrays(ident: str, held: Held, values: list[str | None], ids: HourIds) -> Iterator[tuple[str, np.ndarray]]:
    header = {"format": FORMAT, "identity": ident, "horizon": held.horizon, "vocab": values}
    yield "header", np.array(json.dumps(header))
    hours = sorted(ids)
    yield "ids", np.array([[h, *ids[h]] for h in hours], dtype=np.int64).reshape(-1, 1 + _FIGURES)
    for dim, label in _LABELS.items():
        part = held.parts.get(dim)
        if part is not None:  # else dropped past the memory cap
            yield from _columns(label, [part])
    if held.pieces:
        bounds = [(a, b, len(g)) for (a, b), g in held.pieces.items()]
        yield f"{_PIECES}.bounds", np.array(bounds, dtype=np.int64)
        yield from _columns(_PIECES, list(held.pieces.values()))


def _columns(label: str, parts: list[Groups]) -> Iterator[tuple[str, np.ndarray]]:
    """The columns of `parts` one after another, each concatenated as it is asked for."""

    def column(arrays: list[np.ndarray]) -> np.ndarray:
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    for name in _ARRAYS:
        yield f"{label}.{name}", column([getattr(p, name) for p in parts])
    for name in parts[0].counts:
        yield f"{label}.counts.{name}", column([p.counts[name] for p in parts])


def _read(path: Path, ident: str) -> tuple[int, list[str | None], dict[str, np.ndarray], HourIds] | None:
    with path.open("rb") as file, np.load(file, allow_pickle=False) as archive:
        header: dict[str, Any] = json.loads(str(archive["header"]))
        if header.get("format") != FORMAT or header.get("identity") != ident:
            return None
        columns = {name: archive[name] for name in archive.files if name not in ("header", "ids")}
        table = archive["ids"]
    ids = {int(h): tuple(figures) for h, *figures in table.tolist()}
    return int(header["horizon"]), list(header["vocab"]), columns, ids


def _groups(vocab: Vocab, codes: np.ndarray, columns: dict[str, np.ndarray], label: str) -> Groups:
    """One dimension's cells as saved, their strings coded in this process's `vocab`."""
    prefix = f"{label}.counts."
    counts = {name.removeprefix(prefix): column for name, column in columns.items() if name.startswith(prefix)}
    arrays = {name: columns[f"{label}.{name}"] for name in _ARRAYS}
    for name in _CODED:
        arrays[name] = codes[arrays[name]]
    return Groups(vocab, HOUR_MS, counts=counts, **arrays)
