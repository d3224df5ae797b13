"""The one aggregation path: SQL sums tokens per price-uniform group, Python prices the groups.

Every lens (summary, spend, trend, savings, live) reads `Groups` from here and folds them; no lens
prices rows itself and no lens runs SQL of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as dt_time
from itertools import pairwise
from typing import Any

import numpy as np

# re-exported: the lenses and the watch layer import them from here (the numbers and blocks every
# answer shows, the groups, what an answer is asked for: filters, tokens, group_by)
from cost_api.aggregation.blocks import change_pct as change_pct
from cost_api.aggregation.blocks import data_quality_block as data_quality_block
from cost_api.aggregation.blocks import money as money
from cost_api.aggregation.blocks import pct as pct
from cost_api.aggregation.blocks import pricing_block as pricing_block
from cost_api.aggregation.concurrency import SharedRead, gather_or_cancel
from cost_api.aggregation.directory import KeptDirectory, failed
from cost_api.aggregation.filtering import cell_view, hashable, kept_mask, retag, tag_spans
from cost_api.aggregation.filtering import is_tag as is_tag  # re-exported: the lenses ask it
from cost_api.aggregation.groups import Groups as Groups  # re-exported: the lenses import it from here
from cost_api.aggregation.groups import Totals as Totals  # the same
from cost_api.aggregation.groups import Vocab
from cost_api.aggregation.memory import MemoryCap, release
from cost_api.aggregation.params import FUTURE_SKEW as FUTURE_SKEW
from cost_api.aggregation.params import Dimension as Dimension
from cost_api.aggregation.params import Filters as Filters
from cost_api.aggregation.params import Freshness as Freshness
from cost_api.aggregation.params import TokenDirectory as TokenDirectory
from cost_api.aggregation.params import dimension as dimension
from cost_api.aggregation.params import filter_params as filter_params
from cost_api.aggregation.params import ranked as ranked
from cost_api.aggregation.params import threshold_params as threshold_params
from cost_api.aggregation.params import top_ranked as top_ranked
from cost_api.aggregation.priced import from_columns, priced_rows
from cost_api.aggregation.rollups import (
    DIMENSIONS,
    FINGERPRINT,
    RESTORE_WAIT_SECONDS,
    UNBOUNDED,
    Bound,
    Rollups,
    ceil_hour,
    fingerprint,
    floor_hour,
    per_dimension,
)
from cost_api.aggregation.rows import REQUEST_PAGES, RowSet, RowStore
from cost_api.aggregation.snapshot import Snapshots
from cost_api.aggregation.tags import TagBook, TagBooks
from cost_api.aggregation.unnumbered import by_time, has_ids, row_store
from cost_api.aggregation.views import View, keys_only
from cost_api.clock import Clock
from cost_api.config.tags import TokenTagRule
from cost_api.errors import WarmingUp
from cost_api.pricing.table import PriceTable
from cost_api.store.database import (
    Database,
    DatabaseUnavailable,
    NotInSchema,
    QueryTimeout,
    Row,
    TooManyGroups,
    background_reads,
)
from cost_api.store.leadership import Leadership
from cost_api.store.result import Rows
from cost_api.windows import DAY_MS, HOUR_MS, Range, epoch_ms, from_ms, hour_runs

log = logging.getLogger("cost_api.aggregation.aggregator")

FAIL_FAST_SECONDS = 1.0  # how long a sync that found the database unavailable answers for the next
MAINTAIN_SECONDS = 10  # how often the background task takes in new rows and closes hours
# the reconciliation sweep (deletes and updates): how far back, and how often, docs/performance.md
LAST_HOUR = 253_402_297_200_000 // HOUR_MS  # 9999-12-31T23:00Z: "to the end of the open hours"
SWEEP_RECENT_HOURS = 7 * 24
SWEEP_RECENT_SECONDS = 120
SWEEP_OLDER_SECONDS = 3000  # every older hour compared at least once in this long
RELEASE_SECONDS = 60  # how often the maintenance loop hands the heap that answers freed back (memory.release)
NO_FILTERS = Filters()
GROUP_BYTES = 512  # a group of a read by token at its peak: the engine's hash table, its answer and columns
MIN_GROUPS = 1 << 16  # 32 MiB of groups: under it parts would cost more in queries than they save
MAX_PARTS = 1 << 10
NO_LIMIT = 1 << 62
SPLIT = ("token", "cache_key")  # the dimensions whose groups grow with the log's cardinality
SPLIT_READS = 2  # such reads' parts at once, whatever the number of answers: 2 × max_groups at the most
WHOLE_SLOT_MS = 1 << 62  # a `groups` read's slot longer than any log: all of its rows in one slot


@dataclass(frozen=True, slots=True)
class Ticket:
    """Taken when an answer arrives (`groups_many`): a read of new rows (`RowStore.ticket`) or of the
    log's bounds (`SharedRead.ticket`) that began after it serves every read of that answer."""

    rows: int
    bounds: int


