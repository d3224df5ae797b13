"""The Grafana JSON datasource (simpod-json-datasource 0.3–0.6) over the /v1 lenses.

Every number comes from a lens (`spend`, `summary`, `live`) or from /v1/trend's computation
(`trend.chart`): a Grafana answer and the /v1 answer for the same range are the same figures. This
module only translates: Grafana's request bodies in (read leniently: unknown keys ignored, `payload`
as an object, a JSON string or nothing), its shapes out (time series `{target, datapoints}`, tables
`{type: "table", columns, rows}`). docs/grafana.md is the guide.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from cost_api.aggregation.aggregator import Aggregator, Filters, TokenDirectory, dimension, money
from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.aggregation.groups import Groups, Totals
from cost_api.errors import BadParameter
from cost_api.lenses import spend, trend
from cost_api.lenses.live import live
from cost_api.lenses.summary import summary
from cost_api.text import refuse_control
from cost_api.watch import anomalies
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.service import Service
from cost_api.windows import (
    HOUR_MS,
    MAX_BUCKETS,
    Range,
    Window,
    epoch_ms,
    parse_instant,
    parse_window,
)

DAY_MS = trend.DAY_MS
MINUTE_MS = 60_000
# Bucket sizes a series may take: the smallest one that is at least Grafana's `intervalMs`, gives at
# most `maxDataPoints` (and MAX_BUCKETS) points (past `1d`, as many local days as that takes). Sub-day
# steps are aligned to UTC multiples of the step; `1d` buckets are the local days of the dashboard's
# zone, as /v1/trend has them (`trend.step_buckets`).
STEPS = {
    "1m": MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "3h": 3 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
}
_STEP_ALIASES = {"hour": "1h", "day": "1d", "60m": "1h", "24h": "1d"}
DEFAULT_WINDOW = "30d"  # without a `range`: what variables and tag values offer, what /query answers
# What a body may ask for at once (docs/grafana.md): each target is a read of its own, each ad-hoc
# filter and each value of a filter is matched against every logged value.
MAX_TARGETS = 20
MAX_ADHOC_FILTERS = 20
MAX_FILTER_VALUES = 100
FILTER_KEYS = ("provider", "model", "endpoint", "token")
_FILTER_FIELDS = {"provider": "providers", "model": "models", "endpoint": "endpoints", "token": "tokens"}
_ALL = frozenset({"$__all", ".*", "(.*)", ".+"})
_REGEX_META = re.compile(r"[\\^$*+?()|\[\]{}]")
_VARIABLE_REF = re.compile(r"^\$(?:\{(\w+)(?::\w+)?\}|(\w+))$")


# --------------------------------------------------------------------------- the catalogue

SERIES: dict[str, tuple[str, Callable[[Totals], float]]] = {
    "spend": ("Spend (USD)", lambda t: money(t.spend)),
    "saved_by_cache": ("Saved by cache (USD)", lambda t: money(t.saved_by_cache)),
    "requests": ("Requests", lambda t: t.requests),
    "tokens": (
        "Tokens (prompt + completion + cache read + cache write)",
        lambda t: t.prompt_tokens + t.completion_tokens + t.cache_read_tokens + t.cache_write_tokens,
    ),
}


@dataclass(frozen=True, slots=True)
class Table:
    label: str
    group_by: str  # the /v1/spend lens behind it
    limit: int  # rows, unless the payload says `limit`
    keys: tuple[tuple[str, str], ...]  # (item field, column text)


_SPEND_COLUMNS = (
    ("spend", "Spend"),
    ("share_pct", "Share %"),
    ("requests", "Requests"),
    ("saved_by_cache", "Saved by cache"),
    ("previous_spend", "Previous spend"),
    ("change_pct", "Change %"),
)
TABLES = {
    "by_provider": Table("Spend by provider (table)", "provider", 50, (("provider", "Provider"),)),
    "top_endpoints": Table("Top endpoints (table)", "endpoint", 10, (("endpoint", "Endpoint"),)),
    "top_tokens": Table("Top tokens (table)", "token", 10, (("token", "Token"), ("name", "Name"))),
    "top_models": Table(
        "Top models (table)", "model", 10, (("provider", "Provider"), ("model", "Model"), ("priced_as", "Priced as"))
    ),
}
SUMMARY_COLUMNS = (
    ("spend", "Spend"),
    ("saved_by_cache", "Saved by cache"),
    ("saved_pct", "Saved %"),
    ("previous_spend", "Previous spend"),
    ("change", "Change"),
    ("change_pct", "Change %"),
    ("requests", "Requests"),
    ("cache_hits", "Cache hits"),
)
LIVE_COLUMNS = (
    ("spend", "Spend"),
    ("saved_by_cache", "Saved by cache"),
    ("requests", "Requests"),
    ("cache_hits", "Cache hits"),
    ("errors", "Errors"),
    ("spend_rate_per_hour", "Spend rate per hour"),
    ("lag_seconds", "Lag seconds"),
)
OTHERS = {
    "summary": "Headline: spend, saved by cache, change vs the previous period (table)",
    "live": "The last hour of the range: spend, savings, errors, burn rate (table)",
    "anomalies": "Anomaly episodes (annotations: time, timeEnd, title, text, tags)",
}
VARIABLES = {"providers": "provider", "models": "model", "endpoints": "endpoint", "tokens": "token"}


def _filter_payloads() -> list[dict[str, Any]]:
    return [
        {"name": key, "label": key.capitalize(), "type": "multi-select", "placeholder": "all"} for key in FILTER_KEYS
    ]


def metrics() -> list[dict[str, Any]]:
    """The /metrics answer: every target with its payload fields (the builder mode's form)."""
    series_payloads = [
        {
            "name": "group_by",
            "label": "Group by",
            "type": "select",
            "options": [{"label": "none", "value": ""}]
            + [{"label": name.capitalize(), "value": name} for name in trend.GROUP_BY],
        },
        {"name": "top", "label": "Series", "type": "input", "placeholder": "8 (the rest as other)"},
        {
            "name": "interval",
            "label": "Interval",
            "type": "select",
            "options": [{"label": "auto", "value": ""}] + [{"label": s, "value": s} for s in STEPS],
        },
        *_filter_payloads(),
    ]
    table_payloads = [{"name": "limit", "label": "Rows", "type": "input", "placeholder": "10"}, *_filter_payloads()]
    out = [{"value": name, "label": label, "payloads": series_payloads} for name, (label, _) in SERIES.items()]
    out += [{"value": name, "label": table.label, "payloads": table_payloads} for name, table in TABLES.items()]
    out += [
        {"value": name, "label": label, "payloads": [] if name == "anomalies" else _filter_payloads()}
        for name, label in OTHERS.items()
    ]
    for item in out:
        item["text"] = item["value"]  # plugins before 0.4 read `text` and `value` from /search
    return out


TAG_KEYS = [{"type": "string", "text": key} for key in FILTER_KEYS]


# --------------------------------------------------------------------------- reading bodies


def decode(raw: bytes) -> dict[str, Any]:
    """A request body: a JSON object (an empty body is `{}`) without control characters in its
    strings; anything else is a 400."""
    if not raw.strip():
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BadParameter("body", f"expected a JSON object: {exc}") from exc
    except RecursionError as exc:  # msgspec's own limit, some 1,000 levels down
        raise BadParameter("body", "expected a JSON object: nested too deeply") from exc
    if not isinstance(body, dict):
        raise BadParameter("body", f"expected a JSON object, got a JSON {type(body).__name__}")
    refuse_controls(body)
    return body


def refuse_controls(value: Any, field: str = "") -> None:
    """A 400 naming the first string in `value` (at `field`) that holds a control character, by its
    path: `targets[0].payload.provider`, `filters[1].value`."""
    stack = [(field, value)]
    while stack:  # not recursive: a body may nest as deep as msgspec reads
        at, item = stack.pop()
        if isinstance(item, str):
            refuse_control(at, item)
        elif isinstance(item, dict):
            stack += [(f"{at}.{key}" if at else str(key), v) for key, v in reversed(item.items())]
        elif isinstance(item, list):
            stack += [(f"{at}[{i}]", v) for i, v in reversed(list(enumerate(item)))]


def payload_of(value: Any, field: str = "payload") -> dict[str, Any]:
    """A target's `payload` (at `field`): an object, JSON text of one (plugins before 0.4), or nothing."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str | bytes) and value.strip():
        try:
            parsed = msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError):
            return {}
        if not isinstance(parsed, dict):
            return {}
        refuse_controls(parsed, field)
        return parsed
    return {}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _instant(value: Any) -> str | None:
    """`range.from`/`to` as `parse_instant` reads them: ISO text, or epoch ms as a number."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return str(int(value))
    return str(value)


def zone(body: dict[str, Any], payload: dict[str, Any], default: str) -> zoneinfo.ZoneInfo:
    """The zone of day buckets: the payload's `tz`, the dashboard's `timezone` when it names a
    zone (`utc` or an IANA name; `browser` does not), else the configured `tz`."""
    for name in (payload.get("tz"), body.get("timezone")):
        if isinstance(name, str) and name.strip():
            name = "UTC" if name.strip().lower() == "utc" else name.strip()
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
                continue
    return zoneinfo.ZoneInfo(default)


def window(body: dict[str, Any], tz: zoneinfo.ZoneInfo) -> Window:
    """The request's `range` (Grafana's `range`, or `timeRange` of newer tag-value calls) and its
    previous period, exactly as /v1 reads `from`/`to`; without one, the last 30 days."""
    rng = body.get("range") or body.get("timeRange")
    if not isinstance(rng, dict):
        return parse_window(window=None, from_=None, to=None, tz=tz, default=DEFAULT_WINDOW)
    start, end = _instant(rng.get("from")), _instant(rng.get("to"))
    return parse_window(window=None, from_=start, to=end, tz=tz, default=DEFAULT_WINDOW)


def targets(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets to answer: hidden ones and placeholders without a `target` dropped."""
    raw = body.get("targets")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadParameter("targets", "expected an array of targets")
    if len(raw) > MAX_TARGETS:
        raise BadParameter(
            "targets", f"at most {MAX_TARGETS} per query, hidden ones included; got {len(raw)}: split the panel"
        )
    return [t for t in raw if isinstance(t, dict) and t.get("hide") is not True and _named(t.get("target"))]


def _named(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def adhoc_filters(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Ad-hoc filters: `filters` (plugin 0.6.4+, set by Grafana) and `adhocFilters` (older ones)."""
    found: list[dict[str, Any]] = []
    for name in ("filters", "adhocFilters"):
        value = body.get(name)
        if isinstance(value, list):
            if len(value) > MAX_ADHOC_FILTERS:
                raise BadParameter(name, f"at most {MAX_ADHOC_FILTERS} ad-hoc filters; got {len(value)}")
            found += [f for f in value if isinstance(f, dict) and f not in found]
    return found


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True, slots=True)
class Match:
    """What one filter keeps of a key's values: literals, regular expressions (where Grafana's
    `regex` formatting made one of a variable: `(openai|groq)`, `\\/summarise\\-ticket`), or the rest."""

    literals: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()
    negate: bool = False

    @property
    def literal(self) -> bool:
        return not self.patterns and not self.negate

    def keeps(self, value: str, text: str) -> bool:
        hit = value in self.literals or any(p.fullmatch(value) or p.fullmatch(text) for p in self.patterns)
        return hit != self.negate


def _strings(value: Any) -> list[str]:
    items = value if isinstance(value, list | tuple) else [value]
    return [str(v) for v in items if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v) != ""]


