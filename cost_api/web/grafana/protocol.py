"""The JSON datasource's shapes: request bodies read leniently into Structs (unknown keys ignored, as
Grafana adds its own; `payload` as an object, JSON text of one or nothing; a body that cannot be used
is a 400 naming the field), and the table shape out. docs/grafana.md lists what each endpoint reads."""

from __future__ import annotations

import math
import re
import zoneinfo
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from cost_api.errors import BadParameter
from cost_api.text import refuse_control
from cost_api.web.grafana.catalogue import FILTER_KEYS
from cost_api.web.grafana.shapes import Column, Table
from cost_api.windows import Window, parse_window

DEFAULT_WINDOW = "30d"  # without a `range`: what variables and tag values offer, what /query answers
# What a body may ask for at once (docs/grafana.md): each target is a read of its own, each ad-hoc
# filter is matched against every logged value.
MAX_TARGETS = 20
MAX_ADHOC_FILTERS = 20

# --------------------------------------------------------------------------- the bodies

Instant = str | int | float | None  # `range.from`/`to`: ISO text, or epoch ms as a number
Number = float | str | None  # `intervalMs`, `maxDataPoints`: a number, or its text
Whole = int | str | None  # `top`, `limit`: a whole number, or its text (the builder's inputs)
FilterValue = str | int | float | list[Any] | None  # a value, or a multi-select's values
# what a `targets` item that is not an object is: skipped, like a target without a metric
Ignored = list[Any] | str | float | bool | None


class TimeRange(msgspec.Struct):
    start: Instant = msgspec.field(name="from", default=None)
    end: Instant = msgspec.field(name="to", default=None)


class Payload(msgspec.Struct):
    """A target's payload (the builder's fields, or the user's JSON), or a variable's query."""

    group_by: str | None = None
    top: Whole = None
    limit: Whole = None
    interval: str | None = None
    tz: str | None = None
    provider: FilterValue = None
    model: FilterValue = None
    endpoint: FilterValue = None
    token: FilterValue = None
    tag: FilterValue = None  # `key:value` of the tokens' tags (a `tag:<key>` variable's values)
    # a variable's name (/variable, /search): as `{"target": name}` or the user's JSON
    target: str | None = None
    query: str | None = None
    variable: str | None = None
    name: str | None = None

    def filter_values(self) -> dict[str, FilterValue]:
        return {key: getattr(self, key) for key in FILTER_KEYS}

    def variable_name(self) -> str | None:
        return next((n.strip() for n in (self.target, self.query, self.variable, self.name) if n and n.strip()), None)


def payload_text(text: str) -> Payload | None:
    """A payload sent as JSON text (code mode, plugins before 0.4); None when it is not JSON of an
    object; a ValueError (a 400 naming the target) when a field of it has the wrong type."""
    try:
        fields = msgspec.json.decode(text, type=dict[str, Any])
    except (msgspec.DecodeError, RecursionError):  # not JSON, or not an object
        return None
    try:
        return msgspec.convert(fields, Payload)
    except msgspec.ValidationError as exc:
        raise ValueError(f"payload (JSON text): {exc}") from exc


PayloadIn = Payload | str | None  # normalised to a Payload by the Struct holding it


class ScopedVar(msgspec.Struct):
    value: Any = None


class AdhocFilter(msgspec.Struct):
    key: str | None = None
    operator: str | None = None
    value: str | int | float | None = None


class Target(msgspec.Struct):
    target: str | None = None
    refId: str | None = None
    hide: bool | None = None
    payload: PayloadIn | UnsetType = UNSET
    data: PayloadIn | UnsetType = UNSET  # the payload's name in some plugin versions

    def __post_init__(self) -> None:
        self.payload, self.data = _payload(self.payload), _payload(self.data)

    @property
    def name(self) -> str:
        return (self.target or "").strip()

    def options(self) -> tuple[str, Payload]:
        """The payload (`payload`, else `data`) and its name."""
        key, value = ("data", self.data) if self.payload is UNSET else ("payload", self.payload)
        return key, value if isinstance(value, Payload) else Payload()


