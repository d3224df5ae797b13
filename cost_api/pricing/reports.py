"""What `cost-api pricing check|resolve|diff` print. Each returns text (and an exit code); the CLI prints it.

`diff_genai_prices` compares every dated price of the table with the `genai-prices` package (a pinned
development dependency, read offline) and checks each disagreement against the reviewed exceptions in
docs/pricing-exceptions.yaml; tests/pricing/test_pricing_engine.py runs it.
"""

from __future__ import annotations

import datetime
import itertools
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml

from cost_api.pricing.file import SERVICE_TIERS, WILDCARD, Price, PricingError, Tier
from cost_api.pricing.rates import Rates, resolve_rates
from cost_api.pricing.table import Entry, PriceTable

__all__ = ["EXCEPTIONS", "check_report", "diff_genai_prices", "load_exceptions", "resolve_report"]

_RATES = ("input", "output", "cache_read", "cache_write")


def _num(x: float) -> str:
    return f"{x:.6g}"


def _rates_text(r: Rates) -> str:
    return " ".join(f"{name} {_num(getattr(r, name))}" for name in (*_RATES, "cache_write_1h"))


def _given(p: Price | Tier) -> str:
    """Rates as written in the file: an absent cache rate shows as `= input`."""
    parts = []
    for name in _RATES:
        value = getattr(p, name)
        parts.append(f"{name} {_num(value)}" if value is not None else f"{name} =input")
    return " ".join(parts)


def _price_text(p: Price) -> str:
    text = _given(p)
    if p.cache_write_1h is not None:
        text += f" cache_write_1h {_num(p.cache_write_1h)}"
    if p.above is not None:
        text += f"; above {p.above.input_tokens} input tokens: {_given(p.above)}"
    if p.service_tiers is not None:
        text += "; tiers: " + " ".join(n for n in SERVICE_TIERS if getattr(p.service_tiers, n))
    return text


def _next_change(entry: Entry, day: datetime.date) -> datetime.date | None:
    return next((p.since for p in entry.prices if p.since is not None and p.since > day), None)


def check_report(table: PriceTable) -> str:
    """A summary of a loaded (hence valid) table: one line per entry with its price in force today."""
    today = datetime.datetime.now(datetime.UTC).date()
    overrides = sum(e.source == "override" for e in table.entries)
    lines = [
        f"pricing {table.version}: {len(table.entries)} entries "
        f"({len(table.entries) - overrides} builtin, {overrides} override); "
        f"long-context thresholds: {', '.join(map(str, table.thresholds)) or 'none'}",
        f"prices in force on {today} (UTC), USD per 1M tokens:",
    ]
    width = max((len(e.key) for e in table.entries), default=0)
    free = []
    for e in table.entries:
        price = e.price_at(today)
        line = f"  {e.key:<{width}}  {len(e.aliases):>2} aliases  {e.source:<8}  {_price_text(price)}"
        if (change := _next_change(e, today)) is not None:
            line += f"  (changes {change})"
        lines.append(line)
        if e.model != WILDCARD and price.input == 0 and price.output == 0:
            free.append(e.key)
    if free:
        lines.append(f"warning: priced at $0 (an unknown price should be left out instead): {', '.join(free)}")
    lines.append("ok")
    return "\n".join(lines)


def _how(table: PriceTable, entry: Entry, model: str) -> str:
    name = model.strip().lower()
    if entry.model == WILDCARD:
        return f"the provider's '{WILDCARD}' entry"
    if name in {n.lower() for n in (entry.model, *entry.aliases)}:
        return "exact match" if name == entry.model.lower() else "alias"
    return "after stripping decorations"


def resolve_report(
    table: PriceTable, provider: str, model: str, at: datetime.datetime | None = None
) -> tuple[int, str]:
    """(0, what `provider`/`model` is priced as at `at`, default now) or (1, "… unpriced")."""
    entry = table.match(provider, model)
    if entry is None:
        return 1, f"{provider}/{model}: unpriced"
    at = at or datetime.datetime.now(datetime.UTC)
    day = at.astimezone(datetime.UTC).date() if at.tzinfo else at.date()
    price = entry.price_at(day)
    since = f"since {price.since}" if price.since else "since the first entry"
    lines = [
        f"{provider}/{model} is priced as {entry.key} ({entry.source}; {_how(table, entry, model)})",
        f"on {day} (UTC), {since}, USD per 1M tokens:",
        f"  {_rates_text(entry.rates(day, 0))}",
    ]
    if price.above is not None:
        tier = entry.rates(day, len(table.thresholds))
        lines.append(f"  above {price.above.input_tokens} input tokens (whole request): {_rates_text(tier)}")
    for name in SERVICE_TIERS:
        rates, standard = entry.tier_rates(day, 0, name)
        if not standard:
            lines.append(f"  {name} tier: {_rates_text(rates)}")
    if (change := _next_change(entry, day)) is not None:
        lines.append(f"next price change: {change}")
    return 0, "\n".join(lines)


