"""pricing.yaml's format and its checks: the built-in table and an overrides file, read and merged.

Every error is a `PricingError` that names the file and the entry (`models[3] (openai/o3)`).
Rates are USD per 1,000,000 tokens; docs/pricing.md explains the file.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import yaml

__all__ = [
    "MAX_THRESHOLDS",
    "SERVICE_TIERS",
    "WILDCARD",
    "Merged",
    "ModelEntry",
    "Price",
    "PricingError",
    "PricingFile",
    "ServiceTiers",
    "Tier",
    "TierPrice",
    "read_merged",
]

MAX_THRESHOLDS = 8
"""Most distinct `above.input_tokens` values a table may use (each one is a SQL size class)."""

WILDCARD = "*"
Source = Literal["builtin", "override"]  # where an entry of the merged table comes from

SERVICE_TIERS = ("batch", "flex", "priority")
"""The request log's `service_tier` values that may have rates of their own (NULL = `standard`)."""


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


# --------------------------------------------------------------------------- reading and checking


if TYPE_CHECKING:  # the checker needs a static base; CSafeLoader has SafeLoader's interface
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when built with it


class _UniqueKeyLoader(_SafeLoader):  # libyaml's parser: 5x faster
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
                    raise fail(f"prices[{j}].since: dates must be strictly increasing ({previous} then {price.since})")
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


@dataclass(frozen=True, slots=True)
class Merged:
    """The built-in table with the overrides merged in, checked: what `load_table` builds its table of."""

    version: str  # the built-in file's, `+` the overrides file's
    thresholds: tuple[int, ...]  # the distinct `above.input_tokens` of all the entries, ascending
    models: tuple[tuple[ModelEntry, Source], ...]  # each with its source


def read_merged(builtin: Path, overrides: Path | None = None) -> Merged:
    """Read, validate and merge the built-in table and an optional overrides file.

    An override entry with the same provider and model (case-insensitive) replaces the built-in one
    (its prices; the built-in aliases keep leading to it); other override entries are added. A name an
    override entry lists is taken from any built-in entry that had it as an alias; listing a built-in
    entry's own model name as an alias of another entry is an error.
    """
    base = _read(Path(builtin))
    merged: list[tuple[str, ModelEntry, Source]] = [
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
    return Merged(version, thresholds, tuple((m, source) for _, m, source in merged))


def _merge(
    name: str, merged: list[tuple[str, ModelEntry, Source]], extra: PricingFile
) -> list[tuple[str, ModelEntry, Source]]:
    labels = [f"models[{i}] ({m.provider}/{m.model})" for i, m in enumerate(extra.models)]
    by_model = {(m.provider.lower(), m.model.lower()): i for i, m in enumerate(extra.models)}
    claimed = {
        (m.provider.lower(), n.lower()): labels[i] for i, m in enumerate(extra.models) for n in (m.model, *m.aliases)
    }
    result: list[tuple[str, ModelEntry, Source]] = []
    replaced: set[int] = set()
    for label, m, _ in merged:
        provider = m.provider.lower()
        unclaimed = tuple(a for a in m.aliases if (provider, a.lower()) not in claimed)
        i = by_model.get((provider, m.model.lower()))
        if i is not None:
            # the override's prices; the built-in aliases still lead to it
            o = extra.models[i]
            result.append((labels[i], msgspec.structs.replace(o, aliases=(*o.aliases, *unclaimed)), "override"))
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
