"""The price table: pricing.yaml's format and validation, model matching, and the cost of a request.

This is the single pricing engine: every spend, savings and budget figure goes through `PriceTable`.
Rates are USD per 1,000,000 tokens. The contract is spec/pricing.md; docs/pricing.md explains it.
"""

from __future__ import annotations

import bisect
import datetime
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

__all__ = [
    "MAX_THRESHOLDS",
    "SERVICE_TIERS",
    "WILDCARD",
    "Entry",
    "ModelEntry",
    "Price",
    "PriceTable",
    "PricingError",
    "PricingFile",
    "Rates",
    "ServiceTiers",
    "Tier",
    "TierPrice",
    "load_table",
    "resolve_rates",
    "service_tier",
]

MAX_THRESHOLDS = 8
"""Most distinct `above.input_tokens` values a table may use (each one is a SQL size class)."""

WILDCARD = "*"

SERVICE_TIERS = ("batch", "flex", "priority")
"""The request log's `service_tier` values that may have rates of their own (NULL = `standard`)."""

_MEMO_LIMIT = 65_536


class PricingError(Exception):
    """A pricing file that cannot be used; the message names the file and the entry."""


# --------------------------------------------------------------------------- the file format

Rate = Annotated[float, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(min_length=1)]


class Tier(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A long-context cliff: above `input_tokens` of input the whole request bills at these rates."""

    input_tokens: Annotated[int, msgspec.Meta(ge=1)]
    input: Rate
    output: Rate
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    cache_write_1h: Rate | None = None


class TierPrice(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A service tier's rates (batch, flex, priority), for requests up to the entry's `above` threshold."""

    input: Rate
    output: Rate
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    cache_write_1h: Rate | None = None


class ServiceTiers(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """`service_tiers`: the tiers a source gives rates for; a tier left out bills at the standard rates."""

    batch: TierPrice | None = None
    flex: TierPrice | None = None
    priority: TierPrice | None = None


class Price(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One `prices` entry: the rates in force from `since` (a UTC day) until the next entry."""

    since: datetime.date | None = None
    input: Rate
    output: Rate
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    cache_write_1h: Rate | None = None
    above: Tier | None = None
    service_tiers: ServiceTiers | None = None


class ModelEntry(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    provider: Name
    model: Name
    aliases: tuple[Name, ...] = ()
    prices: Annotated[tuple[Price, ...], msgspec.Meta(min_length=1)]


class PricingFile(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    version: Name
    models: tuple[ModelEntry, ...]


# --------------------------------------------------------------------------- effective entries


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens; absent cache rates already resolved (to `input`; 1-hour writes to `cache_write`)."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    cache_write_1h: float


def resolve_rates(rates: Price | Tier | TierPrice) -> Rates:
    """The rates as billed: an absent cache rate is the input rate, an absent 1-hour write rate the
    (5-minute) cache-write rate, as a log without `cache_write_1h_tokens` bills those writes."""
    cache_write = rates.input if rates.cache_write is None else rates.cache_write
    return Rates(
        input=rates.input,
        output=rates.output,
        cache_read=rates.input if rates.cache_read is None else rates.cache_read,
        cache_write=cache_write,
        cache_write_1h=cache_write if rates.cache_write_1h is None else rates.cache_write_1h,
    )


def service_tier(value: str | None) -> str | None:
    """A logged `service_tier` as priced: None for standard (NULL, blank, `standard`, or OpenAI's
    `default`), else lower case. The SQL queries apply the same rule."""
    tier = (value or "").strip().lower()
    return None if tier in ("", "standard", "default") else tier


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
    source: str  # "builtin" | "override"
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
        standard = cliff[1] if past_cliff else base
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


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser: 5x faster
    """yaml.safe_load, except that a key given twice in one mapping is an error, not a silent override."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _label(raw: Any, index: int) -> str:
    """`models[3] (openai/o3)` for an entry of the raw document, as far as it can be told."""
    label = f"models[{index}]"
    try:
        item = raw["models"][index]
        return f"{label} ({item['provider']}/{item['model']})"
    except (KeyError, IndexError, TypeError):
        return label


def _read(path: Path) -> PricingFile:
    name = str(path)
    try:
        with path.open(encoding="utf-8") as stream:  # a stream, so YAML errors name the file
            raw = yaml.load(stream, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except OSError as exc:
        raise PricingError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PricingError(f"{name}: not valid YAML: {exc}") from exc
    if isinstance(raw, dict) and isinstance(raw.get("version"), datetime.date):
        raw["version"] = raw["version"].isoformat()  # an unquoted `version: 2026-11-29`
    try:
        parsed = msgspec.convert(raw, PricingFile)
    except msgspec.ValidationError as exc:
        m = re.search(r"\$\.models\[(\d+)\]", str(exc))
        where = f"{_label(raw, int(m.group(1)))}: " if m else ""
        raise PricingError(f"{name}: {where}{exc}") from exc
    _check_entries(name, parsed)
    return parsed


def _check_entries(name: str, parsed: PricingFile) -> None:
    """What the types cannot say: dates in order, finite rates, unique names per provider."""
    taken: dict[tuple[str, str], str] = {}
    for i, m in enumerate(parsed.models):
        label = f"models[{i}] ({m.provider}/{m.model})"

        def fail(what: str, label: str = label) -> PricingError:
            return PricingError(f"{name}: {label}: {what}")

        previous: datetime.date | None = None
        for j, price in enumerate(m.prices):
            if j > 0 and price.since is None:
                raise fail(f"prices[{j}].since: required on every prices entry but the first")
            if price.since is not None:
                if previous is not None and price.since <= previous:
                    raise fail(
                        f"prices[{j}].since: dates must be strictly increasing "
                        f"({previous} then {price.since})"
                    )
                previous = price.since
            named = price.service_tiers
            blocks = [(f"prices[{j}]", price), (f"prices[{j}].above", price.above)]
            blocks += [(f"prices[{j}].service_tiers.{n}", getattr(named, n)) for n in SERVICE_TIERS if named]
            for where, rates in blocks:
                if rates is None:
                    continue
                for rate in ("input", "output", "cache_read", "cache_write", "cache_write_1h"):
                    value = getattr(rates, rate)
                    if value is not None and not math.isfinite(value):
                        raise fail(f"{where}.{rate}: must be a finite number")
        if m.model == WILDCARD and m.aliases:
            raise fail("aliases: the '*' entry matches every model and takes no aliases")
        provider = m.provider.lower()
        for k, alias in enumerate((m.model, *m.aliases)):
            what = "model" if k == 0 else f"aliases[{k - 1}]"
            if k > 0 and alias == WILDCARD:
                raise fail(f"{what}: '*' is only valid as a model")
            other = taken.get((provider, alias.lower()))
            if other is not None:
                raise fail(f"{what}: {alias!r} is already a model or alias of {other}")
            taken[(provider, alias.lower())] = label


def _thresholds(name: str, entries: Iterable[tuple[str, ModelEntry]]) -> tuple[int, ...]:
    seen: set[int] = set()
    for label, m in entries:
        for j, price in enumerate(m.prices):
            if price.above is None or price.above.input_tokens in seen:
                continue
            seen.add(price.above.input_tokens)
            if len(seen) > MAX_THRESHOLDS:
                raise PricingError(
                    f"{name}: {label}: prices[{j}].above.input_tokens: {price.above.input_tokens} is the "
                    f"{len(seen)}th distinct long-context threshold; a table may use at most {MAX_THRESHOLDS}"
                )
    return tuple(sorted(seen))


def load_table(builtin: Path, overrides: Path | None = None) -> PriceTable:
    """Read, validate and merge the built-in table and an optional overrides file.

    An override entry with the same provider and model (case-insensitive) replaces the built-in one
    (its prices; the built-in aliases keep leading to it); other override entries are added. A name an
    override entry lists is taken from any built-in entry that had it as an alias; listing a built-in
    entry's own model name as an alias of another entry is an error.
    """
    base = _read(Path(builtin))
    merged: list[tuple[str, ModelEntry, str]] = [
        (f"models[{i}] ({m.provider}/{m.model})", m, "builtin") for i, m in enumerate(base.models)
    ]
    last = str(builtin)
    _thresholds(last, ((label, m) for label, m, _ in merged))
    version = base.version
    if overrides is not None:
        extra = _read(Path(overrides))
        last = str(overrides)
        version = f"{base.version}+{extra.version}"
        merged = _merge(last, merged, extra)
    # built-in entries first: they fit on their own, so the entry named is the override that does not
    ordered = sorted(merged, key=lambda item: item[2] == "override")
    thresholds = _thresholds(last, ((label, m) for label, m, _ in ordered))
    entries = [
        Entry(
            provider=m.provider,
            model=m.model,
            aliases=m.aliases,
            prices=m.prices,
            source=source,
            thresholds=thresholds,
        )
        for _, m, source in merged
    ]
    return PriceTable(version, thresholds, entries)


def _merge(
    name: str, merged: list[tuple[str, ModelEntry, str]], extra: PricingFile
) -> list[tuple[str, ModelEntry, str]]:
    labels = [f"models[{i}] ({m.provider}/{m.model})" for i, m in enumerate(extra.models)]
    by_model = {(m.provider.lower(), m.model.lower()): i for i, m in enumerate(extra.models)}
    claimed = {
        (m.provider.lower(), n.lower()): labels[i]
        for i, m in enumerate(extra.models)
        for n in (m.model, *m.aliases)
    }
    result: list[tuple[str, ModelEntry, str]] = []
    replaced: set[int] = set()
    for label, m, _ in merged:
        provider = m.provider.lower()
        unclaimed = tuple(a for a in m.aliases if (provider, a.lower()) not in claimed)
        i = by_model.get((provider, m.model.lower()))
        if i is not None:
            # the override's prices; the built-in aliases still lead to it
            o = extra.models[i]
            result.append(
                (labels[i], msgspec.structs.replace(o, aliases=(*o.aliases, *unclaimed)), "override")
            )
            replaced.add(i)
        elif (owner := claimed.get((provider, m.model.lower()))) is not None:
            raise PricingError(
                f"{name}: {owner}: an alias is the built-in model {m.provider}/{m.model}; "
                f"override that entry (model: {m.model}) to re-price it"
            )
        else:
            result.append((label, msgspec.structs.replace(m, aliases=unclaimed), "builtin"))
    result.extend((labels[i], o, "override") for i, o in enumerate(extra.models) if i not in replaced)
    return result
