"""What a budget caps — an endpoint, a token, or a tag value — and how the budget tracker reads it.

A `Subject` is `("endpoint", "/x")`, `("token", id or displayed prefix)` or `("tag", "team:search")`.
A refresh reads every subject's spend over a period through the one aggregation path: the endpoints in
one read grouped by endpoint, the tokens in one read grouped by token, and each tag key in one read
grouped by `tag:<key>` (the token rollup folded through the tag book: a token counts towards the team
it was in at each hour, so a token that moved team mid-period splits its spend at that instant). The
profiles the projections come from are read the same way. A `Roster` is the tokens as one refresh read
them (the directory and the tag book): it answers, from memory, which token and tag budgets apply to a
checked call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from cost_api.aggregation.aggregator import Aggregator, Filters, TokenDirectory
from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.aggregation.tags import TagBook
from cost_api.watch.forecast import Profile, fit, history_range, hourly_history
from cost_api.windows import HOUR_MS, Range, epoch_ms

Kind = Literal["endpoint", "token", "tag"]
Subject = tuple[Kind, str]


@dataclass(frozen=True, slots=True)
class Figure:
    spent: float
    unpriced_requests: int


ZERO = Figure(0.0, 0)


def of_kind(subjects: Sequence[Subject], kind: Kind) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for k, value in subjects if k == kind))


class Roster:
    """The tokens as one refresh read them: who is who (`directory`), who carries which tags when
    (`book`), and which budgets each token falls under (`tokens`: the budgets' token values)."""

    def __init__(self, directory: TokenDirectory, book: TagBook, tokens: Sequence[str]) -> None:
        self.directory = directory
        self.book = book
        self.tokens = tuple(tokens)
        self.known = set(directory.labels) | set(book.universe)
        self._by_prefix: dict[str, list[str]] = {}
        for tid, (prefix, _) in directory.labels.items():
            self._by_prefix.setdefault(prefix, []).append(tid)
        self._budgeted: dict[str, tuple[str, ...]] = {}  # token id → the budgets' token values naming it

    def names(self, value: str, tid: str) -> bool:
        """Whether a budget's `token` value names the token `tid`: its id, its displayed prefix, or (a
        token `api_tokens` does not list) the 11 characters shown for it; as the `token=` filter does."""
        label = self.directory.labels.get(tid)
        return tid == value or (label is not None and label[0] == value) or (len(value) == 11 and tid[:11] == value)

    def knows(self, subject: Subject) -> bool:
        """Whether `api_tokens` lists a token a token budget names, or a token carries a tag budget's value."""
        kind, value = subject
        if kind == "token":
            return value in self.known or value in self._by_prefix
        key, _, tag_value = value.partition(":")
        return kind == "tag" and key in self.book.keys and tag_value in self.book.values(key)

    def resolve(self, token: str) -> list[str]:
        """The token ids a checked call's `token` names: an id, or a displayed prefix (`sk-live-a1b…`)."""
        value = token.removesuffix("…").removesuffix("...")
        if value in self.known:
            return [value]
        return self._by_prefix.get(value, [value])

    def budgeted(self, tid: str) -> tuple[str, ...]:
        """The budgets' token values that name `tid` (kept: the check asks per call)."""
        found = self._budgeted.get(tid)
        if found is None:
            found = tuple(v for v in self.tokens if self.names(v, tid))
            if tid in self.known:  # a token nobody listed is not kept: the callers choose those
                self._budgeted[tid] = found
        return found

    def tags_now(self, tid: str, now: datetime) -> dict[str, str]:
        return self.book.tags(tid, self.book.epoch_at(epoch_ms(now)))

    def shown(self, value: str) -> str:
        """A budget's token as answers show tokens: its displayed prefix, never its id."""
        if value in self.directory.labels:
            return self.directory.display(value)[0]
        return value + "…" if value in self._by_prefix else TokenDirectory([]).display(value)[0]


@dataclass(frozen=True, slots=True)
class Read:
    """One read of a refresh: the subjects of one kind (of one tag key), grouped by `dim`."""

    kind: Kind
    key: str | None  # the tag key of a `tag:<key>` read
    dim: str
    filters: Filters

    def subject(self, value: str) -> Subject:
        return self.kind, value if self.key is None else f"{self.key}:{value}"


def _plan(subjects: Sequence[Subject], roster: Roster | None) -> list[Read]:
    """The reads that cover `subjects`: token and tag subjects need the roster (None: not read yet);
    a tag key no token carries is not read (its budgets have spent nothing)."""
    plan = []
    endpoints = of_kind(subjects, "endpoint")
    if endpoints:
        plan.append(Read("endpoint", None, "endpoint", Filters(endpoints=endpoints)))
    tokens = of_kind(subjects, "token")
    if tokens and roster is not None:
        plan.append(Read("token", None, "token", Filters(tokens=tokens)))
    for key in dict.fromkeys(value.partition(":")[0] for value in of_kind(subjects, "tag")):
        if roster is not None and key in roster.book.keys:
            plan.append(Read("tag", key, f"tag:{key}", Filters()))
    return plan


def _gathered(read: dict[Subject, Figure], subjects: Sequence[Subject], roster: Roster | None) -> dict[Subject, Figure]:
    """What was read, for `subjects`: a token budget's figure is the sum of the tokens it names."""
    out = {subject: read[subject] for subject in subjects if subject[0] != "token" and subject in read}
    for value in of_kind(subjects, "token"):
        named = [f for (kind, tid), f in read.items() if kind == "token" and roster and roster.names(value, tid)]
        if named:
            out["token", value] = Figure(sum(f.spent for f in named), sum(f.unpriced_requests for f in named))
    return out


async def period_spend(
    agg: Aggregator, rng: Range, subjects: Sequence[Subject], roster: Roster | None
) -> dict[Subject, Figure]:
    """Each subject's spend over `rng` (subjects without rows: absent)."""
    if rng.start >= rng.end:  # refreshed at the very instant a period began
        return {}
    plan = _plan(subjects, roster)
    directory = None if roster is None else roster.directory
    answers = await gather_or_cancel(
        *(agg.groups(rng, filters=r.filters, directory=directory, dim=r.dim, whole=True) for r in plan)
    )
    read: dict[Subject, Figure] = {}
    for r, groups in zip(plan, answers, strict=True):
        for key, totals in groups.by("key").items():
            read[r.subject(str(key))] = Figure(totals.spend, totals.unpriced_requests)
    return _gathered(read, subjects, roster)


async def subject_profiles(
    agg: Aggregator, now: datetime, subjects: Sequence[Subject], roster: Roster | None
) -> dict[Subject, Profile]:
    """Each subject's forecast profile, fitted from its hourly spend over the last four weeks (at most)."""
    rng = await history_range(agg, now)
    if rng is None:
        return {}
    plan = _plan(subjects, roster)
    directory = None if roster is None else roster.directory
    answers = await gather_or_cancel(*(hourly_history(agg, rng, r.dim, r.filters, directory) for r in plan))
    series = {r.subject(key): spend for r, hourly in zip(plan, answers, strict=True) for key, spend in hourly.items()}
    out: dict[Subject, Profile] = {}
    first = epoch_ms(rng.start) // HOUR_MS
    for subject in subjects:
        if subject[0] == "token":
            named = [
                s for (kind, tid), s in series.items() if kind == "token" and roster and roster.names(subject[1], tid)
            ]
            spend = np.sum(named, axis=0) if named else None
        else:
            spend = series.get(subject)
        if spend is not None:
            out[subject] = fit(spend, first)
    return out