class Aggregator:
    """Priced groups for any range: closed hours from the rollups, the rest from SQL.

    Every change to what is held (hours closing, late rows, hours read again) happens under one lock,
    in `sync`, `warm` and `reconcile`; an answer takes what it needs from memory without an await in
    between, so it never sees half of a change.
    """

    def __init__(
        self,
        db: Database,
        pricing: PriceTable,
        *,
        clock: Clock,
        rollup_grace: float = 900.0,
        snapshots: Snapshots | None = None,
        tag_rules: Sequence[TokenTagRule] = (),
        memory_cap: MemoryCap | None = None,
        token_refresh: float = 0.0,
    ) -> None:
        self.db = db
        self.pricing = pricing
        self.clock = clock
        self.vocab = Vocab()
        self._rollup_args = (rollup_grace, clock, snapshots, memory_cap, _totals_name("token", NO_FILTERS, None))
        self.rollups = Rollups(self._read_hours, *self._rollup_args)
        self._generation = db.generation
        self._thresholds = threshold_params(pricing)
        self.rows = RowStore(db.fetch, self.vocab, pricing, self._thresholds, clock)
        self._lock = asyncio.Lock()
        self._failed: tuple[float, DatabaseUnavailable] | None = None  # the last sync's failure: when, what
        self._sweep_at = {"recent": 0.0, "older": 0.0}
        self._older_cursor: int | None = None  # the next hour the sweep of older hours ends at
        self.tag_books = TagBooks(db.fetch, tag_rules)
        self.directory = KeptDirectory(self._read_tokens, clock, token_refresh, lambda: db.generation)
        self._bounds = SharedRead(self._read_bounds)
        # the groups a read by token or cache key holds at once (`_read_split`): about the cap's bytes
        cap = (memory_cap or MemoryCap()).limit
        self.max_groups = NO_LIMIT if cap is None else max(MIN_GROUPS, cap // GROUP_BYTES)
        self._parts: dict[tuple[str | None, int, int], int] = {}  # where reads by a key begin (`_read_split`)
        self._in_flight = asyncio.Semaphore(SPLIT_READS)  # parts of reads by a key running at once

    async def tokens(self) -> TokenDirectory:
        """The token directory, kept for `token_refresh` seconds (aggregation/directory.py)."""
        return await self.directory.get()

    async def _read_tokens(self) -> TokenDirectory:
        try:
            return TokenDirectory(list((await self.db.fetch("token_labels")).pick("id", "prefix", "name")))
        except NotInSchema:  # no api_tokens table (request_log is sound): tokens are shown by their id's start
            return TokenDirectory([])

    async def tag_book(self, directory: TokenDirectory | None = None) -> TagBook:
        """The tokens' tags as of now: the `tags` column (when there is one) under the config's rules;
        read once per directory, so kept with it (`token_refresh`) and shared by concurrent answers (a
        read that failed is tried again)."""
        directory = directory or await self.tokens()
        book = directory.book
        if book is None or failed(book):
            directory.book = book = asyncio.ensure_future(self.tag_books.book(directory.rows))
        return await asyncio.shield(book)

    def now(self) -> datetime:
        """Now, on the service's clock."""
        return self.clock.now()

    def _follow_generation(self) -> None:
        if self.db.generation != self._generation:  # another file behind the URL: closed hours anew
            self._generation = self.db.generation
            self.rollups = Rollups(self._read_hours, *self._rollup_args)
            self.rows.forget()

    async def log_bounds(self, since: int | None = None) -> tuple[int | None, int | None]:
        """The oldest and newest `created_at` (epoch ms), read after this call (`since`: after the
        answer's ticket, `Ticket.bounds`): two index look-ups, in one read shared by the calls made
        while another ran (every rollup read of an answer asks)."""
        return await self._bounds(since)

    async def _read_bounds(self) -> tuple[int | None, int | None]:
        rows = await self.db.fetch("log_bounds")
        self._follow_generation()
        oldest, newest = rows.first("oldest", "newest", default=(None, None))
        return (None if oldest is None else int(oldest), None if newest is None else int(newest))

    async def freshness(self) -> Freshness:
        """The newest row up to now + FUTURE_SKEW and the count of rows dated later, read now."""
        now = self.now()
        rows = await self.db.fetch("freshness", cutoff=now + FUTURE_SKEW)
        self._follow_generation()
        newest, future = rows.first("newest", "future", default=(None, 0))
        latest = None if newest is None else from_ms(int(newest))
        return Freshness(now, latest, int(future or 0))

    async def groups(
        self,
        rng: Range,
        *,
        filters: Filters = NO_FILTERS,
        directory: TokenDirectory | None = None,
        dim: str | None = None,
        slot_ms: int = HOUR_MS,
        coarse: bool = False,
        whole: bool = False,
        since: Ticket | None = None,
    ) -> Groups:
        """Priced groups of `rng`. `coarse`: the caller needs no bucket shorter than a UTC day, so
        whole UTC days may come as one group per day; `whole`: the caller only totals over the range
        (no time buckets), so they may come as one group for all of them — and, by token or by a tag,
        it reads only each key's figures and the pricing coverage, so priced groups may come summed
        over provider, model and tier (`views.keys_only`). Rows dated after now + FUTURE_SKEW are in
        no group, whatever the range. `since`: the ticket of the answer this read is one of
        (`groups_many`), taken when it arrived."""
        cutoff = self.now() + FUTURE_SKEW
        if rng.end > cutoff:
            rng = Range(min(rng.start, cutoff), cutoff)
        if (filters.tokens or filters.tags or is_tag(dim)) and directory is None:
            directory = await self.tokens()
        coarse = coarse or whole
        book, tag = None, None
        if filters.tags or is_tag(dim):
            book = await self.tag_book(directory)
            for key, _ in filters.tags:
                book.check(key, "tag")
            coarse = coarse and all(bound % 24 == 0 for bound in book.bounds)  # no day across a change
        if book is not None and dim is not None and is_tag(dim):
            book.check(dim[4:], "group_by")
            dim, tag = "token", dim[4:]  # the token groups, keyed by their tokens' values
        closed, rollups = 0, self.rollups  # the closed hours an answer reads while the rollups warm
        warming = slot_ms == HOUR_MS and rollups.warming and not rollups.ready
        if slot_ms == HOUR_MS and not rollups.ready:  # while they warm, wait rather than scan in SQL
            closed = min(floor_hour(epoch_ms(rng.end)), rollups.closed_horizon()) - ceil_hour(epoch_ms(rng.start))
            engine_sums = self.db.dialect == "clickhouse"
            await rollups.wait_for_warm_up(closed, self._wait_limit(), engine_sums=engine_sums)
        try:
            serves, rollup_dim = self.rollups.pick(dim, bool(filters.endpoints), bool(filters.tokens or filters.tags))
            if serves and slot_ms == HOUR_MS:
                await self.follow_oldest(None if since is None else since.bounds)
                if self.rollups.ready and self.rows.started:
                    await self.sync(since=None if since is None else since.rows)
                # checked again after the await: another file behind the URL drops what is held
                if self.rollups.ready and self.rows.started:
                    view = cell_view(filters, directory, rollup_dim, dim, book, tag)
                    keyed = dim == "token"  # by token or by a tag: the answer reads each key's figures
                    return await self._compose(
                        rng, rollup_dim, view, coarse=coarse, whole=whole and coarse, keyed=keyed
                    )
            if slot_ms == HOUR_MS and self.rollups.ready and self.rows.started and self.rollups.holds(dim):
                read = await self._kept_read(rng, dim, filters, directory, book, since)
            elif whole and slot_ms == HOUR_MS:  # SQL over the window, for totals: one slot per span of one price
                read = await self._whole_read(rng, dim, filters, directory, book)
            else:  # SQL over the window: a caller that needs no bucket under a UTC day gets day groups (24× fewer)
                wide = DAY_MS if coarse and slot_ms == HOUR_MS else slot_ms
                read = await self._read(rng, dim, filters, directory, wide, book=book)
        except QueryTimeout as exc:
            retry = rollups.timed_out_warming(closed) if warming else None
            if retry is None:
                raise
            raise retry from exc
        return read if tag is None or book is None else retag(read, book, tag)

    async def _kept_read(
        self,
        rng: Range,
        dim: str | None,
        filters: Filters,
        directory: TokenDirectory | None,
        book: TagBook | None,
        since: Ticket | None,
    ) -> Groups:
        """A read no rollup serves (a filter on tokens of the endpoint lens): its closed hours kept per
        hour while they stay the same (Views.hours); the hours at its edges and the open ones from the
        single rows held (each with its endpoint and token), filtered here with the SQL's semantics."""
        await self.sync(since=None if since is None else since.rows)
        start, end = epoch_ms(rng.start), epoch_ms(rng.end)
        h0, h1 = ceil_hour(start), min(floor_hour(end), self.rollups.horizon)
        if h0 >= h1 or by_time(self.rows) or not (self.rollups.ready and self.rows.started):
            return await self._read(rng, dim, filters, directory, HOUR_MS, book=book)
        resolved = hashable(filter_params(filters, directory))
        name = ("read", dim, resolved, tuple(sorted(filters.tags)), None if book is None else id(book))

        async def read(a: int, b: int) -> Groups:
            return await self._read(Range(_instant(a), _instant(b)), dim, filters, directory, HOUR_MS, book=book)

        horizon_ms = self.rollups.horizon * HOUR_MS
        edges = [await self._single_rows(a, b, horizon_ms) for a, b in ((start, h0 * HOUR_MS), (h1 * HOUR_MS, end))]
        held = await self.rollups.views.hours(name, h0, h1, read, keep=book)
        rows = RowSet.concat(self.vocab, edges)
        mask = kept_mask(rows.hourly("token"), filters, directory, "token", book)
        if filters.endpoints:
            mask &= np.isin(rows.rows.key, self.vocab.codes_of(filters.endpoints))
        return Groups.concat(self.vocab, HOUR_MS, [*held, rows.subset(mask).hourly(dim)])

    async def _whole_read(
        self, rng: Range, dim: str | None, filters: Filters, directory: TokenDirectory | None, book: TagBook | None
    ) -> Groups:
        """A read for totals no rollup serves (by token past the memory cap, by cache key): its closed
        hours summed per key, kept per day and hour while they stay the same (Views.totals); the parts
        of hours at its edges and the open hours as the rollups' are (`_edge_parts`: single rows, kept),
        or in SQL by cache key (no single row held has it). All of it in SQL before the warm-up,
        with tags (whose spans need not follow UTC days), and under a filter on tokens or endpoints
        (a budget's or an alert's own reads, one per subject: too many to keep, and never to be kept
        waiting)."""
        start, end = epoch_ms(rng.start), epoch_ms(rng.end)
        h0, h1 = ceil_hour(start), min(floor_hour(end), self.rollups.horizon)
        own = book is not None or bool(filters.tokens or filters.endpoints)
        if own or not self.rollups.ready or h0 >= h1:
            return await self._read(rng, dim, filters, directory, HOUR_MS, book=book, whole=True)
        name = _totals_name(dim, filters, directory)

        async def read(a: int, b: int) -> Groups:
            return await self._read(Range(_instant(a), _instant(b)), dim, filters, directory, HOUR_MS, whole=True)

        rollups = self.rollups
        budget = None if rollups.cap.limit is None else max(0, rollups.cap.limit - rollups.held_bytes())
        views, keyed = rollups.views, dim == "token"
        held = await views.totals(name, h0, h1, read, keyed=keyed, budget=budget)
        if held is None and name in views.filling:  # its days are being read: wait, as for a warm-up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(views.filling[name]), self._wait_limit())
            held = await views.totals(name, h0, h1, read, keyed=keyed, budget=budget)
            if held is None and name in views.filling:
                raise WarmingUp(
                    f"the service is reading the log's closed days by {dim or 'total'} into memory: this answer "
                    "comes from memory once that ends",
                    retry_after=5,
                )
        if held is None:  # its pieces do not fit the memory cap: the window whole, in SQL
            return await self._read(rng, dim, filters, directory, HOUR_MS, whole=True)
        edges = [(a, b) for a, b in ((start, h0 * HOUR_MS), (h1 * HOUR_MS, end)) if a < b]
        if dim not in DIMENSIONS or not (self.rollups.ready and self.rows.started):  # no single rows of it held
            ranges = [Range(from_ms(a), from_ms(b)) for a, b in edges]
            loose = [await self._read(e, dim, filters, directory, HOUR_MS, whole=True) for e in ranges]
            return Groups.concat(self.vocab, HOUR_MS, [held, *loose])
        # as the rollups of other dimensions: the hours it cuts and the open ones from single rows
        view = cell_view(filters, directory, dim, dim, None, None)
        parts = await self._edge_parts(edges, self.rollups.horizon, dim, keyed=keyed and view is None, whole=True)
        if view is not None:
            parts = [view.apply(Groups.concat(self.vocab, HOUR_MS, parts))]
        return Groups.concat(self.vocab, HOUR_MS, [held, *parts])

    def _wait_limit(self) -> float:
        """How long an answer waits for what is being read into memory before it answers 503."""
        return min(RESTORE_WAIT_SECONDS, 0.8 * self.db.timeout)

    async def _single_rows(self, a: int, b: int, horizon_ms: int) -> RowSet:
        """The single rows of [a, b): the kept rows of the closed hours it cuts, then the open rows."""
        parts = []
        for hour in range(floor_hour(a), ceil_hour(min(b, horizon_ms))):
            lo, hi = max(a, hour * HOUR_MS), min(b, horizon_ms, (hour + 1) * HOUR_MS)
            if lo < hi:
                parts.append((await self.rows.closed_hour(hour)).between(lo, hi))
        open_rows = self.rows.open
        if b > horizon_ms and open_rows is not None:
            parts.append(open_rows.between(max(a, horizon_ms), b))
        return RowSet.concat(self.vocab, parts)

    async def _compose(
        self, rng: Range, rollup_dim: str | None, view: View | None, *, coarse: bool, whole: bool, keyed: bool
    ) -> Groups:
        """Hourly groups of `rng` through `view`: whole closed hours from the rollup (what the view
        makes of them kept per day), the rest from single rows: the open ones from their kept sums
        (`RowStore.open_parts`), those of the closed hours its edges cut summed per span asked and kept
        (`RowSet.summed`; `keyed` as the rollup's whole run is, when no view transforms them)."""
        # what is held now, taken before any await: the rollups up to `horizon`, the open rows after it
        horizon = self.rollups.horizon
        start, end = epoch_ms(rng.start), epoch_ms(rng.end)
        h0, h1 = ceil_hour(start), min(floor_hour(end), horizon)
        held = None
        if h0 < h1:
            held = self.rollups.slice(rollup_dim, h0, h1, coarse=coarse, whole=whole, keyed=keyed, view=view)
            edges = [(start, h0 * HOUR_MS), (h1 * HOUR_MS, end)]
        else:
            edges = [(start, end)]
        parts = await self._edge_parts(edges, horizon, rollup_dim, keyed=keyed and whole and view is None)
        if view is None:  # one copy of every part
            return Groups.concat(self.vocab, HOUR_MS, [held, *parts])
        return Groups.concat(self.vocab, HOUR_MS, [held, view.apply(Groups.concat(self.vocab, HOUR_MS, parts))])

    async def _edge_parts(
        self, edges: list[tuple[int, int]], horizon: int, dim: str | None, *, keyed: bool, whole: bool = False
    ) -> list[Groups]:
        """The groups of the spans `edges` (epoch ms) past and around the closed hours held: the open
        ones from their kept sums (`RowStore.open_parts`; a log without ids: summed by the engine now,
        `whole` as in `_read`), those of the closed hours a span cuts from the hour's single rows, read
        once and kept, summed per span asked (`RowSet.summed`, `keyed` as `views.keys_only`).
        Unfiltered: the caller's view applies to them."""
        parts = []
        for a, b in edges:
            if b > horizon * HOUR_MS and by_time(self.rows):  # a log without ids: the engine sums them now
                parts.append(await self._read(Range(from_ms(max(a, horizon * HOUR_MS)), from_ms(b)), dim, whole=whole))
            elif b > horizon * HOUR_MS:
                parts.extend(self.rows.open_parts(max(a, horizon * HOUR_MS), b, dim))
        for a, b in edges:  # closed hours a span cuts: their single rows, read once and kept
            closed_end = min(b, horizon * HOUR_MS)
            for hour in range(floor_hour(a), ceil_hour(closed_end)):
                lo, hi = max(a, hour * HOUR_MS), min(closed_end, (hour + 1) * HOUR_MS)
                if lo < hi:
                    rows = await self.rows.closed_hour(hour)
                    parts.append(rows.summed(lo, hi, dim, keyed=keyed))
        return parts

    async def groups_many(self, *requests: tuple[Range, dict[str, Any]]) -> list[Groups]:
        """The groups of several reads of one answer, side by side. They arrive together (`since`: one
        ticket): the first incremental read of new rows, and the first read of the log's bounds, that
        begin after this call serve them all. Each taking its own, a read begun by another just before
        would not serve the others, and an answer read the log's new rows twice (~15 ms each on a
        100M-row ClickHouse log), and its bounds twice (~4 ms each)."""
        since = Ticket(self.rows.ticket(), self._bounds.ticket())
        return await gather_or_cancel(*(self.groups(rng, **kw, since=since) for rng, kw in requests))

    async def _read(
        self,
        rng: Range,
        dim: str | None,
        filters: Filters = NO_FILTERS,
        directory: TokenDirectory | None = None,
        slot_ms: int = HOUR_MS,
        bound: Bound = UNBOUNDED,
        book: TagBook | None = None,
        whole: bool = False,
    ) -> Groups:
        """The `groups` query: SQL sums per price-uniform group, priced here; with a tag filter, once
        per span of time in which the tokens' tags stay the same. `whole`: for totals over `rng` only,
        each such span is read as one slot, cut where a rate changes (`price_spans`), its groups put
        in the span's first slot: one group per key and price class instead of one per key and slot,
        which by token is about one per request (docs/scale-out.md#answers-by-token)."""
        params: dict[str, Any] = {
            "slot_ms": WHOLE_SLOT_MS if whole else slot_ms,
            "dim": dim or "",
            **filter_params(filters, directory),
            **self._thresholds,
            **bound.params(),
        }
        keyed = whole and dim == "token"  # only each token's figures are read: see `groups`
        parts = []
        for span_start, span_end, tags in tag_spans(rng, filters, book):
            for start, end in price_spans(span_start, span_end, self.pricing) if whole else [(span_start, span_end)]:
                at_slot = epoch_ms(start) // slot_ms if whole else None
                span = {**params, "start": start, "end": end, **tags}
                parts.extend(await self._read_split(dim, span, slot_ms, at_slot, keyed=keyed))
        return parts[0] if len(parts) == 1 else Groups.concat(self.vocab, slot_ms, parts)

    async def _read_split(
        self, dim: str | None, params: dict[str, Any], slot_ms: int, at_slot: int | None, *, keyed: bool
    ) -> list[Groups]:
        """One span's `groups`, by token or cache key in parts by a hash of the key, each of at most
        `max_groups` groups: a part that passes the limit is read again as two (its keys' hashes modulo
        twice the parts). A read begins in as many parts as the last one of its dimension, slot and
        length (in days, to a power of two) first answered in. Each part is priced (`keyed`: summed per
        key, `views.keys_only`) before the next is read, so that such a read holds at most `max_groups`
        of the engine's groups and of their columns at once, however many keys the log has; and at
        most SPLIT_READS such parts run at once, however many answers ask
        (docs/scale-out.md#the-memory-cap). Reads by no key or by endpoint (hours × prices × models ×
        endpoints) are one part, with no limit."""
        if dim not in SPLIT:
            return [await self._read_part(params, slot_ms, at_slot, 1, 0, NO_LIMIT, keyed=keyed)]
        days = (epoch_ms(params["end"]) - epoch_ms(params["start"])) // DAY_MS
        kind = (dim, params["slot_ms"], int(days).bit_length())
        parts = self._parts.get(kind, 1)
        todo, read, answered = [(parts, part) for part in range(parts)], [], MAX_PARTS
        while todo:
            parts, part = todo.pop(0)
            # a part of one key past the limit on its own is not split any further: read with none
            limit = self.max_groups if parts < MAX_PARTS else NO_LIMIT
            try:
                async with self._in_flight:
                    read.append(await self._read_part(params, slot_ms, at_slot, parts, part, limit, keyed=keyed))
            except TooManyGroups:
                todo += [(2 * parts, part), (2 * parts, part + parts)]
                continue
            answered = min(answered, parts)
        self._parts[kind] = answered
        return read

    async def _read_part(
        self,
        params: dict[str, Any],
        slot_ms: int,
        at_slot: int | None,
        parts: int,
        part: int,
        limit: int,
        *,
        keyed: bool,
    ) -> Groups:
        """Part `part` of `parts` of one span's `groups`, priced."""
        rows = await self.db.fetch("groups", table=True, **params, parts=parts, part=part, max_groups=limit)
        if len(rows) > limit:  # SQLite, Postgres: one group more than the limit (ClickHouse stops before)
            raise TooManyGroups(f"a read of more than {limit} groups")
        return await priced_rows(self.vocab, slot_ms, rows, self.pricing, at_slot, per_key if keyed else None)

    async def _read_hours(self, dim: str | None, h0: int, h1: int, bound: Bound) -> Groups:
        return await self._read(Range(_instant(h0), _instant(h1)), dim, Filters(), None, HOUR_MS, bound)

    async def request_page(
        self, rng: Range, c_at: datetime, c_id: int, limit: int, filters: Filters, directory: TokenDirectory
    ) -> tuple[Rows, Groups]:
        """The audit rows of `rng` and the filters, newest first: `limit` of them from the keyset
        position (c_at, c_id) on, exclusive (the `request_rows` query); and the same rows priced as
        groups of one, in the same order, the way every answer's groups are priced."""
        params = filter_params(filters, directory)
        book = await self.tag_book(directory) if filters.tags else None
        rows: Rows | None = None
        for start, end, tags in reversed(tag_spans(rng, filters, book)):  # newest first, as the rows
            left = limit - len(rows or ())
            if left <= 0:
                break
            page = await self.db.fetch(
                "request_rows",
                **{**params, **self._thresholds, "start": start, "end": end, "c_at": c_at, "c_id": c_id, **tags},
                limit=left,
            )
            rows = page if rows is None else Rows([*rows, *page], rows.names)
        assert rows is not None  # every range has one span at least
        return rows, from_columns(self.vocab, 1, rows.columns(), len(rows), self.pricing)

    async def minute_counts(self, start: datetime, end: datetime, dim: str, at_least: int) -> list[Row]:
        """Requests per epoch minute and key of one dimension over [start, end), the minutes with at
        least `at_least` (the request-storm rule): (minute, key, requests) rows."""
        return await self.db.fetch("requests_per_minute", start=start, end=end, dim=dim, min_requests=at_least)

    def leadership(self, key: int) -> Leadership:
        """The lock that makes one replica among several on this database the one that acts."""
        return Leadership(self.db, key)

    async def warm(self) -> None:
        """Read every closed hour once up to the log's newest id, and the open rows up to it; every
        later id arrives through `sync`."""
        async with self._lock:
            rollups = self.rollups
            rollups.begin()
            try:
                oldest = (await self.log_bounds())[0]
                self.rows = row_store(self.rows, await has_ids(self.db))
                max_id = None if by_time(self.rows) else int((await self.db.fetch("last_id")).first("max_id") or 0)
                horizon = self.rollups.closed_horizon()
                self.rollups.ready = False
                await self.rows.start(horizon * HOUR_MS, max_id or 0)
                await self.rollups.warm(oldest, horizon, Bound(max_id))
            finally:
                rollups.settle()

    async def sync(self, pages: int = REQUEST_PAGES, since: int | None = None) -> None:
        """Take in what was committed before this call (or, `since`, before the ticket `RowStore.ticket`
        gave): late rows join their closed hours, new rows the open ones, and hours that closed move
        from the open rows to the rollups. While the last read found the database unavailable (less
        than FAIL_FAST_SECONDS ago), callers queued behind it get that answer at once instead of each
        waiting out a busy database in turn."""
        await self._sync_once(pages, self.rows.ticket() if since is None else since)

    async def _sync_once(self, pages: int, since: int) -> None:
        # a read that begins after the ticket `since` was taken serves this call too
        async with self._lock:
            failed = self._failed
            if failed is not None and time.monotonic() - failed[0] < FAIL_FAST_SECONDS:
                raise failed[1]
            try:
                await self._sync_locked(pages, since)
            except DatabaseUnavailable as exc:
                self._failed = (time.monotonic(), exc)
                raise
            self._failed = None

    async def _sync_locked(self, pages: int, since: int | None = None) -> None:
        if not (self.rollups.ready and self.rows.started):
            return
        rollups = self.rollups
        await self.rows.refresh(lambda late: rollups.add(per_dimension(late.hourly)), pages, since)
        if not (self.rollups.ready and self.rows.started):  # another database behind the URL meanwhile
            return
        horizon = self.rollups.closed_horizon()
        if horizon > self.rollups.horizon and by_time(self.rows):  # no ids: the closed hours read whole
            cells = await rollups._load_all(rollups.horizon, horizon, UNBOUNDED)
            if rollups is self.rollups and rollups.ready:  # else another database behind the URL meanwhile
                rollups.close(horizon, cells)
        elif horizon > self.rollups.horizon:
            closed = self.rows.take_closed(horizon * HOUR_MS)
            self.rollups.close(horizon, per_dimension(closed.hourly))

    async def catch_up(self) -> None:
        """Take in every row committed before this call — a backfill a page at a time, answers served
        in between — and read again the hours where ids given up as holes have committed since."""
        await self.sync()
        while self.rollups.ready and self.rows.started and not self.rows.caught_up:
            await self.sync(pages=1)
        for h0, h1 in await self.rows.lost_hours():
            await self.reconcile(h0, h1)

    async def follow_oldest(self, since: int | None = None) -> None:
        """Follow the log's first row (a retention job deleted the oldest days); `since` as in `log_bounds`."""
        oldest = (await self.log_bounds(since))[0]
        if oldest != self.rollups.oldest_ms:
            async with self._lock:
                await self.rollups.follow_oldest(oldest, self.rows.bound())
                if oldest is not None:  # the kept rows of hours a retention job emptied
                    self.rows.forget_cut_hours(0, floor_hour(oldest) + 1)

    async def reconcile(self, h0: int, h1: int) -> int:
        """Compare hours [h0, h1) of the log with what is held, by per-hour fingerprints, and read the
        hours that differ again (deletes and updates, which no incremental read sees). Returns how many
        hours differed."""
        if not (self.rollups.ready and self.rows.started):
            return 0
        h1 = min(h1, self.rollups.horizon if by_time(self.rows) else LAST_HOUR)  # no ids: no open rows held
        bound = self.rows.bound()
        rows = await self.db.fetch(
            "hour_fingerprints",
            start=_instant(h0),
            end=_instant(h1),
            **bound.params(),
        )
        logged = {int(hour): tuple(int(v or 0) for v in sums) for hour, *sums in rows.pick("hour", *FINGERPRINT)}
        async with self._lock:
            rollups, open_rows = self.rollups, self.rows.open
            if not rollups.ready or open_rows is None:  # another database behind the URL meanwhile
                return 0
            held = rollups.fingerprints(h0, h1)
            held.update(fingerprint(open_rows.rows.slot // HOUR_MS, open_rows.rows.counts))
            differ = {h for h in set(logged) | set(held) if h0 <= h < h1 and logged.get(h) != held.get(h)}
            closed = [h for h in differ if h < rollups.horizon]  # (reread_apart sorts them)
            if len(closed) < len(differ):
                await self.rows.reread_open()
            # the kept rows of a cut hour that matched are the log's still: only those that differ are
            # read again (dropping all of them made the first answer after every sweep read its cut
            # hours' rows anew: ~120 ms on a 10M-row log, once per sweep)
            for a, b in hour_runs(sorted(differ)):
                self.rows.forget_cut_hours(a, b)
        # read again with the lock held only to begin and to put them in place (answers go on meanwhile:
        # a backfill's ten days, 241 hours of a 10M-row Postgres log, took ~14 s, past query_timeout)
        if closed and await rollups.reread_apart(closed, self._lock, self.rows.bound):
            log.info("read %d hour(s) again that differed from the log", len(closed))
        return len(differ)

    async def sweep(self, now: float) -> None:
        """The reconciliation schedule (`now`: seconds on any steady clock): the last
        `SWEEP_RECENT_HOURS` and the open hours every `SWEEP_RECENT_SECONDS`; older hours a day at a
        time, paced so that a whole pass over them takes `SWEEP_OLDER_SECONDS`. Its reads go behind the
        answers' (`background_reads`)."""
        with background_reads():
            await self._sweep(now)

    async def _sweep(self, now: float) -> None:
        horizon = self.rollups.horizon
        if now >= self._sweep_at["recent"]:
            await self.reconcile(horizon - SWEEP_RECENT_HOURS, LAST_HOUR)
            self._sweep_at["recent"] = now + SWEEP_RECENT_SECONDS
        oldest = self.rollups.oldest_ms
        if oldest is None or now < self._sweep_at["older"]:
            return
        first, recent = floor_hour(oldest), horizon - SWEEP_RECENT_HOURS
        cursor = self._older_cursor
        end = cursor if cursor is not None and first < cursor <= recent else recent  # else a new pass
        days = max(1, -(-(recent - first) // 24))  # day chunks in a whole pass
        per_tick = max(1, -(-days * MAINTAIN_SECONDS // SWEEP_OLDER_SECONDS))  # more when ticks are too few
        begin = max(first, end - 24 * per_tick)
        if begin < end:
            await self.reconcile(begin, end)
        self._older_cursor = begin
        interval, due = SWEEP_OLDER_SECONDS * per_tick / days, self._sweep_at["older"]
        self._sweep_at["older"] = (due if now - due < interval else now) + interval  # no drift from tick lateness

    async def maintain(self, every: float = MAINTAIN_SECONDS) -> None:
        """Keep the rollups warm and exact: read the closed hours once, then take in every new row,
        follow retention, and sweep for deletes and updates."""
        failing = False
        released = time.monotonic()
        while True:
            if time.monotonic() - released >= RELEASE_SECONDS:
                release()  # answers' large temporaries (30 days of token cells) leave freed heap behind
                released = time.monotonic()
            try:
                await self.log_bounds()  # notices another database behind the URL
                if not (self.rollups.ready and self.rows.started):
                    await self.warm()
                else:
                    await self.follow_oldest()
                    await self.catch_up()
                    await self.sweep(time.monotonic())
                await self.rollups.save_if_due(self._lock, self.rows.bound)
                failing = False
            except (DatabaseUnavailable, QueryTimeout) as exc:
                if not failing:
                    log.warning("rollups not updated (answers read the database directly meanwhile): %s", exc)
                failing = True
            except Exception:  # never let the loop die: answers stay exact without it, only slower
                log.exception("rollups not updated")
                failing = True
            await asyncio.sleep(every)


def per_key(groups: Groups) -> Groups:
    """Priced groups summed per key (`views.keys_only`): what a read by token for totals keeps."""
    return keys_only(groups).collapsed()


def price_spans(start: datetime, end: datetime, pricing: PriceTable) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at the UTC midnights on which some rate changes: within a piece every rate is
    that of its first day, so a group summed over a whole piece is uniform in price."""
    cuts = (datetime.combine(day, dt_time.min, UTC) for day in pricing.change_days)
    return list(pairwise([start, *(at for at in cuts if start < at < end), end]))


def _totals_name(dim: str | None, filters: Filters, directory: TokenDirectory | None) -> Hashable:
    """The name a read for totals (`_whole_read`) keeps its pieces under (`Views.totals`)."""
    return ("whole", dim, hashable(filter_params(filters, directory)))


def _instant(hour: int) -> datetime:
    return from_ms(hour * HOUR_MS)
