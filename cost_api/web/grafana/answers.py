"""The datasource's answers: /query (time series, tables, annotation tables), /variable and /search,
/metric-payload-options, /tag-values and the old /annotations, each in Grafana's shape.

Every number comes from a lens: a time series is /v1/trend's computation (`trend.chart`) over
Grafana's buckets, a table is /v1/spend, /v1/summary or /v1/live, an annotation an incident of
/v1/anomalies. So a Grafana answer and the /v1 answer for the same range are the same figures.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import timedelta
from typing import Any

import msgspec

from cost_api.aggregation.aggregator import Aggregator, Filters, TokenDirectory, dimension
from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.config.scopes import ScopedKey
from cost_api.errors import BadParameter
from cost_api.lenses import spend, trend
from cost_api.lenses.live import live_answer
from cost_api.lenses.summary import summary_answer
from cost_api.watch import anomalies
from cost_api.watch.budgets import BudgetTracker
from cost_api.watch.incidents import HOURLY_RULES, coarse_alone, grouped
from cost_api.web.grafana.catalogue import (
    DAY_MS,
    FILTER_KEYS,
    LIVE_COLUMNS,
    OTHERS,
    SERIES,
    SPEND_COLUMNS,
    STEP_ALIASES,
    STEPS,
    SUMMARY_COLUMNS,
    TABLES,
    TAG_KEYS,
    VARIABLES,
    metrics,
)
from cost_api.web.grafana.filters import NoRows, is_tag_key, known_values, resolve_filters
from cost_api.web.grafana.protocol import (
    AnnotationsRequest,
    Number,
    OptionsRequest,
    Payload,
    QueryRequest,
    Request,
    TagValuesRequest,
    Target,
    VariableRequest,
    adhoc_filters,
    bounded,
    number,
    table,
    targets,
    window,
    zone,
)
from cost_api.web.grafana.shapes import (
    Annotation,
    Answer,
    Event,
    Metric,
    Option,
    Table,
    TagKey,
    TagValue,
    TextValue,
    TimeSeries,
    VariableValue,
)
from cost_api.web.scope import base_filters, covers, narrow
from cost_api.web.service import Service
from cost_api.windows import MAX_BUCKETS, Range, Window, epoch_ms

# --------------------------------------------------------------------------- time series


def pick_step(rng: Range, days: int, interval_ms: Number, max_points: Number, asked: str | None) -> int:
    """The bucket size over `rng` (which overlaps `days` local days): the payload's `interval` if given
    (at most MAX_BUCKETS points), else the smallest step that is at least `intervalMs` and gives at
    most `maxDataPoints` points (and MAX_BUCKETS): one of STEPS, or as many whole local days as that
    takes. Whatever the range and the interval asked for, a series has that many points at most."""
    start, end = epoch_ms(rng.start), epoch_ms(rng.end)

    def points(step: int) -> int:
        if step % DAY_MS == 0:
            return -(-days // (step // DAY_MS))
        return -(-end // step) - start // step

    if asked and asked.strip() and asked.strip() != "auto":
        name = STEP_ALIASES.get(asked.strip(), asked.strip())
        if name not in STEPS:
            raise BadParameter("payload.interval", f"expected auto or one of {', '.join(STEPS)}; got {asked!r}")
        if points(STEPS[name]) > MAX_BUCKETS:
            raise BadParameter(
                "payload.interval", f"{name} gives more than {MAX_BUCKETS} points over this range; use a longer one"
            )
        return STEPS[name]
    most = max(int(min(number(max_points) or MAX_BUCKETS, MAX_BUCKETS)), 1)
    least = number(interval_ms) or 0
    found = next((step for step in STEPS.values() if step >= least and points(step) <= most), None)
    return found or max(math.ceil(least / DAY_MS), -(-days // most)) * DAY_MS


async def series(
    agg: Aggregator,
    win: Window,
    tz: zoneinfo.ZoneInfo,
    body: QueryRequest,
    metric: str,
    payload: Payload,
    filters: Filters,
    directory: TokenDirectory,
) -> list[TimeSeries]:
    """A time series target: /v1/trend's chart (`trend.chart`) over the buckets of the step Grafana's
    zoom or the payload's `interval` gives, one `{target, datapoints}` per series."""
    group_by = None if payload.group_by in ("none", "total") else payload.group_by or None
    dim = dimension(group_by, trend.GROUP_BY) if group_by is not None else None
    if group_by is not None and is_tag_key(group_by) and group_by[4:] not in (await agg.tag_book(directory)).keys:
        return []  # a panel by a tag no token carries yet (the dashboard's "by team"): no series, not an error
    top = bounded(payload.top, "payload.top", 8, 100)
    days = trend.local_buckets(win.range, tz, "day")
    step = pick_step(win.range, len(days.buckets), body.intervalMs, body.maxDataPoints, payload.interval)
    spec = days if step == DAY_MS else trend.step_buckets(win.range, tz, step)
    _, charted = await trend.chart(agg, win.range, spec, dim=dim, top=top, filters=filters, directory=directory)
    value = SERIES[metric][1]
    if dim is None:  # the one `total` series, named after the target
        named = [(metric, charted[0].points)]
    else:
        named = [(f"{s.fields['name']} ({s.key})" if s.fields.get("name") else s.key, s.points) for s in charted]
    return [
        TimeSeries(target=name, datapoints=[(value(t), at) for t, at in zip(points, spec.starts_ms, strict=True)])
        for name, points in named
    ]