def _payload(value: PayloadIn | UnsetType) -> Payload | UnsetType:
    """A target's payload as a Payload: text that is not JSON of an object is none (`{}`)."""
    if value is UNSET or isinstance(value, Payload):
        return value
    return (payload_text(value) if value else None) or Payload()


class Request(msgspec.Struct):
    """What every body may carry: its range (`range`, or `timeRange` of newer tag-value calls) and
    the dashboard's zone."""

    range: TimeRange | None = None
    timeRange: TimeRange | None = None
    timezone: str | None = None


class QueryRequest(Request):
    intervalMs: Number = None
    maxDataPoints: Number = None
    targets: list[Target | Ignored] | None = None
    filters: list[AdhocFilter] | None = None  # plugin 0.6.4+, set by Grafana
    adhocFilters: list[AdhocFilter] | None = None  # older plugins
    scopedVars: dict[str, ScopedVar] = {}


class VariableRequest(Request):
    """/variable, and /search of plugins before 0.4: the variable's query in `payload` or `target`,
    each its name, `{"target": name}` (the plugin's default) or the user's JSON (as an object or as
    text) with filters for a chained variable."""

    payload: PayloadIn = None
    target: PayloadIn = None
    query: str | None = None
    variable: str | None = None
    name: str | None = None
    scopedVars: dict[str, ScopedVar] = {}

    def __post_init__(self) -> None:
        self.payload, self.target = _query(self.payload), _query(self.target)

    def variable_name(self) -> str | None:
        """The variable asked for: the first name found in `payload`, `target`, `query`, ..."""
        for given in (self.payload, self.target, self.query, self.variable, self.name):
            name = given.variable_name() if isinstance(given, Payload) else (given or "").strip()
            if name:
                return name
        return None

    def filters(self) -> Payload:
        """The query's filters (`{"target": "models", "provider": "$provider"}`): its JSON's."""
        return next((given for given in (self.payload, self.target) if isinstance(given, Payload)), Payload())


def _query(value: PayloadIn) -> PayloadIn:
    """A variable's query: JSON text of an object read as one; any other text is the variable's name."""
    if isinstance(value, str) and value.strip():
        return payload_text(value) or value
    return value


class OptionsRequest(Request):
    """/metric-payload-options: the payload field whose values are asked for."""

    name: str | None = None


class TagValuesRequest(Request):
    key: str | None = None


class AnnotationsRequest(Request):
    """/annotations (plugins before 0.4): the annotation query, echoed in every answer."""

    annotation: dict[str, Any] = {}


R = TypeVar("R", bound=Request)
_LOCATED = re.compile(r"(?P<message>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?", re.S)


def decode(raw: bytes, kind: type[R]) -> R:
    """A request body as `kind` (an empty body is `{}`): unknown keys ignored, a value of the wrong
    type or a string holding a control character a 400 naming the field by its path
    (`targets[0].payload.provider`); anything but a JSON object a 400 naming `body`."""
    if not raw.strip():
        return kind()
    try:
        body = msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:  # (a DecodeError too)
        found = _LOCATED.fullmatch(str(exc))
        assert found is not None  # (the pattern matches any text)
        message = found["message"]
        raise BadParameter(found["path"] or "body", message[:1].lower() + message[1:]) from exc
    except msgspec.DecodeError as exc:
        raise BadParameter("body", f"expected a JSON object: {exc}") from exc
    except RecursionError as exc:  # msgspec's own limit, some 1,000 levels down
        raise BadParameter("body", "expected a JSON object: nested too deeply") from exc
    refuse_controls(msgspec.to_builtins(body))
    return body


