"""Token tags, applied at query time: which tags each token carries in each span of time.

A token's tags come from the optional `api_tokens.tags` column (a JSON object of strings), then the
config's `token_tags` rules in order of `since` (none first), then of listing — a later rule wins a key,
and every rule wins over the column. The rules' `since` instants cut time into spans ("epochs"), whole
hours, in each of which every token's tags stay the same; so a tag is a token filter per span, and
grouping by a tag folds the token rollup through a token → value map per span. No row is rewritten:
tagging a token today re-attributes its history. Anonymous requests and tokens without the key are
`(untagged)`, never dropped (docs/tags.md).
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any

import numpy as np

from cost_api.config.tags import TAG_KEY, UNTAGGED, TokenTagRule
from cost_api.errors import BadParameter
from cost_api.store.database import NotInSchema, Row
from cost_api.store.result import Rows
from cost_api.windows import HOUR_MS

log = logging.getLogger("cost_api.aggregation.tags")

Wanted = dict[str, frozenset[str]]  # a tag filter: per key, the values that pass (one of them)
OFF = {"tag_filter": 0, "tag_ids": None, "tag_negate": 0, "tag_anonymous": 0}
_FAR = 2**62
Fetch = Callable[..., Awaitable[Rows]]


def parse_tags(token_id: str, raw: Any, warned: set[str]) -> dict[str, str]:
    """The `tags` column of one token: a JSON object of strings (else logged once and untagged)."""
    if raw is None or raw == "":
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except ValueError:
        value = None
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return {k: v for k, v in value.items() if TAG_KEY.match(k) and v.strip() and v != UNTAGGED}
    if token_id not in warned:
        warned.add(token_id)
        log.warning("api_tokens.tags of token %s… is not a JSON object of strings: untagged", token_id[:6])
    return {}


class TagBook:
    """Every token's tags per epoch. `tokens`: (id, displayed prefix, name, the column's tags)."""

    def __init__(
        self, tokens: Iterable[tuple[str, str | None, str | None, dict[str, str]]], rules: Sequence[TokenTagRule]
    ) -> None:
        known = {tid: (prefix, name, tags) for tid, prefix, name, tags in tokens}
        for rule in rules:  # a rule may name a token the api_tokens table does not list
            if rule.token is not None and rule.token not in known:
                known[rule.token] = (None, None, {})
        order = sorted(enumerate(rules), key=lambda ir: (-_FAR if ir[1].since is None else ir[1].since.ms, ir[0]))
        self.bounds = sorted({rule.since.ms // HOUR_MS for rule in rules if rule.since is not None})
        starts = [-_FAR, *self.bounds]
        self.universe = sorted(known)
        self.epochs: list[dict[str, dict[str, str]]] = []
        for start in starts:
            active = [r for _, r in order if r.since is None or r.since.ms // HOUR_MS <= start]
            tagged: dict[str, dict[str, str]] = {}
            for tid, (prefix, name, column) in known.items():
                tags = dict(column)
                for rule in active:
                    if rule.matches(tid, prefix, name):
                        tags.update(rule.tags)
                if tags:
                    tagged[tid] = tags
            self.epochs.append(tagged)
        self.keys = sorted({key for epoch in self.epochs for tags in epoch.values() for key in tags})
        self._tables: dict[Hashable, np.ndarray] = {}  # per_cell's look-up tables
        self._sql: dict[Hashable, dict[str, Any]] = {}  # sql_params' answers

    def check(self, key: str, parameter: str) -> None:
        """A 400 naming `parameter` for a key no token carries, listing the keys that are known."""
        if key not in self.keys:
            known = ", ".join(self.keys) or "none: no token is tagged"
            raise BadParameter(parameter, f"unknown tag key {key!r}; known keys: {known}")

    def tags(self, token_id: str | None, epoch: int) -> dict[str, str]:
        return {} if token_id is None else self.epochs[epoch].get(token_id, {})

    def value(self, token_id: str | None, key: str, epoch: int) -> str:
        return self.tags(token_id, epoch).get(key, UNTAGGED)

    def values(self, key: str) -> list[str]:
        """Every value of `key` in any epoch, and `(untagged)`."""
        found = {tags[key] for epoch in self.epochs for tags in epoch.values() if key in tags}
        return [*sorted(found), UNTAGGED]

    def epoch_at(self, ms: int) -> int:
        return bisect.bisect_right(self.bounds, ms // HOUR_MS)

    def spans(self, start_ms: int, end_ms: int) -> list[tuple[int, int, int]]:
        """[start, end) cut at the epochs' bounds: (epoch, from, to) for each piece, oldest first."""
        cuts = [b * HOUR_MS for b in self.bounds if start_ms < b * HOUR_MS < end_ms]
        edges = [start_ms, *cuts, end_ms]
        first = self.epoch_at(start_ms)
        return [(first + i, a, b) for i, (a, b) in enumerate(itertools.pairwise(edges))]

    def passes(self, token_id: str | None, wanted: Wanted, epoch: int) -> bool:
        tags = self.tags(token_id, epoch)
        return all(tags.get(key, UNTAGGED) in values for key, values in wanted.items())

    def sql_params(self, wanted: Wanted, epoch: int) -> dict[str, Any]:
        """The tag filter of one epoch as the queries take it: the tokens that pass, or (when tokens
        nobody tagged pass) the listed tokens that do not. Kept while the book lasts: a pass over
        every token (20,000 of them) costs more than the query it filters."""
        name = (epoch, *sorted(wanted.items()))
        found = self._sql.get(name)
        if found is None:
            outsiders = all(UNTAGGED in values for values in wanted.values())
            ids = [tid for tid in self.universe if self.passes(tid, wanted, epoch) != outsiders]
            found = {"tag_filter": 1, "tag_ids": ids, "tag_negate": int(outsiders), "tag_anonymous": int(outsiders)}
            self._sql[name] = found
        return found

    def per_cell(
        self, name: Hashable, hours: np.ndarray, tokens: np.ndarray, decide: Callable[[int, int], Any], dtype: type
    ) -> np.ndarray:
        """`decide(epoch, token code)` for each cell (hour, token code): a look-up in a table of every
        epoch and code, computed once per `name` (what `decide` decides) while the book lasts, and
        for the codes the vocabulary gained since; so an answer costs one gather, not a sort."""
        size = int(tokens.max()) + 1 if len(tokens) else 0
        table = self._tables.get(name)
        if table is None or table.shape[1] < size:
            known = 0 if table is None else table.shape[1]
            grown: np.ndarray = np.empty((len(self.epochs), max(size, known)), dtype=dtype)
            if table is not None:
                grown[:, :known] = table
            for epoch in range(len(self.epochs)):
                grown[epoch, known:] = [decide(epoch, code) for code in range(known, size)]
            self._tables[name] = table = grown
        epochs = np.searchsorted(np.asarray(self.bounds, dtype=np.int64), hours, side="right")
        cells: np.ndarray = table[epochs, tokens]
        return cells