# --------------------------------------------------------------------------- genai-prices

EXCEPTIONS = Path(__file__).resolve().parents[2] / "docs" / "pricing-exceptions.yaml"
"""The reviewed disagreements, in a checkout (the diff is a development check, not shipped)."""

TOLERANCE = 0.005
"""Rates further apart than 0.5% of the larger one disagree."""


class PriceException(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One accepted disagreement: a period of one model, the rates that differ, and why."""

    model: Annotated[str, msgspec.Meta(min_length=3)]  # provider/model as the diff names it
    since: datetime.date | None = None  # the first day of the period; absent: from the first price
    rates: Annotated[tuple[str, ...], msgspec.Meta(min_length=1)]  # e.g. input, cache_read above 200000
    wrong: Literal["genai-prices", "cost-api"]  # which source is wrong for that period
    why: Annotated[str, msgspec.Meta(min_length=1)]


class ExceptionsFile(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    genai_prices: str  # the version the exceptions were reviewed against
    exceptions: tuple[PriceException, ...] = ()


def load_exceptions(path: Path) -> ExceptionsFile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return msgspec.convert(raw, ExceptionsFile)
    except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
        raise PricingError(f"{path}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Period:
    """One period of one compared model: a rate on which the two sources disagree."""

    model: str  # provider/name: the entry, or an alias that genai-prices prices as another model
    theirs: str  # the genai-prices model id
    since: datetime.date | None
    until: datetime.date | None
    rate: str
    ours: float
    their: float

    def matches(self, e: PriceException) -> bool:
        return (e.model, e.since) == (self.model, self.since) and self.rate in e.rates


def _rates_at(price: Price, size: int) -> Price | Tier:
    """Our rates for a request of `size` input tokens: the base ones or the cliff's."""
    return price.above if price.above is not None and size > price.above.input_tokens else price


def _their_rate(model_price: Any, name: str, size: int) -> float:
    """genai-prices' rate: unpriced cache tokens bill as input tokens there, unpriced input/output at 0."""
    value = getattr(model_price, f"{name}_mtok", None)
    if value is None:
        return _their_rate(model_price, "input", size) if name.startswith("cache_") else 0.0
    if hasattr(value, "tiers"):  # a cliff, as ours: above a tier's start, every token at its price
        price = value.base
        for tier in value.tiers:
            if size > tier.start:
                price = tier.price
        return float(price)
    return float(value)


def _their_thresholds(model_price: Any) -> set[int]:
    values: Iterable[Any] = (getattr(model_price, f"{name}_mtok", None) for name in _RATES)
    return {int(t.start) for v in values if hasattr(v, "tiers") for t in v.tiers}


def _their_days(model: Any) -> list[datetime.date]:
    """The start dates of a genai-prices model's conditional prices (its price history)."""
    prices = model.prices if isinstance(model.prices, list) else []
    return [c.constraint.start_date for c in prices if getattr(c.constraint, "start_date", None)]


def _their_prices(model: Any) -> list[Any]:
    """Every price set of a genai-prices model, whatever its dates."""
    return [c.prices for c in model.prices] if isinstance(model.prices, list) else [model.prices]


def _disagree(a: float, b: float) -> bool:
    return abs(a - b) > TOLERANCE * max(abs(a), abs(b))


def _compare(entry: Entry, label: str, model: Any) -> list[_Period]:
    """Every period where our history or theirs changes, at base size and past every threshold."""
    days = sorted({p.since for p in entry.prices if p.since is not None} | set(_their_days(model)))
    periods = list(itertools.pairwise([None, *days, None]))
    found = []
    for since, until in periods:
        day = since or datetime.date.min
        ours = entry.price_at(day)
        theirs = model.get_prices(datetime.datetime.combine(day, datetime.time(), datetime.UTC))
        thresholds = _their_thresholds(theirs) | ({ours.above.input_tokens} if ours.above else set())
        for size in (0, *(t + 1 for t in sorted(thresholds))):
            given = _rates_at(ours, size)
            for name in _RATES:
                if getattr(given, name) is None and getattr(theirs, f"{name}_mtok", None) is None:
                    continue  # a cache rate neither source sets: those tokens are input on both sides
                mine, their = getattr(resolve_rates(given), name), _their_rate(theirs, name, size)
                if _disagree(mine, their):
                    rate = name if size == 0 else f"{name} above {size - 1}"
                    found.append(_Period(label, model.id, since, until, rate, mine, their))
    return found


def _when(since: datetime.date | None, until: datetime.date | None) -> str:
    if since is None:
        return "always" if until is None else f"until {until}"
    return f"from {since}" if until is None else f"from {since} until {until}"


def _missing(table: PriceTable, provider: Any, covered: set[str]) -> list[str]:
    """The models genai-prices prices by the token for `provider` that no entry of ours leads to."""
    missing = []
    for model in provider.models:
        priced = any(_their_rate(p, n, 0) for p in _their_prices(model) for n in ("input", "output"))
        if priced and model.id not in covered and table.match(provider.id, model.id) is None:
            missing.append(model.id + (" (deprecated)" if model.deprecated else ""))
    return missing


@dataclass
class _Comparison:
    found: list[_Period] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # our entries genai-prices has no model for
    covered: dict[str, set[str]] = field(default_factory=dict)  # provider -> genai-prices ids we lead to


def _compare_table(entries: list[Entry], providers: dict[str, Any]) -> _Comparison:
    result = _Comparison()
    for entry in entries:
        provider = providers.get(entry.provider)
        # genai-prices model id -> (the first of our names that leads to it, the model)
        models: dict[str, tuple[str, Any]] = {}
        for name in (entry.model, *entry.aliases):
            model = provider.find_model(name) if provider else None
            if model is not None:
                models.setdefault(model.id, (f"{entry.provider}/{name}", model))
        if not models:
            result.unknown.append(entry.key)
        result.covered.setdefault(entry.provider, set()).update(models)
        for label, model in models.values():
            result.found += _compare(entry, label, model)
    return result


def diff_genai_prices(table: PriceTable, exceptions: Path | None = EXCEPTIONS) -> tuple[int, str]:
    """Compare every dated price of every built-in entry with the installed genai-prices package.

    genai-prices is read offline, from the price data the package ships. Rates more than 0.5% apart
    in any period are a disagreement; each must be listed in the exceptions file (model, period,
    rates, which source is wrong and why). Exit code 0: every disagreement is listed and every
    listed one still happens; 1: a new disagreement, a listed one that no longer happens, or
    exceptions reviewed against another genai-prices version; 2: genai-prices is not installed.
    The models genai-prices prices for our providers that the table lacks are listed too.
    """
    try:
        from genai_prices import __version__ as version
        from genai_prices.data import providers
    except ImportError:
        return 2, "genai-prices is not installed: install the dev extras to compare (pip install -e '.[dev]')"
    reviewed = load_exceptions(exceptions) if exceptions is not None and exceptions.is_file() else None
    listed = reviewed.exceptions if reviewed else ()
    theirs = {p.id: p for p in providers}
    builtin = [e for e in table.entries if e.source == "builtin" and e.model != WILDCARD]
    comparison = _compare_table(builtin, theirs)
    found = comparison.found

    lines = [
        f"pricing {table.version} vs genai-prices {version} (its shipped data): every dated price of "
        f"{len(builtin)} built-in entries, ours vs theirs, USD per 1M tokens; disagreements beyond "
        f"{TOLERANCE:.1%}:"
    ]
    new = 0
    grouped: dict[tuple[str, str, datetime.date | None, datetime.date | None], list[_Period]] = {}
    for period in found:
        grouped.setdefault((period.model, period.theirs, period.since, period.until), []).append(period)
    for (model, their_id, since, until), rates in grouped.items():
        lines.append(f"  {model} (genai-prices {their_id}) {_when(since, until)}:")
        for r in rates:
            exception = next((e for e in listed if r.matches(e)), None)
            verdict = f"listed: {exception.wrong} wrong" if exception else "NEW"
            new += exception is None
            lines.append(f"    {r.rate} {_num(r.ours)} vs {_num(r.their)}  [{verdict}]")
    if not found:
        lines.append("  none")
    stale = [
        f"  {e.model} {_when(e.since, None).replace('always', 'from the first price')}: {rate}"
        for e in listed
        for rate in e.rates
        if not any(p.matches(e) and p.rate == rate for p in found)
    ]
    if stale:
        lines.append(f"listed in {exceptions} but no longer disagreeing ({len(stale)}): remove them")
        lines += stale
    if reviewed is None:
        lines.append(f"no exceptions file at {exceptions}: every disagreement counts as new")
    elif reviewed.genai_prices != version:
        lines.append(
            f"the exceptions were reviewed against genai-prices {reviewed.genai_prices}, not {version}: "
            "review each one and set genai_prices"
        )
    if comparison.unknown:
        lines.append(f"not in genai-prices ({len(comparison.unknown)}): {', '.join(comparison.unknown)}")
    for provider_id, covered in sorted(comparison.covered.items()):
        missing = _missing(table, theirs[provider_id], covered) if provider_id in theirs else []
        if missing:
            head = f"priced by genai-prices, not in the table ({provider_id}, {len(missing)}): "
            lines += textwrap.wrap(
                head + ", ".join(missing), width=110, subsequent_indent="    ", break_on_hyphens=False
            )
    overrides = sum(e.source == "override" for e in table.entries)
    if overrides:
        lines.append(f"{overrides} override entries not compared (negotiated prices differ on purpose)")
    outdated = reviewed is not None and reviewed.genai_prices != version
    failed = bool(new or stale or outdated)
    lines.append(
        f"{len(found)} rate disagreements in {len(grouped)} periods: {len(found) - new} listed, {new} new; "
        f"{len(stale)} listed that no longer disagree" + (" — FAIL" if failed else " — ok")
    )
    return (1 if failed else 0), "\n".join(lines)