def _substitute(values: list[str], scoped: dict[str, Any]) -> list[str] | None:
    """A `$var` Grafana left in a payload, taken from `scopedVars`; None (no filter) when it is not
    there either, as Grafana leaves a variable the dashboard does not have."""
    out: list[str] = []
    for value in values:
        ref = _VARIABLE_REF.match(value)
        if ref is None:
            out.append(value)
            continue
        var = scoped.get(ref.group(1) or ref.group(2))
        if not isinstance(var, dict):
            return None
        out += _strings(var.get("value"))
    return out


def payload_match(raw: Any, scoped: dict[str, Any], field: str) -> Match | None:
    """A payload filter (a string or a multi-select's list) at `field`: None when it keeps everything."""
    values = _substitute(_strings(raw), scoped)
    if not values or any(v in _ALL for v in values):  # no filter, `All`, or a variable Grafana left
        return None
    if len(values) > MAX_FILTER_VALUES:
        raise BadParameter(field, f"at most {MAX_FILTER_VALUES} values (variables substituted); got {len(values)}")
    literals, patterns = set(), []
    for value in values:
        if _REGEX_META.search(value):
            try:
                patterns.append(re.compile(value))
                continue
            except re.error:
                pass
        literals.add(value)
    return Match(frozenset(literals), tuple(patterns))


