"""What every settings module builds on: the error that names a key, durations, strict structs and the
documentation each setting carries (rendered by `config/docs.py`)."""

from __future__ import annotations

import re
from typing import Any

import msgspec

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(Exception):
    """A configuration problem; the message names the key."""


class Duration:
    """A duration written as a string (`500ms`, `60s`, `15m`, `1h`, `7d`)."""

    __slots__ = ("seconds", "text")

    def __init__(self, text: str) -> None:
        match = _DURATION.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"expected a duration like 500ms, 60s, 15m, 1h or 7d, got {text!r}")
        self.text = text
        self.seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]

    def __repr__(self) -> str:
        return f"Duration({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and other.seconds == self.seconds

    def __hash__(self) -> int:
        return hash(self.seconds)


def duration(text: str) -> Any:
    return msgspec.field(default_factory=lambda: Duration(text))


class Strict(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


def doc(description: str, **constraints: Any) -> msgspec.Meta:
    """A setting's documentation (and constraints), rendered into docs/configuration.md by
    `settings_table` (`cost-api settings`)."""
    return msgspec.Meta(description=description, **constraints)
