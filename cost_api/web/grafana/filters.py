"""Filters as Grafana sends them: a payload's fields (a value, a multi-select's list, a `$variable`
left for `scopedVars`, a regular expression Grafana's `regex` formatting made of a variable) and the
ad-hoc filters (`=`, `!=`, `=~`, `!~`), resolved into the /v1 lenses' `Filters`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cost_api.aggregation.aggregator import Aggregator, Filters, TokenDirectory
from cost_api.aggregation.groups import Groups
from cost_api.config.tags import TAG_KEY
from cost_api.errors import BadParameter
from cost_api.lenses import trend
from cost_api.web.grafana.catalogue import FILTER_KEYS
from cost_api.web.grafana.protocol import AdhocFilter, FilterValue, Payload, ScopedVar
from cost_api.windows import HOUR_MS, Range

MAX_FILTER_VALUES = 100  # each value of a filter is matched against every logged value
_FILTER_FIELDS = {"provider": "providers", "model": "models", "endpoint": "endpoints", "token": "tokens"}
_ALL = frozenset({"$__all", ".*", "(.*)", ".+"})
_REGEX_META = re.compile(r"[\\^$*+?()|\[\]{}]")
_VARIABLE_REF = re.compile(r"^\$(?:\{(\w+)(?::\w+)?\}|(\w+))$")


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
    """The values of a filter (a value, or a multi-select's list) or of a variable, as text."""
    items = value if isinstance(value, list | tuple) else [value]
    return [str(v) for v in items if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v) != ""]


def _substitute(values: list[str], scoped: dict[str, ScopedVar]) -> list[str] | None:
    """A `$var` Grafana left in a payload, taken from `scopedVars`; None (no filter) when it is not
    there either, as Grafana leaves a variable the dashboard does not have."""
    out: list[str] = []
    for value in values:
        ref = _VARIABLE_REF.match(value)
        if ref is None:
            out.append(value)
            continue
        var = scoped.get(ref.group(1) or ref.group(2))
        if var is None:
            return None
        out += _strings(var.value)
    return out


def payload_match(raw: FilterValue, scoped: dict[str, ScopedVar], field: str) -> Match | None:
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


def is_tag_key(key: str | None) -> bool:
    """`tag:<key>`: an ad-hoc filter, variable or tag-values key on a token tag's values."""
    return key is not None and key.startswith("tag:") and TAG_KEY.match(key[4:]) is not None


def adhoc_match(index: int, item: AdhocFilter) -> tuple[str, Match]:
    key, operator, value = item.key, item.operator or "=", item.value
    field = f"filters[{index}]"
    if key is None or (key not in FILTER_KEYS and not is_tag_key(key)):
        raise BadParameter(f"{field}.key", f"expected one of {', '.join(FILTER_KEYS)} or tag:<key>; got {key!r}")
    text = "" if value is None else str(value)
    if operator in ("=", "!="):
        return key, Match(frozenset({text}), negate=operator == "!=")
    if operator in ("=~", "!~"):
        try:
            return key, Match(patterns=(re.compile(text),), negate=operator == "!~")
        except re.error as exc:
            raise BadParameter(f"{field}.value", f"not a regular expression: {exc}") from exc
    raise BadParameter(f"{field}.operator", f"expected =, !=, =~ or !~; got {operator!r}")


async def tag_pairs(agg: Aggregator, directory: TokenDirectory, match: Match, field: str) -> dict[str, set[str]]:
    """A `tag` payload's `key:value` pairs (literals, or those of the tokens' tags a pattern keeps), by
    `tag:<key>`: values of one key are alternatives, different keys all apply."""
    if match.literal:
        pairs = set(match.literals)
        if not all(is_tag_key(f"tag:{p.partition(':')[0]}") and p.partition(":")[2] for p in pairs):
            raise BadParameter(field, f"expected key:value values (e.g. team:search); got {sorted(pairs)}")
    else:
        book = await agg.tag_book(directory)
        known = {f"{key}:{value}" for key in book.keys for value in book.values(key)}
        pairs = {p for p in known if match.keeps(p, p)}
    by_key: dict[str, set[str]] = {}
    for pair in pairs:
        key, _, value = pair.partition(":")
        by_key.setdefault(f"tag:{key}", set()).add(value)
    return by_key


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
    payload: Payload,
    adhoc: list[AdhocFilter],
    scoped: dict[str, ScopedVar],
    where: str,
    base: Filters | None = None,
) -> Filters | None:
    """The payload's filters and the ad-hoc ones as `Filters` (all of them hold: AND across them,
    OR within one multi-value). Literal values pass through as /v1 takes them; a regular expression
    or a negation is resolved against the values logged in the range. None: some key keeps no value,
    so no row can match. `where`: the payload's place in the body, for errors; `base`: where the
    values a regular expression or a negation keeps are looked for (a scoped key's scope)."""
    wanted: dict[str, list[Match]] = {key: [] for key in FILTER_KEYS}
    for key, raw in payload.filter_values().items():
        match = payload_match(raw, scoped, f"{where}.{key}")
        if match is not None:
            wanted[key].append(match)
    tag_match = payload_match(payload.tag, scoped, f"{where}.tag")
    if tag_match is not None:
        for key, alternatives in (await tag_pairs(agg, directory, tag_match, f"{where}.tag")).items():
            wanted.setdefault(key, []).append(Match(frozenset(alternatives)))
    for index, item in enumerate(adhoc):
        key, match = adhoc_match(index, item)
        wanted.setdefault(key, []).append(match)
    chosen: dict[str, Any] = {}  # Filters fields: providers, models, endpoints, tokens, tags
    tags: list[tuple[str, str]] = []
    for key, matches in wanted.items():
        if not matches:
            continue
        if all(m.literal for m in matches):
            kept = set.intersection(*(set(m.literals) for m in matches))
        else:
            values = await known_values(agg, rng, key, filters=base, directory=directory)
            kept = {value for value, text in values if all(m.keeps(value, text) for m in matches)}
        if not kept:
            return None
        if is_tag_key(key):
            tags += [(key[4:], value) for value in sorted(kept)]
        else:
            chosen[_FILTER_FIELDS[key]] = tuple(sorted(kept))
    return Filters(**chosen, tags=tuple(tags))


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