# --------------------------------------------------------------------------- tables


async def spend_table(agg: Aggregator, win: Window, name: str, payload: Payload, filters: Filters) -> Table:
    spec = TABLES[name]
    limit = bounded(payload.limit, "payload.limit", spec.limit, 1000)
    body = await spend.spend_answer(agg, win, group_by=spec.group_by, limit=limit, filters=filters)
    fields = [*spec.keys, *SPEND_COLUMNS]
    columns = [(text, "string") for _, text in spec.keys] + [(text, "number") for _, text in SPEND_COLUMNS]
    return table(columns, [[getattr(item, f) for f, _ in fields] for item in body.items])


async def summary_table(agg: Aggregator, win: Window, filters: Filters) -> Table:
    body = await summary_answer(agg, win, top_window=win.range.length, top=1, filters=filters)
    cells = {"previous_spend": body.previous.spend}
    row = [cells[f] if f in cells else getattr(body, f) for f, _ in SUMMARY_COLUMNS]
    return table([(text, "number") for _, text in SUMMARY_COLUMNS], [row])


async def live_table(agg: Aggregator, win: Window, filters: Filters) -> Table:
    end, hour = win.range.end, timedelta(hours=1)
    last_hour = Window(Range(end - hour, end), Range(end - 2 * hour, end - hour), win.tz)
    body = await live_answer(agg, last_hour, filters=filters)
    return table([(text, "number") for _, text in LIVE_COLUMNS], [[getattr(body, f) for f, _ in LIVE_COLUMNS]])


async def annotation_events(
    service: Service, rng: Range, budgets: BudgetTracker | None, key: ScopedKey | None
) -> list[Event]:
    """Anomaly incidents (those of /v1/anomalies: the hourly rules' episodes grouped, and the budget
    ones), one annotation each: a region from its start to its end (to the range's end while it runs),
    titled by its root, its text the dollars over the usual spend and the related keys. A scoped key
    gets the incidents wholly within its scope."""
    found = await anomalies.replay(service, rng, budgets=budgets)
    directory = await service.aggregator.tokens()
    now = min(rng.end, service.clock.now())
    events = []
    cfg = service.settings.alerts
    for incident in await grouped(service, found, cfg.min_impact, now, coarse=coarse_alone(cfg.dimensions)):
        if not all(covers(key, e.dimension, e.key, directory) for e in incident.episodes):
            continue
        root = incident.root
        parts = (
            incident.dollars(now) if root.rule in HOURLY_RULES else root.last.words,
            incident.also(),
            "" if incident.ended_at else "still running",
        )
        events.append(
            Event(
                time=epoch_ms(incident.started_at),
                timeEnd=epoch_ms(incident.ended_at or rng.end),
                title=f"{root.rule}: {root.dimension} {root.key}",
                text="; ".join(part for part in parts if part),
                tags=[root.rule, root.dimension],
                id=incident.id,
            )
        )
    return events


def annotations_table(events: list[Event]) -> Table:
    columns = [("time", "time"), ("timeEnd", "time"), ("title", "string"), ("text", "string"), ("tags", "string")]
    rows: list[list[Any]] = [[e.time, e.timeEnd, e.title, e.text, ",".join(e.tags)] for e in events]
    return table(columns, rows)


# --------------------------------------------------------------------------- the endpoints


async def query(
    service: Service, body: QueryRequest, budgets: BudgetTracker | None = None, key: ScopedKey | None = None
) -> list[Answer]:
    """POST /query: one answer per visible target (a grouped series gives several), in order; a scoped
    key's filters are its scope ∩ the target's."""
    agg = service.aggregator
    wanted = targets(body)
    if not wanted:
        return []
    default_tz = service.settings.tz
    win = window(body, zone(body, None, default_tz), service.clock.now())
    # where a regular expression or a negation looks for the values it keeps: both periods, so that
    # a table's `previous_spend` counts the same keys as /v1 would
    scope = Range(win.previous.start, win.range.end)
    directory = await agg.tokens()
    adhoc = adhoc_filters(body)
    base = base_filters(key)

    async def one(index: int, target: Target) -> list[Answer]:
        name = target.name
        field, payload = target.options()
        tz = zone(body, payload, default_tz)
        twin = win if tz == win.tz else Window(win.range, win.previous, tz)
        answers: list[Answer]
        if name == "anomalies":
            answers = [annotations_table(await annotation_events(service, win.range, budgets, key))]
        else:
            filters = await resolve_filters(
                agg, scope, directory, payload, adhoc, body.scopedVars, f"targets[{index}].{field}", base
            )
            source: Any = agg
            if filters is not None:
                filters = narrow(key, filters, directory)
            else:  # a filter keeps no value: the lenses' empty answers, from no rows
                source, filters = NoRows(agg), Filters()
            if name in SERIES:
                answers = list(await series(source, twin, tz, body, name, payload, filters, directory))
            elif name in TABLES:
                answers = [await spend_table(source, twin, name, payload, filters)]
            elif name == "summary":
                answers = [await summary_table(source, twin, filters)]
            elif name == "live":
                answers = [await live_table(source, twin, filters)]
            else:
                known = [*SERIES, *TABLES, *OTHERS]
                raise BadParameter(f"targets[{index}].target", f"expected one of {', '.join(known)}; got {name!r}")
        ref = target.refId
        return [msgspec.structs.replace(answer, refId=ref) for answer in answers] if ref is not None else answers

    results = await gather_or_cancel(*(one(i, t) for i, t in wanted))
    return [answer for answers in results for answer in answers]