def adhoc_match(index: int, item: dict[str, Any]) -> tuple[str, Match]:
    key, operator, value = item.get("key"), item.get("operator") or "=", item.get("value")
    field = f"filters[{index}]"
    if key not in FILTER_KEYS:
        raise BadParameter(f"{field}.key", f"expected one of {', '.join(FILTER_KEYS)}; got {key!r}")
    text = "" if value is None else str(value)
    if operator in ("=", "!="):
        return key, Match(frozenset({text}), negate=operator == "!=")
    if operator in ("=~", "!~"):
        try:
            return key, Match(patterns=(re.compile(text),), negate=operator == "!~")
        except re.error as exc:
            raise BadParameter(f"{field}.value", f"not a regular expression: {exc}") from exc
    raise BadParameter(f"{field}.operator", f"expected =, !=, =~ or !~; got {operator!r}")


async def known_values(
    agg: Aggregator, rng: Range, key: str, *, filters: Filters | None = None, directory: TokenDirectory | None = None
) -> list[tuple[str, str]]:
    """(value, text) of every value of `key` logged in `rng` under `filters`, sorted by text
    (`trend.key_values`). A token's value is its displayed prefix (what `token=` filters take), its
    text adds the name."""
    return await trend.key_values(agg, rng, key, filters=filters or Filters(), directory=directory)


