"""What a scoped API key (`scoped_keys:`) may see, applied at the edge (docs/security.md#scoped-keys).

The auth middleware puts the matched entry in the request's state; `narrow` turns a request's `Filters`
into scope ∩ request (a filter value outside the scope is a 403 `forbidden-scope` naming the
parameter); `covers` says whether a figure keyed by one dimension (a budget's endpoint, an anomaly's
key) lies wholly within the scope; `refuse` stops the routes whose answers cannot be narrowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from litestar.types import Scope

from cost_api.aggregation.aggregator import Filters, TokenDirectory
from cost_api.config.scopes import ScopedKey
from cost_api.web.problems import ProblemError

STATE_KEY = "key_scope"
FORBIDDEN = "forbidden-scope"


def key_scope(scope: Scope) -> ScopedKey | None:
    """The scoped key the request came with (None: an unscoped key, or no keys configured)."""
    found: Any = scope.get("state", {}).get(STATE_KEY)
    return found if isinstance(found, ScopedKey) else None


def forbidden(parameter: str, detail: str) -> ProblemError:
    return ProblemError(
        403,
        detail,
        type_=FORBIDDEN,
        title="Outside the key's scope",
        errors=[{"field": parameter, "message": detail}],
    )


def refuse(key: ScopedKey | None, what: str) -> None:
    """A 403 for a scoped key on a route whose answer covers the whole log."""
    if key is not None:
        raise forbidden("key", f"{what} covers every team's spend: not open to a scoped key")


def base_filters(key: ScopedKey | None) -> Filters:
    """The scope itself as filters (no filter for an unscoped key)."""
    if key is None:
        return Filters()
    return Filters(endpoints=tuple(key.endpoints), tokens=tuple(key.tokens), tags=key.tag_pairs)


def narrow(key: ScopedKey | None, filters: Filters, directory: TokenDirectory | None = None) -> Filters:
    """scope ∩ request. A token may be named by id or by its displayed prefix (`directory` needed for
    the latter); the answer always filters on the scope's ids, so that a prefix shared with a token
    outside the scope keeps nothing of it."""
    if key is None:
        return filters
    endpoints = _within("endpoint", filters.endpoints, {e: (e,) for e in key.endpoints})
    shown: dict[str, tuple[str, ...]] = {tid: (tid,) for tid in key.tokens}
    if directory is not None:
        for tid in key.tokens:
            prefix = directory.display(tid)[0]
            shown[prefix] = (*shown.get(prefix, ()), tid)
            shown[prefix.removesuffix("…")] = shown[prefix]
    tokens = _within("token", filters.tokens, shown)
    return replace(filters, endpoints=endpoints, tokens=tokens, tags=_tags(filters.tags, key.tag_pairs))


def _within(parameter: str, asked: Sequence[str], allowed: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    if not allowed:
        return tuple(asked)
    if not asked:
        return tuple(dict.fromkeys(v for values in allowed.values() for v in values))
    for value in asked:
        if value not in allowed:
            raise forbidden(parameter, f"{parameter}={value} is outside this key's scope")
    return tuple(dict.fromkeys(v for value in asked for v in allowed[value]))


def _tags(asked: Sequence[tuple[str, str]], scope: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Values of a key the scope restricts must be among the scope's; the scope's keys the request does
    not name stay as the scope has them (keys AND, values of one key OR)."""
    allowed: dict[str, set[str]] = {}
    for k, v in scope:
        allowed.setdefault(k, set()).add(v)
    for k, v in asked:
        if k in allowed and v not in allowed[k]:
            raise forbidden("tag", f"tag={k}:{v} is outside this key's scope")
    named = {k for k, _ in asked}
    return (*asked, *((k, v) for k, v in scope if k not in named))


def covers(key: ScopedKey | None, dimension: str, value: str, directory: TokenDirectory) -> bool:
    """Whether a figure of one key of one dimension (`endpoint`, `token` as displayed, `tag:<key>`) is
    wholly within the scope: the scope restricts that dimension only, and the value is in it. An
    endpoint's figure counts every token on it, so a team's key sees no endpoint's figure."""
    if key is None:
        return True
    restricted = {f"tag:{k}" for k, _ in key.tag_pairs}
    restricted |= {name for name, given in (("endpoint", key.endpoints), ("token", key.tokens)) if given}
    if restricted != {dimension}:
        return False
    if dimension == "endpoint":
        return value in key.endpoints
    if dimension == "token":
        return value in {directory.display(tid)[0] for tid in key.tokens} or value in key.tokens
    return any(f"tag:{k}" == dimension and v == value for k, v in key.tag_pairs)
