"""docs/configuration.md's table of settings, rendered from the structs of `cost_api.config` (`cost-api
settings --write`); tests/test_config.py fails while the file differs: a default, a constraint or a
description can only change in the code."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import msgspec.inspect

from cost_api.config import WATCH_PATTERN, ConfigError, Duration, Settings, env_name
from cost_api.config.tags import Since

DOCS_BEGIN = "<!-- settings: generated from cost_api/config/ by `cost-api settings --write FILE` -->"
DOCS_END = "<!-- end of settings -->"


def _rows(struct: type[msgspec.Struct], prefix: str, top: bool) -> Iterator[tuple[str, ...]]:
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        meta = field.type
        assert isinstance(meta, msgspec.inspect.Metadata), f"{prefix}{field.name} has no description"
        description = (meta.extra_json_schema or {})["description"]
        kind = meta.type
        nested = kind.item_type if isinstance(kind, msgspec.inspect.ListType) else kind
        key = prefix + field.name
        environment = f"`{env_name(field.name)}`" if top else ""
        if isinstance(nested, msgspec.inspect.StructType):
            many = nested is not kind
            default = "`[]`" if many else "see below"
            yield key, "list of mappings" if many else "mapping", default, environment, description
            yield from _rows(nested.cls, f"{key}[]." if many else f"{key}.", False)
        else:
            yield key, _type_text(kind), _default_text(field), environment, description


def _type_text(kind: msgspec.inspect.Type) -> str:
    if isinstance(kind, msgspec.inspect.UnionType):
        return " or ".join(_type_text(t) for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
    if isinstance(kind, msgspec.inspect.ListType):
        return f"list of {_type_text(kind.item_type)}"
    if isinstance(kind, msgspec.inspect.DictType):
        return f"mapping of {_type_text(kind.key_type)} to {_type_text(kind.value_type)}"
    if isinstance(kind, msgspec.inspect.LiteralType):
        return " \\| ".join(f"`{v}`" for v in kind.values)
    if isinstance(kind, msgspec.inspect.CustomType) and kind.cls is Duration:
        return "duration"
    if isinstance(kind, msgspec.inspect.CustomType) and kind.cls is Since:
        return "date or time"
    if isinstance(kind, msgspec.inspect.StrType) and kind.pattern == WATCH_PATTERN:
        return "`endpoint` \\| `token` \\| `provider` \\| `model` \\| `tag:<key>`"
    if isinstance(kind, msgspec.inspect.StrType):
        return "SHA-256 hex" if kind.pattern else "string"
    if isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        bounds = [
            f"{op} {_number(v)}"
            for op, v in ((">", kind.gt), ("≥", kind.ge), ("<", kind.lt), ("≤", kind.le))
            if v is not None
        ]
        return ("integer" if isinstance(kind, msgspec.inspect.IntType) else "number") + "".join(
            f", {b}" for b in bounds
        )
    raise TypeError(f"no documentation for {kind!r}")


def _number(value: float) -> str:
    return f"{value:g}"


def _default_text(field: msgspec.inspect.Field) -> str:
    if field.required:
        return "required"
    value = field.default if field.default_factory is msgspec.NODEFAULT else field.default_factory()
    if value is None:
        return "`null`"
    if isinstance(value, Duration):
        return f"`{value.text}`"
    if isinstance(value, list):
        return f"`[{', '.join(value)}]`"
    if isinstance(value, float | int):
        return f"`{_number(value)}`"
    return f"`{value}`"


def settings_table() -> str:
    """The markdown table of every setting: key, type, default, environment variable, meaning."""
    lines = [
        DOCS_BEGIN,
        "",
        "| key | type | default | environment | meaning |",
        "|---|---|---|---|---|",
        *("| `{}` | {} | {} | {} | {} |".format(*row) for row in _rows(Settings, "", True)),
        "",
        DOCS_END,
    ]
    return "\n".join(lines)


def with_settings_table(text: str) -> str:
    """`text` (docs/configuration.md) with its generated table replaced by the current one."""
    try:
        head, rest = text.split(DOCS_BEGIN, 1)
        _, tail = rest.split(DOCS_END, 1)
    except ValueError:
        raise ConfigError("the file has no generated settings table (its begin and end markers)") from None
    return head + settings_table() + tail


def documented_keys() -> set[str]:
    """Every settable key as a dotted path (`alerts.retry.attempts`, `budgets[].endpoint`)."""
    return {row[0] for row in _rows(Settings, "", True)}