async def resolve_filters(
    agg: Aggregator,
    rng: Range,
    directory: TokenDirectory,
    payload: dict[str, Any],
    adhoc: list[dict[str, Any]],
    scoped: dict[str, Any],
    where: str,
) -> Filters | None:
    """The payload's filters and the ad-hoc ones as `Filters` (all of them hold: AND across them,
    OR within one multi-value). Literal values pass through as /v1 takes them; a regular expression
    or a negation is resolved against the values logged in the range. None: some key keeps no value,
    so no row can match. `where`: the payload's place in the body, for errors."""
    wanted: dict[str, list[Match]] = {key: [] for key in FILTER_KEYS}
    for key in FILTER_KEYS:
        match = payload_match(payload.get(key), scoped, f"{where}.{key}")
        if match is not None:
            wanted[key].append(match)
    for index, item in enumerate(adhoc):
        key, match = adhoc_match(index, item)
        wanted[key].append(match)
    chosen: dict[str, tuple[str, ...]] = {}
    for key, matches in wanted.items():
        if not matches:
            continue
        if all(m.literal for m in matches):
            kept = set.intersection(*(set(m.literals) for m in matches))
        else:
            values = await known_values(agg, rng, key, directory=directory)
            kept = {value for value, text in values if all(m.keeps(value, text) for m in matches)}
        if not kept:
            return None
        chosen[_FILTER_FIELDS[key]] = tuple(sorted(kept))
    return Filters(**chosen)


class NoRows:
    """The aggregator as the lenses see it when a filter keeps no value: no groups in any range, so
    each lens gives its own empty answer (zeros, no rows, no series) and nothing is sent to the
    database; the token directory and the log's freshness are the real ones."""

    def __init__(self, agg: Aggregator) -> None:
        self.pricing = agg.pricing
        self.vocab = agg.vocab
        self.tokens = agg.tokens
        self.freshness = agg.freshness

    async def groups(self, rng: Range, *, slot_ms: int = HOUR_MS, **_: Any) -> Groups:
        return Groups.concat(self.vocab, slot_ms, [])

    async def groups_many(self, *requests: tuple[Range, dict[str, Any]]) -> list[Groups]:
        return [await self.groups(rng, **kw) for rng, kw in requests]


# --------------------------------------------------------------------------- time series


