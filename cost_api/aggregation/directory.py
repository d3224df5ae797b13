"""The token directory kept between answers: `api_tokens` read at most once per `token_refresh`.

Every answer by token or by tag needs every token's prefix and name and (for tags) its `tags` column:
20,000 tokens are two reads of 20,000 rows and their decoding, more than the rest of such an answer
(docs/performance.md#team-views-tags). So the directory, and with it its tag book (`directory.book`),
is kept and shared by every answer that begins within `refresh` seconds of the read that made it
(answers that begin while that read runs wait for it instead of reading again). An answer that begins
later reads again, so a change to a token's name, prefix or tags (tagging a token today) is seen by
every answer that begins at most `refresh` seconds after it committed: the staleness bound, written
in docs/tags.md and docs/configuration.md (`token_refresh`). `refresh` 0: read for every answer.

Why a refresh interval and not a change check before each answer: a check that sees every rename and
retag must compare every row (a count or a max of an updated-at column misses an `UPDATE` of a name
or tags, and the contract's `api_tokens` has no updated-at column: docs/request-log.md), so it
would scan the rows on the server at each answer; SQLite has no server-side hash to sum them with, and the round trip
alone is what the answers are short of on Postgres. The interval costs nothing per answer, works
the same on every dialect, and its bound is exact and written down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from cost_api.aggregation.params import TokenDirectory
from cost_api.clock import Clock


class KeptDirectory:
    """The current `TokenDirectory`, read by `read` again once `refresh` seconds of `clock` have passed
    since the read began (or when the clock went back, or another database is behind the URL:
    `generation` changed); a read that fails is not kept, and one that every answer waiting for it
    left (their clients gone) is cancelled, so that its query stops."""

    def __init__(
        self,
        read: Callable[[], Awaitable[TokenDirectory]],
        clock: Clock,
        refresh: float,
        generation: Callable[[], int],
    ) -> None:
        self._read = read
        self._clock = clock
        self.refresh = refresh
        self._generation = generation
        self._kept: _Read | None = None

    async def get(self) -> TokenDirectory:
        now, generation = self._clock.time(), self._generation()
        kept = self._kept
        if kept is None or not (kept.at <= now < kept.at + self.refresh) or kept.generation != generation:
            kept = _Read(now, generation, asyncio.ensure_future(self._read()))
            self._kept = kept
            kept.future.add_done_callback(self._forget_failed)
        kept.waiting += 1
        try:
            return await asyncio.shield(kept.future)
        finally:
            kept.waiting -= 1
            if kept.waiting == 0 and not kept.future.done():
                kept.future.cancel()
                if self._kept is kept:  # an answer that comes next reads anew, never this cancelled read
                    self._kept = None

    def _forget_failed(self, read: asyncio.Future[TokenDirectory]) -> None:
        if self._kept is not None and self._kept.future is read and failed(read):
            self._kept = None


class _Read:
    """One read of the directory: when it began, of which database, and how many answers wait for it."""

    def __init__(self, at: float, generation: int, future: asyncio.Future[TokenDirectory]) -> None:
        self.at = at
        self.generation = generation
        self.future = future
        self.waiting = 0


def failed(read: asyncio.Future[Any]) -> bool:
    """`read` is over without an answer (it raised, or was cancelled): not one to keep."""
    return read.done() and (read.cancelled() or read.exception() is not None)
