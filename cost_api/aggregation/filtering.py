"""What the filters keep of the held cells, and how tags read: the rollups' cells masked with the SQL's
semantics (`kept_cells`); `group_by=tag:<key>` folded from token groups (`retag`); a range cut where
the tokens' tags change, each piece with its tag filter's query parameters (`tag_spans`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from datetime import datetime
from typing import Any

import numpy as np

from cost_api.aggregation.groups import Groups
from cost_api.aggregation.params import Filters, TokenDirectory
from cost_api.aggregation.tags import OFF, TagBook, wanted_of
from cost_api.aggregation.views import View
from cost_api.windows import HOUR_MS, Range, epoch_ms, from_ms


def kept_cells(
    held: Groups,
    filters: Filters,
    directory: TokenDirectory | None,
    rollup_dim: str | None,
    book: TagBook | None,
) -> Groups:
    """The rollup's cells that the filters keep, with the SQL's semantics."""
    mask = kept_mask(held, filters, directory, rollup_dim, book)
    return held if mask.all() else held.subset(mask)


def kept_mask(
    held: Groups,
    filters: Filters,
    directory: TokenDirectory | None,
    rollup_dim: str | None,
    book: TagBook | None,
) -> np.ndarray:
    """Which of the cells (keyed by `rollup_dim`) the filters keep: those on the key's dimension and
    on provider and model."""
    mask = np.ones(len(held), dtype=bool)
    if filters.providers:
        mask &= np.isin(held.provider, held.vocab.codes_of(filters.providers))
    if filters.models:
        mask &= np.isin(held.model, held.vocab.codes_of(filters.models))
    if filters.endpoints and rollup_dim == "endpoint":
        mask &= np.isin(held.key, held.vocab.codes_of(filters.endpoints))
    if filters.tokens and rollup_dim == "token":
        params = (directory or TokenDirectory([])).filter_params(filters.tokens)
        ids, prefixes = set(params["token_ids"]), set(params["token_prefixes"])

        def kept(token: str | None) -> bool:
            if token is None:
                return bool(params["anonymous"])
            return token in ids or token[:11] in prefixes

        allowed = [code for code in np.unique(held.key).tolist() if kept(held.vocab.value(code))]
        mask &= np.isin(held.key, np.array(allowed, dtype=np.int32))
    if filters.tags and book is not None and rollup_dim == "token":
        wanted, value = wanted_of(filters.tags), held.vocab.value
        hours = held.slot * held.slot_ms // HOUR_MS
        mask &= book.per_cell(
            ("passes", *sorted(wanted.items())),
            hours,
            held.key,
            lambda epoch, code: book.passes(value(code), wanted, epoch),
            bool,
        )
    return mask


def cell_view(
    filters: Filters,
    directory: TokenDirectory | None,
    rollup_dim: str | None,
    dim: str | None,
    book: TagBook | None,
    tag: str | None,
) -> View | None:
    """What an answer makes of a rollup's cells: those its filters keep (`kept_cells`), without their
    key when the rollup's dimension is not the answer's (`dim`), or keyed by the value of tag `tag`
    (`retag`); None when it takes the cells as held."""
    tokens = (directory or TokenDirectory([])).filter_params(filters.tokens) if rollup_dim == "token" else {}
    tags = tuple(sorted(filters.tags)) if book is not None and rollup_dim == "token" else ()
    endpoints = filters.endpoints if rollup_dim == "endpoint" else ()
    zero = rollup_dim != dim
    if not (filters.providers or filters.models or endpoints or tokens.get("token_filter") or tags or zero or tag):
        return None
    picked = hashable({k: v for k, v in tokens.items() if k != "token_filter"})
    booked = id(book) if tags or tag else None
    name = ("cells", rollup_dim, dim, filters.providers, filters.models, endpoints, picked, tags, zero, tag, booked)

    def apply(cells: Groups) -> Groups:
        kept = kept_cells(cells, filters, directory, rollup_dim, book)
        if zero:
            kept = dataclasses.replace(kept, key=np.zeros(len(kept), dtype=np.int32))
        if tag is not None:
            assert book is not None
            kept = retag(kept, book, tag)
        return kept

    return View(name, apply, keep=book)


def hashable(params: dict[str, Any]) -> Hashable:
    """Query parameters as a name for what is kept of their answers (lists as tuples)."""
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(params.items()))


def is_tag(dim: str | None) -> bool:
    """`group_by=tag:<key>`: the token dimension, folded through the tokens' tags."""
    return dim is not None and dim.startswith("tag:")


def tag_spans(rng: Range, filters: Filters, book: TagBook | None) -> list[tuple[datetime, datetime, dict[str, Any]]]:
    """`rng` as the queries read it: whole, without tags; else cut where tokens' tags change (so that
    no group spans a change), each piece with its tag filter's parameters."""
    if book is None:
        return [(rng.start, rng.end, OFF)]
    wanted = wanted_of(filters.tags)
    return [
        (from_ms(a), from_ms(b), book.sql_params(wanted, epoch) if wanted else OFF)
        for epoch, a, b in book.spans(epoch_ms(rng.start), epoch_ms(rng.end))
    ]


def retag(groups: Groups, book: TagBook, key: str) -> Groups:
    """Token groups keyed by the value of tag `key` each token carried in each group's hour."""
    vocab = groups.vocab
    hours = groups.slot * groups.slot_ms // HOUR_MS
    codes = book.per_cell(
        ("value", key, id(vocab)),
        hours,
        groups.key,
        lambda epoch, code: vocab.code(book.value(vocab.value(code), key, epoch)),
        np.int32,
    )
    return dataclasses.replace(groups, key=codes)