def wanted_of(pairs: Sequence[tuple[str, str]]) -> Wanted:
    """`tag=key:value` filters: values of one key are alternatives, different keys all apply."""
    wanted: dict[str, set[str]] = {}
    for key, value in pairs:
        wanted.setdefault(key, set()).add(value)
    return {key: frozenset(values) for key, values in wanted.items()}


class TagBooks:
    """The current `TagBook`: the `tags` column read beside the token labels each time the token
    directory is read again (`token_refresh`), the book rebuilt only when either changed. A database without the column
    (NotInSchema) has the config's rules alone; `column` says which was found last (/readyz)."""

    def __init__(self, fetch: Fetch, rules: Sequence[TokenTagRule]) -> None:
        self.fetch = fetch
        self.rules = rules
        self.column: bool | None = None  # None: not looked at yet
        self._warned: set[str] = set()
        self._last: tuple[list[Row], list[Row], TagBook] | None = None

    async def book(self, labels: list[Row]) -> TagBook:
        try:
            rows = list((await self.fetch("token_tags")).pick("id", "tags"))
            self.column = True
        except NotInSchema:
            rows, self.column = [], False
        if self._last is not None and self._last[0] == labels and self._last[1] == rows:
            return self._last[2]
        column = {tid: parse_tags(tid, raw, self._warned) for tid, raw in rows}
        book = TagBook(((tid, prefix, name, column.get(tid, {})) for tid, prefix, name in labels), self.rules)
        self._last = (labels, rows, book)
        return book
