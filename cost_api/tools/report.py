"""`cost-api report`: the /v1/summary headline block as aligned text for a terminal or an e-mail; with
`--whatif`, `--discount` or `--book`, the /v1/whatif answer instead; with `--by`, the showback table
(/v1/spend's, as CSV, a Markdown table or a FOCUS export: docs/showback.md).

The numbers are the lenses' (`summary.summary_answer`, `whatif.whatif_answer`), never recomputed here;
this module only formats them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any

import msgspec

from cost_api.aggregation.aggregator import Filters
from cost_api.aggregation.blocks import apportion
from cost_api.config import Settings
from cost_api.errors import BadParameter
from cost_api.lenses.focus import COLUMNS as FOCUS_COLUMNS
from cost_api.lenses.focus import focus_rows
from cost_api.lenses.spend import SpendTable, csv_columns, spend_table
from cost_api.lenses.summary import summary_answer
from cost_api.lenses.whatif import WhatIf, scenario, whatif_answer
from cost_api.web.csv import document
from cost_api.web.service import build_service
from cost_api.windows import iso, local_midnight, parse_duration, parse_window, parse_zone

SHOWBACK_FORMATS = ("md", "csv", "focus")
SHOWBACK_ROWS = 1000  # keys listed before the (others) line: /v1/spend's largest `limit`


def dollars(value: float) -> str:
    """`$1,847.20`; `-$0.22` below zero."""
    return f"{'-' if value < 0 else ''}${abs(value):,.2f}"


def trend(change_pct: float | None, spend: float) -> str:
    """`↑ 13.1%`, `↓ 71.7%`, `→ 0.0%`; `new` where there was nothing before, `—` where there is nothing."""
    if change_pct is None:
        return "new" if spend else "—"
    arrow = "↑" if change_pct > 0 else "↓" if change_pct < 0 else "→"
    return f"{arrow} {abs(change_pct):.1f}%"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}%"


def _table(rows: Sequence[Sequence[str]], right: Sequence[bool], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(right))]
    lines = []
    for row in rows:
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)]
        lines.append((indent + "   ".join(cells)).rstrip())
    return lines


def render(s: dict[str, Any], *, window: str, top_window: str) -> str:
    """The headline block of a /v1/summary answer `s`."""
    lines = [f"cost-api report: {s['range']['from']} → {s['range']['to']} ({window})", ""]
    change = s["change"]
    arrow = "↑" if change > 0 else "↓" if change < 0 else "→"
    change_text = f"{arrow} {dollars(abs(change))}"
    if s["change_pct"] is not None:
        change_text += f" ({s['change_pct']:+.1f}%)"
    saved_pct = "" if s["saved_pct"] is None else f"{_pct(s['saved_pct'])} of spend"
    lines += _table(
        [
            ("Spend", dollars(s["spend"]), ""),
            ("Saved by cache", dollars(s["saved_by_cache"]), saved_pct),
            (f"Previous {window}", dollars(s["previous"]["spend"]), change_text),
            ("Requests", f"{s['requests']:,}", f"{s['cache_hits']:,} cache hits"),
        ],
        (False, True, False),
        indent="",
    )
    if s["by_provider"]:
        lines += ["", "By provider"]
        lines += _table(
            [(p["provider"], dollars(p["spend"]), _pct(p["share_pct"])) for p in s["by_provider"]],
            (False, True, True),
        )
    endpoints = s["top_endpoints"]["items"]
    tokens = s["top_tokens"]["items"]
    if endpoints or tokens:
        lines += ["", f"Top endpoints, last {top_window}"]
        lines += _table(
            [(e["endpoint"], dollars(e["spend"]), trend(e["change_pct"], e["spend"])) for e in endpoints],
            (False, True, False),
        )
        lines += ["", f"Top tokens, last {top_window}"]
        lines += _table(
            [(t["token"], t["name"] or "", dollars(t["spend"]), trend(t["change_pct"], t["spend"])) for t in tokens],
            (False, False, True, False),
        )
    pricing = s["pricing"]
    lines += ["", f"Pricing {pricing['version']}: {pricing['coverage_pct']:.1f}% of requests priced"]
    for u in pricing["unpriced"]:
        lines.append(f"  unpriced: {u['provider']}/{u['model']} ({u['requests']:,} requests)")
    lines.append(f"As of {s['as_of']}; newest request {s['latest_request_at'] or 'none'}")
    return "\n".join(lines)


async def report(settings: Settings, *, window: str, to: str | None, tz: str | None, top_window: str, top: int) -> str:
    zone = parse_zone(tz, settings.tz)
    top_span = parse_duration("top_window", top_window)
    service = build_service(settings)
    try:
        win = parse_window(window=window, from_=None, to=to, tz=zone, default="30d", now=service.clock.now())
        answer = msgspec.to_builtins(
            await summary_answer(service.aggregator, win, top_window=top_span, top=top, filters=Filters())
        )
    finally:
        await service.close()
    return render(answer, window=window, top_window=top_window)


def render_whatif(w: WhatIf, *, window: str) -> str:
    """A /v1/whatif answer as text: the totals, the substitutions, one row per key."""
    lines = [f"cost-api report --whatif: {w.range.from_} → {w.range.to} ({window})", ""]
    change = "" if w.change_pct is None else f"({w.change_pct:+.1f}%)"
    lines += _table(
        [("Spend", dollars(w.spend), ""), ("What-if", dollars(w.whatif), change)], (False, True, False), indent=""
    )
    scenario_lines = [f"  {s.from_} → {s.to}: {s.requests:,} requests" for s in w.substitutions]
    scenario_lines += [f"  {d.provider}: {d.pct:g}% off" for d in w.discounts]
    scenario_lines += [f"  price book {w.book}"] if w.book else []
    lines += ["", "Scenario", *scenario_lines]
    if w.items:
        lines += ["", f"By {w.group_by}"]
        rows = [
            (" ".join(_key(item)), dollars(item.spend), dollars(item.whatif), trend(item.change_pct, item.whatif))
            for item in w.items
        ]
        lines += _table([("", "spend", "what-if", ""), *rows], (False, True, True, False))
    if w.unpriced_requests:
        lines += ["", f"{w.unpriced_requests:,} requests the what-if cannot price (in no figure):"]
        lines += [f"  {u.provider}/{u.model} ({u.requests:,} requests)" for u in w.unpriced]
    lines.append(f"As of {w.as_of}; newest request {w.latest_request_at or 'none'}")
    return "\n".join(lines)


def _key(item: Any) -> list[str]:
    fields = ("provider", "model", "endpoint", "token", "name", "tag")
    return [v for v in (getattr(item, f) for f in fields) if isinstance(v, str)]


async def whatif_report(
    settings: Settings,
    *,
    window: str,
    to: str | None,
    tz: str | None,
    maps: Sequence[str],
    discounts: Sequence[str],
    book: str | None,
    group_by: str,
) -> str:
    zone = parse_zone(tz, settings.tz)
    service = build_service(settings)
    try:
        win = parse_window(window=window, from_=None, to=to, tz=zone, default="30d", now=service.clock.now())
        agg = service.aggregator
        sc = scenario(agg.pricing, service.price_books, maps=maps, discounts=discounts, book=book)
        answer = await whatif_answer(agg, win, sc, group_by=group_by, limit=50, filters=Filters())
    finally:
        await service.close()
    return render_whatif(answer, window=window)


def month_end(month: str, tz: Any) -> str:
    """`--month 2026-11`: the instant its last local day ends in `tz` (the window is `month` up to it)."""
    found = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if not found or not 1 <= int(found[2]) <= 12:
        raise BadParameter("month", f"expected YYYY-MM (e.g. 2026-11); got {month!r}")
    year, number = int(found[1]), int(found[2])
    return iso(local_midnight(date(year + number // 12, number % 12 + 1, 1), tz))


def cents(parts: Sequence[float], total: float) -> list[str]:
    """`parts` and their `total` as dollars to the cent, the parts apportioned from their exact values
    (the largest remainder method, as /v1/spend apportions micro-dollars) so that the cents shown add
    up to the total's, where rounding each alone can miss by a cent or more."""
    whole = round(float(f"{total:.2f}") * 100)
    return [f"${c // 100:,}.{c % 100:02d}" for c in [*apportion([p * 100 for p in parts], whole), whole]]


