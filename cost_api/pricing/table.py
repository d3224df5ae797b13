"""The price table: model matching, dated rates and tiers, and the cost of a request.

This is the single pricing engine: every spend, savings and budget figure goes through `PriceTable`.
Rates are USD per 1,000,000 tokens. `load_table` builds it of the files `pricing.file` reads and
checks; docs/pricing.md explains them.
"""

from __future__ import annotations

import bisect
import datetime
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cost_api.pricing.file import SERVICE_TIERS, WILDCARD, Price, Source, read_merged
from cost_api.pricing.rates import Rates, resolve_rates, service_tier

__all__ = ["Entry", "PriceTable", "load_table"]

_MEMO_LIMIT = 65_536


# --------------------------------------------------------------------------- effective entries


@dataclass(frozen=True, slots=True)
class Entry:
    """One effective model entry of a `PriceTable`.

    `thresholds` are the table's (set by `load_table`): a price's `above` rates apply to the size
    classes past its own threshold's index in them.
    """

    provider: str
    model: str
    aliases: tuple[str, ...]
    prices: tuple[Price, ...]
    source: Source
    thresholds: tuple[int, ...] = field(default=(), repr=False, compare=False)
    # per price: first UTC day in force (the first entry: always), base rates, (tier class, tier rates),
    # and the service tiers' rates by name
    _days: tuple[datetime.date, ...] = field(init=False, repr=False, compare=False)
    _resolved: tuple[tuple[Rates, tuple[int, Rates] | None, dict[str, Rates]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        days = [datetime.date.min] + [p.since or datetime.date.min for p in self.prices[1:]]
        resolved = []
        for price in self.prices:
            tier = None
            if price.above is not None:
                tier = (bisect.bisect_left(self.thresholds, price.above.input_tokens), resolve_rates(price.above))
            named = price.service_tiers
            tiers = {n: resolve_rates(getattr(named, n)) for n in SERVICE_TIERS if named and getattr(named, n)}
            resolved.append((resolve_rates(price), tier, tiers))
        object.__setattr__(self, "_days", tuple(days))
        object.__setattr__(self, "_resolved", tuple(resolved))

    @property
    def key(self) -> str:
        """`provider/model`: what a logged model is `priced_as`."""
        return f"{self.provider}/{self.model}"

    @property
    def change_days(self) -> tuple[datetime.date, ...]:
        """The UTC days on which a later price comes into force."""
        return tuple(day for day in self._days[1:] if day > datetime.date.min)

    def _index(self, day: datetime.date) -> int:
        return bisect.bisect_right(self._days, day) - 1

    def price_at(self, day: datetime.date) -> Price:
        """The `prices` entry in force on that UTC day (the first one for any day before the second)."""
        return self.prices[self._index(day)]

    def rates(self, day: datetime.date, size_class: int, tier: str | None = None) -> Rates:
        """Rates in force on `day` for a request of the table's `size_class` (see `PriceTable.size_class`)
        and service `tier` (None: standard)."""
        return self.tier_rates(day, size_class, tier)[0]

    def tier_rates(self, day: datetime.date, size_class: int, tier: str | None) -> tuple[Rates, bool]:
        """The rates a request is billed at, and whether they are the standard ones only because the
        entry has no rate for its service tier (on that day, or past the long-context cliff, where a
        tier's rates are not known): such requests are counted, never priced at standard silently."""
        base, cliff, tiers = self._resolved[self._index(day)]
        past_cliff = cliff is not None and size_class > cliff[0]
        standard = cliff[1] if cliff is not None and past_cliff else base
        if tier is None:
            return standard, False
        found = None if past_cliff else tiers.get(tier)
        return (standard, True) if found is None else (found, False)


# --------------------------------------------------------------------------- matching

_PREFIXES = (
    "models/",
    *(
        f"{p}/"
        for p in (
            "openai",
            "anthropic",
            "google",
            "gemini",
            "vertex_ai",
            "bedrock",
            "groq",
            "together_ai",
            "mistral",
            "cohere",
        )
    ),
    "us.",
    "eu.",
    "apac.",
    "global.",
    "jp.",
    "anthropic.",
)
_SUFFIX = re.compile(r"(?:-v\d+:\d+|@\d{8}|-\d{8}|-\d{4}-\d{2}-\d{2}|-latest)$")


def _stripped(name: str) -> Iterator[str]:
    """The progressively undecorated forms of a (lower-case) model id, each to be tried exactly."""
    while True:
        for prefix in _PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix):
                name = name[len(prefix) :]
                yield name
                break
        else:
            break
    while (m := _SUFFIX.search(name)) is not None and m.start() > 0:
        name = name[: m.start()]
        yield name


def _utc_day(at: datetime.datetime) -> datetime.date:
    if at.tzinfo is None:  # the request log stores UTC
        return at.date()
    return at.astimezone(datetime.UTC).date()


class PriceTable:
    """The effective table (built-in plus overrides), with matching and per-request arithmetic."""

    def __init__(self, version: str, thresholds: tuple[int, ...], entries: Sequence[Entry]) -> None:
        self.version = version
        self.thresholds = thresholds
        self.entries = tuple(entries)
        self._names: dict[tuple[str, str], Entry] = {}
        self._wildcards: dict[str, Entry] = {}
        for entry in self.entries:
            provider = entry.provider.lower()
            if entry.model == WILDCARD:
                self._wildcards[provider] = entry
                continue
            for name in (entry.model, *entry.aliases):
                self._names[(provider, name.lower())] = entry
        self._memo: dict[tuple[str, str], Entry | None] = {}
        # the UTC days on which some entry's rates change: between two of them every rate is the same
        self.change_days = tuple(sorted({day for entry in self.entries for day in entry.change_days}))

    def __repr__(self) -> str:
        return f"PriceTable(version={self.version!r}, entries={len(self.entries)})"

    def match(self, provider: str, model: str) -> Entry | None:
        """The entry a logged (provider, model) is priced with, or None when it is unpriced."""
        key = (provider, model)
        try:
            return self._memo[key]
        except KeyError:
            pass
        entry = self._match(provider.strip().lower(), model.strip().lower())
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = entry
        return entry

    def _match(self, provider: str, model: str) -> Entry | None:
        names = self._names
        if (entry := names.get((provider, model))) is not None:
            return entry
        for name in _stripped(model):
            if (entry := names.get((provider, name))) is not None:
                return entry
        return self._wildcards.get(provider)

    def size_class(self, input_tokens: int) -> int:
        """How many of the table's thresholds `input_tokens` strictly exceeds."""
        return bisect.bisect_left(self.thresholds, input_tokens)

    def cost(
        self,
        entry: Entry,
        at: datetime.datetime,
        prompt: int,
        completion: int,
        cache_read: int,
        cache_write: int,
        cache_write_1h: int = 0,
        tier: str | None = None,
    ) -> float:
        """USD for one request (or a group uniform in day, size class and tier) logged at `at`.
        `cache_write_1h` is the part of `cache_write` written for an hour (docs/request-log.md)."""
        r = entry.rates(_utc_day(at), self.size_class(prompt + cache_read + cache_write), service_tier(tier))
        units = (
            prompt * r.input
            + completion * r.output
            + cache_read * r.cache_read
            + (cache_write - cache_write_1h) * r.cache_write
            + cache_write_1h * r.cache_write_1h
        )
        return units / 1_000_000

    def saved(
        self,
        entry: Entry,
        at: datetime.datetime,
        prompt_avoided: int,
        completion_avoided: int,
        tier: str | None = None,
    ) -> float:
        """USD a response-cache hit avoided, at the input/output rates in force at `at`."""
        r = entry.rates(_utc_day(at), self.size_class(prompt_avoided), service_tier(tier))
        return (prompt_avoided * r.input + completion_avoided * r.output) / 1_000_000


# --------------------------------------------------------------------------- loading


def load_table(builtin: Path, overrides: Path | None = None) -> PriceTable:
    """The table of the built-in file merged with an optional overrides file (`read_merged` says how);
    a file that cannot be used raises `PricingError`."""
    merged = read_merged(builtin, overrides)
    entries = [
        Entry(
            provider=m.provider,
            model=m.model,
            aliases=m.aliases,
            prices=m.prices,
            source=source,
            thresholds=merged.thresholds,
        )
        for m, source in merged.models
    ]
    return PriceTable(merged.version, merged.thresholds, entries)