async def variable_values(
    service: Service, body: VariableRequest, name: str, key: ScopedKey | None
) -> list[tuple[str, str]]:
    if name == "tag_keys":  # the keys themselves, for a variable that picks the key of a tag panel
        return [(f"tag:{k}", k) for k in (await service.aggregator.tag_book()).keys]
    if name not in VARIABLES and not is_tag_key(name):
        known = f"{', '.join(VARIABLES)}, tag_keys or tag:<key>"
        raise BadParameter("payload.target", f"expected one of {known}; got {name!r}")
    agg = service.aggregator
    query = body.filters()
    win = window(body, zone(body, query, service.settings.tz), service.clock.now())
    directory = await agg.tokens()
    # chained variables: `{"target": "models", "provider": "$provider"}` offers that provider's models
    if is_tag_key(name):  # `tag:team`: its values as the `tag` payload field takes them, `team:search`
        if name[4:] not in (await agg.tag_book(directory)).keys:
            return []
        found = await known_values(agg, win.range, name, filters=narrow(key, base_filters(key), directory))
        return [(f"{name[4:]}:{value}", text) for value, text in found]
    own = msgspec.structs.replace(query, **{VARIABLES[name]: None})
    filters = await resolve_filters(agg, win.range, directory, own, [], body.scopedVars, "payload", base_filters(key))
    if filters is None:
        return []
    filters = narrow(key, filters, directory)
    return await known_values(agg, win.range, VARIABLES[name], filters=filters, directory=directory)


def variable_name(body: VariableRequest) -> str | None:
    """Which variable is asked for: the name given (`providers`), or its singular (`provider`)."""
    name = body.variable_name()
    if name is None or name in VARIABLES:
        return name
    return f"{name}s" if f"{name}s" in VARIABLES else name


async def variable(service: Service, body: VariableRequest, key: ScopedKey | None = None) -> list[VariableValue]:
    name = variable_name(body)
    if name is None:  # an empty query (a variable being created): nothing to offer yet
        return []
    return [VariableValue(text, value) for value, text in await variable_values(service, body, name, key)]


async def search(
    service: Service, body: VariableRequest, key: ScopedKey | None = None
) -> list[TextValue] | list[Metric]:
    """POST /search (plugins before 0.4): a variable's values when `target` names one, else /metrics."""
    name = variable_name(body)
    if name in VARIABLES:
        return [TextValue(text, value) for value, text in await variable_values(service, body, name, key)]
    return metrics()


async def payload_options(service: Service, body: OptionsRequest, key: ScopedKey | None = None) -> list[Option]:
    """POST /metric-payload-options: the values of a filter field, logged in the last 30 days."""
    if body.name not in FILTER_KEYS:
        return []
    return [Option(text, value) for value, text in await _known(service, body, body.name, key)]


async def tag_keys(service: Service) -> list[TagKey]:
    """POST /tag-keys: the filter keys, and `tag:<key>` for each key the tokens' tags have."""
    book = await service.aggregator.tag_book()
    return [*TAG_KEYS, *(TagKey("string", f"tag:{key}") for key in book.keys)]


async def tag_values(service: Service, body: TagValuesRequest, key: ScopedKey | None = None) -> list[TagValue]:
    name = body.key
    if name is None or (name not in FILTER_KEYS and not is_tag_key(name)):
        return []
    return [TagValue(value) for value, _ in await _known(service, body, name, key)]


async def _known(service: Service, body: Request, name: str, key: ScopedKey | None) -> list[tuple[str, str]]:
    win = window(body, zone(body, None, service.settings.tz), service.clock.now())
    return await known_values(service.aggregator, win.range, name, filters=base_filters(key))


async def legacy_annotations(
    service: Service, body: AnnotationsRequest, budgets: BudgetTracker | None = None, key: ScopedKey | None = None
) -> list[Annotation]:
    """POST /annotations (plugins before 0.4): the same incidents as annotation events."""
    win = window(body, zone(body, None, service.settings.tz), service.clock.now())
    events = await annotation_events(service, win.range, budgets, key)
    return [Annotation.of(body.annotation, event) for event in events]