def render_markdown(table: SpendTable, *, title: str) -> str:
    """The showback as a Markdown table: one row per key, the `(others)` and a total line, in dollars
    to the cent that add up (`cents`)."""
    a, rows = table.answer, table.rows()[:-1]
    head = a.group_by[4:] if a.group_by.startswith("tag:") else a.group_by
    spend = cents([r.spend for r in rows], table.total.spend)
    saved = cents([r.saved_by_cache for r in rows], table.total.saved_by_cache)
    lines = [
        f"# {title}",
        "",
        f"{a.range.from_} → {a.range.to}, {a.currency}",
        "",
        f"| {head} | spend | saved by cache | requests | share |",
        "|---|---:|---:|---:|---:|",
    ]
    for i, row in enumerate([*rows, table.total]):
        key = " ".join(_key(row)).replace("|", "\\|")
        cells = [key, spend[i], saved[i], f"{row.requests:,}", _pct(row.share_pct)]
        if row is table.total:
            cells = [f"**{c}**" if c else c for c in ["total", *cells[1:]]]
        lines.append("| " + " | ".join(cells) + " |")
    pricing = a.pricing
    lines += ["", f"Pricing {pricing.version}: {pricing.coverage_pct:.1f}% of requests priced."]
    lines += [f"- unpriced, in no figure: {u.provider}/{u.model} ({u.requests:,} requests)" for u in pricing.unpriced]
    if a.data_quality.excluded_requests:
        lines.append(f"- {a.data_quality.excluded_requests:,} bad rows left out (data_quality in /v1/spend)")
    lines.append(f"As of {a.as_of}; newest request {a.latest_request_at or 'none'}.")
    return "\n".join(lines) + "\n"


async def showback(
    settings: Settings,
    *,
    by: str,
    fmt: str,
    window: str,
    to: str | None,
    month: str | None,
    tz: str | None,
) -> str:
    """`cost-api report --by tag:team --month 2026-11 --format md|csv|focus`: /v1/spend's table (the
    CSV is the one `GET /v1/spend?format=csv|focus` answers, byte for byte)."""
    if fmt not in SHOWBACK_FORMATS:
        raise BadParameter("format", f"expected md, csv or focus; got {fmt!r}")
    zone = parse_zone(tz, settings.tz)
    if month is not None:
        window, to = "month", month_end(month, zone)
    service = build_service(settings)
    try:
        win = parse_window(window=window, from_=None, to=to, tz=zone, default="30d", now=service.clock.now())
        agg = service.aggregator
        if fmt == "focus":
            return document(await focus_rows(agg, win, group_by=by, filters=Filters()), FOCUS_COLUMNS)
        table = await spend_table(agg, win, group_by=by, limit=SHOWBACK_ROWS, filters=Filters())
    finally:
        await service.close()
    if fmt == "csv":
        return document(table.rows(), csv_columns(by))
    return render_markdown(table, title=f"Showback by {by}, {month or window} ({zone.key})")
