"""The rollups' memory cap (`rollup_memory_mb`): the token rollup is held only while it fits.

The base and endpoint rollups grow with hours × models × endpoints: small, always held. The token
rollup grows with the log's cardinality (hours × models × tokens: 20,000 tokens make it millions of
cells). The rollups hold it while everything they hold (hourly cells, daily cells, late cells not
merged yet) fits under the cap; past it — at warm-up, checked after each read (its newest hour, then a
day at a time) against what the hours read so far project for all of them (`rollups._projected`),
before the whole is in memory; or later, as
hours close and late rows arrive — the token rollup is dropped, for the life of the process, and
answers by token (the token lens, the summary's top tokens, a token filter) are asked of the engine:
the `groups` query, one slot per span of one price, its closed days and hours kept summed per token
(views.py, `Views.totals`). Slower on a large log, but correct, never an out-of-memory. Cache-key
answers are never held (no rollup is keyed by cache key): always the engine's.
docs/configuration.md, docs/scale-out.md#the-memory-cap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from cost_api.aggregation.groups import Groups

log = logging.getLogger("cost_api.aggregation.memory")

CAPPED = "token"  # the rollup dropped past the cap: the one whose size grows with the log's cardinality
MB = 1 << 20


def nbytes(parts: Iterable[Groups | None]) -> int:
    """The bytes of these groups' columns."""
    total = 0
    for groups in parts:
        if groups is not None:
            total += sum(column.nbytes for column in (*_columns(groups), *groups.counts.values()))
    return total


def _columns(g: Groups) -> tuple[np.ndarray, ...]:
    return (
        g.slot,
        g.provider,
        g.model,
        g.key,
        g.size_class,
        g.cache_hit,
        g.spend,
        g.saved,
        g.priced_as,
        g.quality,
        g.tier,
    )


@dataclass(frozen=True, slots=True)
class MemoryCap:
    """At most `limit` bytes held by the rollups (None: no cap)."""

    limit: int | None = None

    @classmethod
    def of(cls, megabytes: float | None) -> MemoryCap:
        return cls(None if megabytes is None else int(megabytes * MB))

    def fits(self, held: int) -> bool:
        return self.limit is None or held <= self.limit

    def dropped(self) -> None:
        """Say once why the token answers now come from the engine."""
        log.warning(
            "the token rollup does not fit rollup_memory_mb (%s MiB) with the other rollups: not held, "
            "answers by token are asked of the database",
            "no cap" if self.limit is None else f"{self.limit / MB:g}",
        )


@functools.cache
def _libc(name: str) -> Callable[..., int] | None:
    """glibc's function `name`, or None under another C library (musl, macOS): nothing to do there."""
    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), name) if library else None
    except (OSError, AttributeError):
        return None


# glibc's malloc arenas at the most, in a process that serves. glibc gives a new thread an arena of its
# own (up to 8 per core), and each arena keeps what was freed in it until `release`: the worker threads
# that decode and price the reads by token (a day: ~600,000 groups at 100M rows) each kept such a heap.
# With 2, at 100M rows on chDB, the peak while the token lens's days were read was ~200 MiB lower, no
# read seen slower (docs/performance.md#freed-memory-kept-by-the-allocators).
ARENAS = 2
M_ARENA_MAX = -8  # mallopt's parameter (glibc's malloc.h)


def limit_arenas() -> None:
    """At most ARENAS malloc arenas in this process from now on, unless its environment chose a number
    (MALLOC_ARENA_MAX, or glibc.malloc.arena_max in GLIBC_TUNABLES). Called as a process begins to
    serve, before its threads allocate: an arena is never taken back."""
    if "MALLOC_ARENA_MAX" in os.environ or "glibc.malloc.arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return
    mallopt = _libc("mallopt")
    if mallopt is not None:
        mallopt(M_ARENA_MAX, ARENAS)


def release() -> None:
    """Give the heap that freed columns left back to the system: after a warm-up (which reads the whole
    log a day at a time), once the pieces of a read by token are read (views.py: a day of ~600,000
    groups each at 100M rows), and every RELEASE_SECONDS from the maintenance loop (hours closing, late
    rows merged, hours read again and answers' temporaries all copy large columns). glibc keeps what those
    copies freed inside its heap (numpy's large arrays come from the heap once the first was freed: the
    mmap threshold rises to its size), so a 10M-row log's service held 1.6 GiB where its columns are 0.8
    (docs/performance.md). `malloc_trim(0)` returns every free page. Never on an answer's path (but for
    an answer that waits for pieces being read: they are released before it is woken)."""
    trim = _libc("malloc_trim")
    if trim is not None:
        trim(0)
