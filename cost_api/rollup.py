"""Closed hours, aggregated once and kept in memory: one rollup per lens dimension.

Past hours do not change once `rollup_grace` has passed, so their priced groups are read once
and kept as numpy columns, sorted by hour: the base rollup (provider, model, size class, cache
hit) serves totals, providers, models and trends; the endpoint rollup the endpoint lens and
budgets; the token rollup the token lens. A request takes whole closed hours from here and reads
only the rest (the window's partial edges and the open hours) from the database, so every answer
is exact and seconds-fresh. These are aggregates of what the database holds, not a response cache:
when the oldest row moves (a retention job, a backfill) the affected hours are read again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import numpy as np

from .db import gather_or_cancel
from .groups import Groups

log = logging.getLogger("cost_api.rollup")

HOUR_MS = 3_600_000
DIMENSIONS: tuple[str | None, ...] = (None, "endpoint", "token")
_CHUNK_HOURS = 24  # a day per query: well inside query_timeout on a large log

# reads the `groups` query over whole hours [h0, h1) for one dimension, unfiltered
HourReader = Callable[[str | None, int, int], Awaitable[Groups]]


def floor_hour(ms: int) -> int:
    return ms // HOUR_MS


def ceil_hour(ms: int) -> int:
    return -(-ms // HOUR_MS)


class Rollups:
    def __init__(self, read: HourReader, grace_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._read = read
        self._grace_ms = int(grace_seconds * 1000)
        self._clock = clock
        self.parts: dict[str | None, Groups] = {}
        self.days: dict[str | None, Groups] = {}
        self.horizon = 0  # hours < horizon are closed and held (hours before the log's start are empty)
        self.oldest_ms: int | None = None
        self.ready = False
        self.lock = asyncio.Lock()
        self.warm_seconds: float | None = None

    def closed_horizon(self) -> int:
        """The first hour that is not closed yet: hours end + grace before now are closed."""
        now_ms = int(self._clock() * 1000)
        return floor_hour(now_ms - self._grace_ms)

    def pick(self, dim: str | None, endpoints: bool, tokens: bool) -> tuple[bool, str | None]:
        """Whether a rollup serves a read of `dim` with these filters, and which one."""
        if not self.ready or dim not in DIMENSIONS or (endpoints and tokens):
            return False, None
        needed = "endpoint" if endpoints else "token" if tokens else dim
        return (needed == dim or dim is None), needed

    def slice(self, dim: str | None, h0: int, h1: int, *, coarse: bool = False) -> Groups:
        """Hours [h0, h1) of one rollup; `coarse`: whole UTC days as one group per day and key."""
        if not coarse:
            return _between(self.parts[dim], h0, h1)
        d0, d1 = -(-h0 // 24), h1 // 24
        if d0 >= d1:
            return _between(self.parts[dim], h0, h1)
        vocab = self.parts[dim].vocab
        pieces = [
            _between(self.parts[dim], h0, d0 * 24),
            _between(self.days[dim], d0 * 24, d1 * 24),
            _between(self.parts[dim], d1 * 24, h1),
        ]
        return Groups.concat(vocab, HOUR_MS, pieces)

    def _refresh_days(self) -> None:
        """The daily rollups: every whole UTC day before the horizon, summed from the hours."""
        last_day = self.horizon // 24
        self.days = {dim: _between(part, 0, last_day * 24).daily() for dim, part in self.parts.items()}

    async def warm(self, oldest_ms: int | None) -> None:
        """Read every closed hour of the log (chunk by chunk, newest first) and start serving."""
        started = time.monotonic()
        async with self.lock:
            horizon = self.closed_horizon()
            self.oldest_ms = oldest_ms
            first = horizon if oldest_ms is None else min(floor_hour(oldest_ms), horizon)
            self.parts = await self._load_all(first, horizon)
            self.horizon = horizon
            self._refresh_days()
            self.ready = True
        self.warm_seconds = time.monotonic() - started
        cells = {d: len(p) for d, p in self.parts.items()}
        log.info("rollups warm in %.1fs: %s cells", self.warm_seconds, cells)

    async def _load_all(self, h0: int, h1: int) -> dict[str | None, Groups]:
        """Hours [h0, h1) of every rollup: the endpoint and token ones read side by side (two
        connections, two cores), the base one summed from the endpoint one."""
        endpoint, token = await gather_or_cancel(self._load("endpoint", h0, h1), self._load("token", h0, h1))
        base = endpoint.subset(slice(None))
        base.key = np.zeros(len(base), dtype=np.int32)
        return {None: base.collapsed(), "endpoint": endpoint, "token": token}

    async def _load(self, dim: str | None, h0: int, h1: int) -> Groups:
        """Hours [h0, h1) of one dimension, a day per query, sorted by hour."""
        chunks = [await self._read(dim, h1, h1)]
        end = h1
        while end > h0:
            start = max(h0, end - _CHUNK_HOURS)
            chunks.append(await self._read(dim, start, end))
            end = start
        return _sorted(Groups.concat(chunks[0].vocab, HOUR_MS, chunks))

    async def advance(self) -> None:
        """Take in the hours that closed since the last call."""
        async with self.lock:
            horizon = self.closed_horizon()
            if not self.ready or horizon <= self.horizon:
                return
            fresh = await self._load_all(self.horizon, horizon)
            for dim, groups in fresh.items():
                self.parts[dim] = Groups.concat(groups.vocab, HOUR_MS, [self.parts[dim], groups])
            closed_day = horizon // 24 > self.horizon // 24
            self.horizon = horizon
            if closed_day:
                self._refresh_days()

    async def follow_oldest(self, oldest_ms: int | None) -> None:
        """The log's first row moved (retention deleted old days, or rows were backfilled):
        drop what no longer holds and read the boundary hours again."""
        async with self.lock:
            if not self.ready or oldest_ms == self.oldest_ms:
                return
            if oldest_ms is None or self.oldest_ms is None:
                self.ready = False  # emptied, or first rows: start over
                self.oldest_ms = oldest_ms
                return
            new, old = floor_hour(oldest_ms), floor_hour(self.oldest_ms)
            keep_from = max(new, old) + 1
            reload_to = min(keep_from, self.horizon)
            reloaded = await self._load_all(new, reload_to) if new < reload_to else {}
            for dim in DIMENSIONS:
                kept = self.slice(dim, keep_from, self.horizon)
                parts = [reloaded[dim], kept] if reloaded else [kept]
                self.parts[dim] = Groups.concat(kept.vocab, HOUR_MS, parts)
            self._refresh_days()
            self.oldest_ms = oldest_ms
            log.info("log now starts at %s: rollups follow", datetime.fromtimestamp(oldest_ms / 1000, UTC))


def _between(part: Groups, h0: int, h1: int) -> Groups:
    lo, hi = np.searchsorted(part.slot, [h0, h1], side="left")
    return part.subset(slice(int(lo), int(hi)))


def _sorted(groups: Groups) -> Groups:
    order = np.argsort(groups.slot, kind="stable")
    return groups.subset(order)
