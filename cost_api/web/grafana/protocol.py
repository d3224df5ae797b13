"""The JSON datasource's shapes: request bodies read leniently (unknown keys ignored, `payload` as an
object, a JSON string or nothing; a body that cannot be used is a 400 naming the field), and the
table shape out. docs/grafana.md lists what each endpoint reads."""

from __future__ import annotations

import math
import zoneinfo
from datetime import datetime
from typing import Any

import msgspec

from cost_api.errors import BadParameter
from cost_api.text import refuse_control
from cost_api.web.grafana.shapes import Column, Table
from cost_api.windows import Window, parse_window

DEFAULT_WINDOW = "30d"  # without a `range`: what variables and tag values offer, what /query answers
# What a body may ask for at once (docs/grafana.md): each target is a read of its own, each ad-hoc
# filter is matched against every logged value.
MAX_TARGETS = 20
MAX_ADHOC_FILTERS = 20


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


def object_at(body: dict[str, Any], key: str) -> dict[str, Any]:
    """The object at `key` of a body (Grafana's `scopedVars`, `annotation`); `{}` when absent or not one."""
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def number(value: Any) -> float | None:
    """A positive finite number, from a number or its text; else None."""
    try:
        found = float(value)
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) and found > 0 else None


def bounded(raw: Any, field: str, default: int, most: int) -> int:
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


def window(body: dict[str, Any], tz: zoneinfo.ZoneInfo, now: datetime) -> Window:
    """The request's `range` (Grafana's `range`, or `timeRange` of newer tag-value calls) and its
    previous period, exactly as /v1 reads `from`/`to`; without one, the last 30 days up to `now`."""
    rng = body.get("range") or body.get("timeRange")
    if not isinstance(rng, dict):
        return parse_window(window=None, from_=None, to=None, tz=tz, default=DEFAULT_WINDOW, now=now)
    start, end = _instant(rng.get("from")), _instant(rng.get("to"))
    return parse_window(window=None, from_=start, to=end, tz=tz, default=DEFAULT_WINDOW, now=now)


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


def table(columns: list[tuple[str, str]], rows: list[list[Any]]) -> Table:
    """A table: `columns` as (text, type) with type `string`, `number` or `time` (epoch ms)."""
    return Table(columns=[Column(text, kind) for text, kind in columns], rows=rows)
