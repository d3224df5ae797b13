"""What `cost-api pricing check|resolve|diff` print. Each returns text (and an exit code); the CLI prints it.

`diff_genai_prices` compares the table with the `genai-prices` package when it is installed; it is a
release-time check, not a dependency.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from cost_api.pricing import WILDCARD, Entry, Price, PriceTable, Rates, Tier

__all__ = ["check_report", "diff_genai_prices", "resolve_report"]

_RATES = ("input", "output", "cache_read", "cache_write")


def _num(x: float) -> str:
    return f"{x:.6g}"


def _rates_text(r: Rates) -> str:
    return " ".join(f"{name} {_num(getattr(r, name))}" for name in _RATES)


def _given(p: Price | Tier) -> str:
    """Rates as written in the file: an absent cache rate shows as `= input`."""
    parts = []
    for name in _RATES:
        value = getattr(p, name)
        parts.append(f"{name} {_num(value)}" if value is not None else f"{name} =input")
    return " ".join(parts)


def _price_text(p: Price) -> str:
    text = _given(p)
    if p.above is not None:
        text += f"; above {p.above.input_tokens} input tokens: {_given(p.above)}"
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
    if (change := _next_change(entry, day)) is not None:
        lines.append(f"next price change: {change}")
    return 0, "\n".join(lines)


# --------------------------------------------------------------------------- genai-prices


def _base(value: Any) -> tuple[float | None, tuple[int, float] | None]:
    """(base rate, first tier as (threshold, rate)) of a genai-prices price value."""
    if value is None:
        return None, None
    if isinstance(value, Decimal | int | float):
        return float(value), None
    tiers = getattr(value, "tiers", None) or []
    first = (int(tiers[0].start), float(tiers[0].price)) if tiers else None
    return float(value.base), first


def _differences(table: PriceTable, entry: Entry, day: datetime.date, model_price: Any) -> list[str]:
    ours = entry.rates(day, 0)
    above = entry.price_at(day).above
    theirs: dict[str, tuple[float | None, tuple[int, float] | None]] = {
        name: _base(getattr(model_price, f"{name}_mtok", None)) for name in _RATES
    }
    g_input = theirs["input"][0]
    out = []
    for name in _RATES:
        mine = getattr(ours, name)
        value, _ = theirs[name]
        if value is None:
            # there, unpriced cache tokens bill as input, and an unpriced input/output costs nothing
            value = (g_input or 0.0) if name in ("cache_read", "cache_write") else 0.0
        if abs(mine - value) > 1e-9:
            out.append(f"{name} {_num(mine)} vs {_num(value)}")
    for name in ("input", "output"):
        tier = theirs[name][1]
        mine_tier = None
        if above is not None:
            mine_tier = (above.input_tokens, getattr(entry.rates(day, len(table.thresholds)), name))
        same = mine_tier == tier or (
            mine_tier is not None
            and tier is not None
            and mine_tier[0] == tier[0]
            and abs(mine_tier[1] - tier[1]) <= 1e-9
        )
        if not same:
            mt = f">{mine_tier[0]}: {_num(mine_tier[1])}" if mine_tier else "no tier"
            gt = f">{tier[0]}: {_num(tier[1])}" if tier else "no tier"
            out.append(f"{name} tier {mt} vs {gt}")
    return out


def diff_genai_prices(table: PriceTable) -> tuple[int, str]:
    """Compare today's rates with the installed genai-prices package.

    Exit code 0: no differences; 1: some rates differ (each listed); 2: genai-prices is not installed.
    Models genai-prices does not know are listed too, but do not count as differences.
    """
    try:
        import genai_prices
    except ImportError:
        return 2, "genai-prices is not installed: install genai-prices to compare (pip install genai-prices)"
    now = datetime.datetime.now(datetime.UTC)
    day = now.date()
    version = getattr(genai_prices, "__version__", "?")
    differ: list[str] = []
    unknown: list[str] = []
    for entry in table.entries:
        if entry.model == WILDCARD:
            continue
        try:
            calc = genai_prices.calc_price(
                genai_prices.Usage(input_tokens=0, output_tokens=0),
                entry.model,
                provider_id=entry.provider,
                genai_request_timestamp=now,
            )
        except LookupError:
            unknown.append(entry.key)
            continue
        found = _differences(table, entry, day, calc.model_price)
        if found:
            differ.append(f"  {entry.key} (genai-prices: {calc.model.id}): {'; '.join(found)}")
    lines = [
        f"pricing {table.version} vs genai-prices {version}, rates in force on {day} (UTC), "
        "ours vs theirs, USD per 1M tokens:"
    ]
    lines += differ or ["  no differences"]
    if unknown:
        lines.append(f"not in genai-prices ({len(unknown)}): {', '.join(unknown)}")
    lines.append(f"{len(differ)} of {len(table.entries)} entries differ")
    return (1 if differ else 0), "\n".join(lines)