def refuse_controls(value: Any, field: str = "") -> None:
    """A 400 naming the first string in `value` (a body as builtins, at `field`) that holds a control
    character, by its path: `targets[0].payload.provider`, `filters[1].value`."""
    stack = [(field, value)]
    while stack:  # not recursive: a body may nest as deep as msgspec reads
        at, item = stack.pop()
        if isinstance(item, str):
            refuse_control(at, item)
        elif isinstance(item, dict):
            stack += [(f"{at}.{key}" if at else str(key), v) for key, v in reversed(item.items())]
        elif isinstance(item, list):
            stack += [(f"{at}[{i}]", v) for i, v in reversed(list(enumerate(item)))]


# --------------------------------------------------------------------------- reading them


def number(value: Number) -> float | None:
    """A positive finite number, from a number or its text; else None."""
    if value is None:
        return None
    try:
        found = float(value)
    except ValueError:
        return None
    return found if math.isfinite(found) and found > 0 else None


def bounded(raw: Whole, field: str, default: int, most: int) -> int:
    """A whole number from 1 to `most` at `field` (`default` when absent or empty), else a 400."""
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError as exc:
        raise BadParameter(field, f"expected a whole number from 1 to {most}; got {raw!r}") from exc
    if not 1 <= value <= most:
        raise BadParameter(field, f"expected a whole number from 1 to {most}; got {value}")
    return value


def _instant(value: Instant) -> str | None:
    """`range.from`/`to` as `parse_instant` reads them: ISO text, or epoch ms as a number."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return str(int(value))
    return value


def zone(body: Request, payload: Payload | None, default: str) -> zoneinfo.ZoneInfo:
    """The zone of day buckets: the payload's `tz`, the dashboard's `timezone` when it names a
    zone (`utc` or an IANA name; `browser` does not), else the configured `tz`."""
    for name in (payload.tz if payload else None, body.timezone):
        if name and name.strip():
            name = "UTC" if name.strip().lower() == "utc" else name.strip()
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
                continue
    return zoneinfo.ZoneInfo(default)


def window(body: Request, tz: zoneinfo.ZoneInfo, now: datetime) -> Window:
    """The request's `range` (or `timeRange`) and its previous period, exactly as /v1 reads
    `from`/`to`; without one, the last 30 days up to `now`."""
    rng = body.range or body.timeRange or TimeRange()
    start, end = _instant(rng.start), _instant(rng.end)
    return parse_window(window=None, from_=start, to=end, tz=tz, default=DEFAULT_WINDOW, now=now)


def targets(body: QueryRequest) -> list[tuple[int, Target]]:
    """The targets to answer, each with its index in `targets` (errors name it): hidden ones,
    placeholders without a `target` and items that are not targets at all dropped."""
    given = body.targets or []
    if len(given) > MAX_TARGETS:
        raise BadParameter(
            "targets", f"at most {MAX_TARGETS} per query, hidden ones included; got {len(given)}: split the panel"
        )
    return [(i, t) for i, t in enumerate(given) if isinstance(t, Target) and t.hide is not True and t.name]


def adhoc_filters(body: QueryRequest) -> list[AdhocFilter]:
    """Ad-hoc filters: `filters` (plugin 0.6.4+, set by Grafana) and `adhocFilters` (older ones)."""
    found: list[AdhocFilter] = []
    for name, given in (("filters", body.filters), ("adhocFilters", body.adhocFilters)):
        if given and len(given) > MAX_ADHOC_FILTERS:
            raise BadParameter(name, f"at most {MAX_ADHOC_FILTERS} ad-hoc filters; got {len(given)}")
        found += [f for f in given or [] if f not in found]
    return found


def table(columns: list[tuple[str, str]], rows: list[list[Any]]) -> Table:
    """A table: `columns` as (text, type) with type `string`, `number` or `time` (epoch ms)."""
    return Table(columns=[Column(text, kind) for text, kind in columns], rows=rows)
