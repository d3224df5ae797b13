"""`token_tags:` — rules that give tokens tags (`team: search`) at query time, by id, displayed prefix
or name pattern, each from an optional `since` instant on (docs/tags.md). Checked at start-up: a bad
rule stops the start naming its entry (`token_tags[2].since: …`)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

import msgspec

HOUR_MS = 3_600_000
TAG_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # a key that reads as `tag:<key>` and `tag=<key>:<value>`
UNTAGGED = "(untagged)"


class Since:
    """An instant written as a date (its midnight UTC) or an RFC 3339 time with a zone, on a whole hour."""

    __slots__ = ("ms", "text")

    def __init__(self, value: Any) -> None:
        expected = "expected a date (2026-11-01) or a time (2026-11-01T09:00:00Z)"
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{expected}, got {value!r}") from None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"give a zone offset (2026-11-01T09:00:00Z) or a date, got {value.isoformat()}")
            at = value
        elif isinstance(value, date):
            at = datetime(value.year, value.month, value.day, tzinfo=UTC)
        else:
            raise ValueError(f"{expected}, got {value!r}")
        self.ms = int(at.timestamp() * 1000)
        if self.ms % HOUR_MS:
            raise ValueError(f"must fall on a whole UTC hour (spend is split per hour), got {at.isoformat()}")
        self.text = at.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def __repr__(self) -> str:
        return f"Since({self.text!r})"


class TokenTagRule(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    token: Annotated[str | None, msgspec.Meta(description="A token id (`api_tokens.id`).")] = None
    prefix: Annotated[
        str | None, msgspec.Meta(description="The displayed prefix (`api_tokens.prefix`) the token's starts with.")
    ] = None
    name: Annotated[
        str | None, msgspec.Meta(description="A name pattern (`*` any run of characters) on `api_tokens.name`.")
    ] = None
    tags: Annotated[dict[str, str], msgspec.Meta(description="The tags given, e.g. `{team: search}`.")]
    since: Annotated[
        Since | None,
        msgspec.Meta(description="From this instant on (a date: its midnight UTC; a time: on a whole UTC hour)."),
    ] = None

    def matches(self, token_id: str, prefix: str | None, name: str | None) -> bool:
        if self.token is not None:
            return token_id == self.token
        if self.prefix is not None:
            return prefix is not None and prefix.removesuffix("…").startswith(self.prefix)
        return name is not None and _pattern(self.name or "").fullmatch(name) is not None


def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")))


def check_rules(rules: list[TokenTagRule]) -> str | None:
    """The first problem of the rules, naming its entry (None: all sound)."""
    for i, rule in enumerate(rules):
        where = f"token_tags[{i}]"
        matchers = [m for m in ("token", "prefix", "name") if getattr(rule, m) is not None]
        if len(matchers) != 1:
            return f"{where}: give exactly one of token, prefix or name (got {', '.join(matchers) or 'none'})"
        if not getattr(rule, matchers[0]).strip():
            return f"{where}.{matchers[0]}: blank"
        if not rule.tags:
            return f"{where}.tags: give at least one tag, like {{team: search}}"
        for key, value in rule.tags.items():
            if not TAG_KEY.match(key):
                return f"{where}.tags: key {key!r} must be 1–64 letters, digits, '_', '.' or '-'"
            if not value.strip() or value == UNTAGGED:
                return f"{where}.tags.{key}: {value!r} is not a tag value"
    return None