def pick_step(rng: Range, days: int, interval_ms: Any, max_points: Any, asked: Any) -> int:
    """The bucket size over `rng` (which overlaps `days` local days): the payload's `interval` if given
    (at most MAX_BUCKETS points), else the smallest step that is at least `intervalMs` and gives at
    most `maxDataPoints` points (and MAX_BUCKETS): one of STEPS, or as many whole local days as that
    takes. Whatever the range and the interval asked for, a series has that many points at most."""
    start, end = epoch_ms(rng.start), epoch_ms(rng.end)

    def points(step: int) -> int:
        if step % DAY_MS == 0:
            return -(-days // (step // DAY_MS))
        return -(-end // step) - start // step

    if isinstance(asked, str) and asked.strip() and asked.strip() != "auto":
        name = _STEP_ALIASES.get(asked.strip(), asked.strip())
        if name not in STEPS:
            raise BadParameter("payload.interval", f"expected auto or one of {', '.join(STEPS)}; got {asked!r}")
        if points(STEPS[name]) > MAX_BUCKETS:
            raise BadParameter(
                "payload.interval", f"{name} gives more than {MAX_BUCKETS} points over this range; use a longer one"
            )
        return STEPS[name]
    most = max(int(min(_number(max_points) or MAX_BUCKETS, MAX_BUCKETS)), 1)
    least = _number(interval_ms) or 0
    found = next((step for step in STEPS.values() if step >= least and points(step) <= most), None)
    return found or max(math.ceil(least / DAY_MS), -(-days // most)) * DAY_MS


async def series(
    agg: Aggregator,
    win: Window,
    tz: zoneinfo.ZoneInfo,
    body: dict[str, Any],
    metric: str,
    payload: dict[str, Any],
    filters: Filters,
    directory: TokenDirectory,
) -> list[dict[str, Any]]:
    """A time series target: /v1/trend's chart (`trend.chart`) over the buckets of the step Grafana's
    zoom or the payload's `interval` gives, one `{target, datapoints}` per series."""
    group_by = payload.get("group_by") or None
    group_by = None if group_by in ("none", "total") else group_by
    dim = dimension(str(group_by), trend.GROUP_BY) if group_by is not None else None
    top = _bounded(payload.get("top"), "payload.top", 8, 100)
    days = trend.local_buckets(win.range, tz, "day")
    step = pick_step(
        win.range, len(days.buckets), body.get("intervalMs"), body.get("maxDataPoints"), payload.get("interval")
    )
    spec = days if step == DAY_MS else trend.step_buckets(win.range, tz, step)
    _, charted = await trend.chart(agg, win.range, spec, dim=dim, top=top, filters=filters, directory=directory)
    value = SERIES[metric][1]
    if dim is None:  # the one `total` series, named after the target
        named = [(metric, charted[0].points)]
    else:
        named = [(f"{s.fields['name']} ({s.key})" if s.fields.get("name") else s.key, s.points) for s in charted]
    return [
        {"target": name, "datapoints": [[value(t), at] for t, at in zip(points, spec.starts_ms, strict=True)]}
        for name, points in named
    ]


def _bounded(raw: Any, field: str, default: int, most: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError as exc:
        raise BadParameter(field, f"expected a whole number from 1 to {most}; got {raw!r}") from exc
    if not 1 <= value <= most:
        raise BadParameter(field, f"expected a whole number from 1 to {most}; got {value}")
    return value


# --------------------------------------------------------------------------- tables


def table(columns: list[tuple[str, str]], rows: list[list[Any]]) -> dict[str, Any]:
    """A table: `columns` as (text, type) with type `string`, `number` or `time` (epoch ms)."""
    return {"type": "table", "columns": [{"text": text, "type": kind} for text, kind in columns], "rows": rows}


async def spend_table(agg: Aggregator, win: Window, name: str, payload: dict[str, Any], filters: Filters) -> dict:
    spec = TABLES[name]
    limit = _bounded(payload.get("limit"), "payload.limit", spec.limit, 1000)
    body = await spend.spend(agg, win, group_by=spec.group_by, limit=limit, filters=filters)
    fields = [*spec.keys, *_SPEND_COLUMNS]
    columns = [(text, "string") for _, text in spec.keys] + [(text, "number") for _, text in _SPEND_COLUMNS]
    return table(columns, [[item[f] for f, _ in fields] for item in body["items"]])


async def summary_table(agg: Aggregator, win: Window, filters: Filters) -> dict[str, Any]:
    body = await summary(agg, win, top_window=win.range.length, top=1, filters=filters)
    body["previous_spend"] = body["previous"]["spend"]
    return table([(text, "number") for _, text in SUMMARY_COLUMNS], [[body[f] for f, _ in SUMMARY_COLUMNS]])


async def live_table(agg: Aggregator, win: Window, filters: Filters) -> dict[str, Any]:
    end, hour = win.range.end, timedelta(hours=1)
    last_hour = Window(Range(end - hour, end), Range(end - 2 * hour, end - hour), win.tz)
    body = await live(agg, last_hour, filters=filters)
    return table([(text, "number") for _, text in LIVE_COLUMNS], [[body[f] for f, _ in LIVE_COLUMNS]])


async def annotation_events(service: Service, rng: Range, budgets: BudgetTracker | None) -> list[dict[str, Any]]:
    """Anomaly episodes (those of /v1/anomalies: the hourly rules, and the budget ones) as annotation
    events: a region from start to end (to the range's end while one is still running)."""
    events = []
    for ep in await anomalies.episodes(service, rng, budgets=budgets):
        start = _epoch(ep["started_at"])
        end = _epoch(ep["ended_at"]) if ep.get("ended_at") else epoch_ms(rng.end)
        ratio = ep.get("peak_ratio")
        spent = ep.get("spend")
        text = ", ".join(
            part
            for part in (
                f"peak {ratio:g}× baseline" if isinstance(ratio, int | float) else "",
                f"${spent:,.2f} spent" if isinstance(spent, int | float) else "",
                "" if ep.get("ended_at") else "still running",
            )
            if part
        )
        events.append(
            {
                "time": start,
                "timeEnd": end,
                "title": f"{ep['rule']}: {ep['dimension']} {ep['key']}",
                "text": text,
                "tags": [str(ep["rule"]), str(ep["dimension"])],
                "id": ep.get("id"),
            }
        )
    return events


def _epoch(value: str) -> int:
    return epoch_ms(parse_instant("started_at", value))


def annotations_table(events: list[dict[str, Any]]) -> dict[str, Any]:
    columns = [("time", "time"), ("timeEnd", "time"), ("title", "string"), ("text", "string"), ("tags", "string")]
    rows = [[e["time"], e["timeEnd"], e["title"], e["text"], ",".join(e["tags"])] for e in events]
    return table(columns, rows)


# --------------------------------------------------------------------------- the endpoints


async def query(service: Service, body: dict[str, Any], budgets: BudgetTracker | None = None) -> list[dict[str, Any]]:
    """POST /query: one answer per visible target (a grouped series gives several), in order."""
    agg = service.aggregator
    wanted = targets(body)
    if not wanted:
        return []
    default_tz = service.settings.tz
    win = window(body, zone(body, {}, default_tz))
    # where a regular expression or a negation looks for the values it keeps: both periods, so that
    # a table's `previous_spend` counts the same keys as /v1 would
    scope = Range(win.previous.start, win.range.end)
    directory = await agg.tokens()
    adhoc = adhoc_filters(body)
    scoped = body.get("scopedVars") if isinstance(body.get("scopedVars"), dict) else {}

    async def one(index: int, target: dict[str, Any]) -> list[dict[str, Any]]:
        name = target["target"].strip()
        key = "payload" if "payload" in target else "data"
        payload = payload_of(target.get(key), f"targets[{index}].{key}")
        tz = zone(body, payload, default_tz)
        twin = win if tz == win.tz else Window(win.range, win.previous, tz)
        if name == "anomalies":
            answers = [annotations_table(await annotation_events(service, win.range, budgets))]
        else:
            filters = await resolve_filters(agg, scope, directory, payload, adhoc, scoped, f"targets[{index}].{key}")
            source: Any = agg
            if filters is None:  # a filter keeps no value: the lenses' empty answers, from no rows
                source, filters = NoRows(agg), Filters()
            if name in SERIES:
                answers = await series(source, twin, tz, body, name, payload, filters, directory)
            elif name in TABLES:
                answers = [await spend_table(source, twin, name, payload, filters)]
            elif name == "summary":
                answers = [await summary_table(source, twin, filters)]
            elif name == "live":
                answers = [await live_table(source, twin, filters)]
            else:
                known = [*SERIES, *TABLES, *OTHERS]
                raise BadParameter(f"targets[{index}].target", f"expected one of {', '.join(known)}; got {name!r}")
        ref = target.get("refId")
        return [{**answer, "refId": ref} if ref is not None else answer for answer in answers]

    results = await gather_or_cancel(*(one(i, t) for i, t in enumerate(wanted)))
    return [answer for answers in results for answer in answers]


def variable_name(body: dict[str, Any]) -> str | None:
    """Which variable a /variable (or an old /search) request asks for: `payload` as the name,
    as `{"target": name}` (the plugin's default) or the user's JSON with one of a few keys."""
    payload = body.get("payload")
    candidates = [payload] if isinstance(payload, str) else []
    for source in (payload_of(payload), body):
        candidates += [source.get(k) for k in ("target", "query", "variable", "name")]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            name = candidate.strip()
            return name if name in VARIABLES else f"{name}s" if f"{name}s" in VARIABLES else name
    return None


async def variable_values(service: Service, body: dict[str, Any], name: str) -> list[tuple[str, str]]:
    if name not in VARIABLES:
        raise BadParameter("payload.target", f"expected one of {', '.join(VARIABLES)}; got {name!r}")
    agg = service.aggregator
    payload = payload_of(body.get("payload"))
    win = window(body, zone(body, payload, service.settings.tz))
    directory = await agg.tokens()
    # chained variables: `{"target": "models", "provider": "$provider"}` offers that provider's models
    own = {k: v for k, v in payload.items() if k in FILTER_KEYS and k != VARIABLES[name]}
    scoped = body.get("scopedVars") if isinstance(body.get("scopedVars"), dict) else {}
    filters = await resolve_filters(agg, win.range, directory, own, [], scoped, "payload")
    if filters is None:
        return []
    return await known_values(agg, win.range, VARIABLES[name], filters=filters, directory=directory)


async def variable(service: Service, body: dict[str, Any]) -> list[dict[str, str]]:
    name = variable_name(body)
    if name is None:  # an empty query (a variable being created): nothing to offer yet
        return []
    return [{"__text": text, "__value": value} for value, text in await variable_values(service, body, name)]


async def search(service: Service, body: dict[str, Any]) -> list[Any]:
    """POST /search (plugins before 0.4): a variable's values when `target` names one, else /metrics."""
    name = variable_name(body)
    if name in VARIABLES:
        return [{"text": text, "value": value} for value, text in await variable_values(service, body, name)]
    return metrics()


async def payload_options(service: Service, body: dict[str, Any]) -> list[dict[str, str]]:
    """POST /metric-payload-options: the values of a filter field, logged in the last 30 days."""
    name = body.get("name")
    if name not in FILTER_KEYS:
        return []
    agg = service.aggregator
    win = window(body, zone(body, {}, service.settings.tz))
    return [{"label": text, "value": value} for value, text in await known_values(agg, win.range, name)]


async def tag_values(service: Service, body: dict[str, Any]) -> list[dict[str, str]]:
    key = body.get("key")
    if key not in FILTER_KEYS:
        return []
    agg = service.aggregator
    win = window(body, zone(body, {}, service.settings.tz))
    return [{"text": value} for value, _ in await known_values(agg, win.range, key)]


async def legacy_annotations(
    service: Service, body: dict[str, Any], budgets: BudgetTracker | None = None
) -> list[dict[str, Any]]:
    """POST /annotations (plugins before 0.4): the same episodes as annotation events."""
    win = window(body, zone(body, {}, service.settings.tz))
    annotation = body.get("annotation") if isinstance(body.get("annotation"), dict) else {}
    return [
        {"annotation": annotation, **event, "isRegion": event["timeEnd"] != event["time"]}
        for event in await annotation_events(service, win.range, budgets)
    ]
