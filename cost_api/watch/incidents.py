"""Incidents: the episodes of one problem, grouped. One leaked token holds `burn_rate` and
`new_spender` on its token, its endpoint, its provider and its model at once: eight episodes, one
incident. `GET /v1/anomalies` answers incidents (`view=episodes`: the raw episodes); docs/alerts.md
states the grouping and the figures.

- Grouping: the hourly rules' episodes sorted by start. An episode on a key of an incident whose
  episode on that key is open (or ended at most `CONTINUE_GAP` before) continues it. Otherwise it
  joins a running incident that holds no other key of its dimension (a token's spend is also its
  endpoint's, provider's and model's, while two endpoints share no request) when it starts within
  `INCIDENT_GAP` of the incident, or within `LATE_JOIN` when its dimension is new to the incident
  and coarser than its first episode's. Budget episodes are incidents of their own.
- Impact: an episode's `extra` is its spend over its key's usual spend in its holding hours (Σ max(0,
  s(h) − B1(h)), B1: the mean of the same hour on the 7 days before). The episodes of one incident see
  the same dollars through different dimensions, so the incident's impact is their largest extra, not
  their sum — of its token and endpoint episodes when it has any: a provider's or a model's extra
  also holds other problems' dollars.
- Root: the most specific key (token, then endpoint, model, provider) among those episodes whose extra
  is at least half the impact (its `request_storm` episode, if it has one); the others are related.
- `min_impact`: an incident of the spend rules alone whose impact stays under it is left out (a single
  expensive request in a quiet hour); one with a request storm, and budget incidents, are always kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cost_api.aggregation.aggregator import money
from cost_api.watch.anomalies import Episode
from cost_api.watch.rules import usd
from cost_api.windows import iso

INCIDENT_GAP = timedelta(hours=1)
LATE_JOIN = timedelta(hours=6)  # a coarser key's episode joins an incident this long after its start
CONTINUE_GAP = timedelta(hours=24)  # a key's episode continues its incident after this long a pause
ROOT_SHARE = 0.5  # a root candidate explains at least this share of the impact
# most specific first; a tag's value (`tag:<key>`, a team) holds many tokens and may span endpoints
SPECIFIC = {"token": 0, "endpoint": 1, "tag": 2, "model": 3, "provider": 4}
# each request has one key of each (a tag key's value, `(untagged)` included): their keys' spends are an
# incident's own
FINE = ("token", "endpoint", "tag")
HOURLY_RULES = ("burn_rate", "new_spender", "spend_ceiling", "request_storm")
SPEND_RULES = ("burn_rate", "new_spender", "spend_ceiling")


def incident_id(first: Episode) -> str:
    """Deterministic: the incident's first episode (earliest start, then rule, dimension, key) names it."""
    return hashlib.sha256(f"incident\x1f{first.id}".encode()).hexdigest()[:20]


@dataclass(slots=True)
class Incident:
    episodes: list[Episode]  # the first one names the incident

    @property
    def id(self) -> str:
        return incident_id(self.episodes[0])

    @property
    def spend_only(self) -> bool:
        """Whether only spend rules hold in it (`min_impact` applies): a request storm or a budget is
        kept whatever it cost."""
        return all(e.rule in SPEND_RULES for e in self.episodes)

    @property
    def started_at(self) -> datetime:
        return self.episodes[0].started_at

    @property
    def ended_at(self) -> datetime | None:
        """None while any of its episodes is open, else the last end."""
        ends = [e.ended_at for e in self.episodes]
        return None if any(end is None for end in ends) else max(e for e in ends if e is not None)

    @property
    def open(self) -> bool:
        return self.ended_at is None

    @property
    def weighed(self) -> list[Episode]:
        """The episodes its impact and root are taken from: those on tokens and endpoints when it has
        any (a provider's or a model's spend also holds other endpoints' and tokens' changes), else all."""
        fine = [e for e in self.episodes if is_fine(e.dimension)]
        return fine or self.episodes

    @property
    def impact(self) -> float:
        return max(e.extra for e in self.weighed)

    @property
    def root(self) -> Episode:
        impact = self.impact
        candidates = [e for e in self.weighed if e.extra >= ROOT_SHARE * impact]
        best = min(candidates, key=lambda e: (specific(e.dimension), -e.extra))
        # a storm on that key names it: a retry loop is the problem, its dollars the consequence
        storm = [e for e in self.episodes if _key(e) == _key(best) and e.rule == "request_storm"]
        return storm[0] if storm else best

    def related_keys(self) -> list[str]:
        """The other keys than the root's, as `dimension:key`, in the order their episodes started."""
        root = _key(self.root)
        return list(dict.fromkeys(f"{e.dimension}:{e.key}" for e in self.episodes if _key(e) != root))

    def worth(self, min_impact: float, coarse_alone: bool = True) -> bool:
        """Whether it is listed and sent: a storm or a budget always, else once its impact reaches
        `min_impact` — and, unless `coarse_alone`, when it holds a token or an endpoint episode."""
        if not self.spend_only:
            return True
        return self.impact >= min_impact and (coarse_alone or any(is_fine(e.dimension) for e in self.episodes))

    def impact_per_hour(self, now: datetime) -> float:
        """The impact over the hours from its start to its end (open: to `now`), at least one."""
        hours = ((self.ended_at or now) - self.started_at) / timedelta(hours=1)
        return self.impact / max(hours, 1.0)

    def dollars(self, now: datetime) -> str:
        """Its impact in words: `$30.00 over its usual spend ($15.00/h)`."""
        return f"{usd(self.impact)} over its usual spend ({usd(self.impact_per_hour(now))}/h)"

    def as_json(self, now: datetime) -> dict[str, Any]:
        root = self.root
        return {
            "id": self.id,
            "rule": root.rule,
            "dimension": root.dimension,
            "key": root.key,
            "started_at": iso(self.started_at),
            "ended_at": None if self.ended_at is None else iso(self.ended_at),
            "impact": money(self.impact),
            "impact_per_hour": money(self.impact_per_hour(now)),
            "related": self.related_keys(),
            "episodes": [e.as_json() for e in self.episodes],
        }


def _key(e: Episode) -> tuple[str, str]:
    return e.dimension, e.key


def dimension_kind(dimension: str) -> str:
    """`tag` for every `tag:<key>`; the dimension itself otherwise."""
    return "tag" if dimension.startswith("tag:") else dimension


def specific(dimension: str) -> int:
    return SPECIFIC.get(dimension_kind(dimension), len(SPECIFIC))


def is_fine(dimension: str) -> bool:
    return dimension_kind(dimension) in FINE


def coarse_alone(dimensions: Sequence[str]) -> bool:
    """Whether an incident of provider and model episodes alone is kept: only when the rules watch
    neither tokens nor endpoints. Each request has a token and an endpoint, so a real change of spend
    shows on one of them; a provider's or a model's rise that none of them shows is many small changes
    summed (a busy day), no one problem to act on."""
    return not any(is_fine(d) for d in dimensions)


def incidents(found: list[Episode], min_impact: float, *, coarse: bool = True) -> list[Incident]:
    """The episodes grouped into incidents, the largest impact first (then the newest); an hourly
    incident under `min_impact` is left out, and without `coarse` one of provider and model episodes
    alone (`coarse_alone`)."""
    ordered = sorted(found, key=_order)
    out: list[Incident] = []
    groups: list[list[Episode]] = []  # the hourly incidents' episodes
    for e in ordered:
        if e.rule not in HOURLY_RULES:
            out.append(Incident([e]))
            continue
        group = next((g for g in groups if _continues(g, e)), None)
        group = group or next((g for g in groups if _joins(g, e)), None)
        if group is None:
            group = []
            groups.append(group)
            out.append(Incident(group))
        group.append(e)
    kept = [i for i in out if i.worth(min_impact, coarse)]
    kept.sort(key=lambda i: (-i.impact, -i.started_at.timestamp(), i.id))
    return kept


def _order(e: Episode) -> tuple[Any, ...]:
    return e.started_at, e.rule, specific(e.dimension), e.dimension, e.key


def merged(old: Incident, new: Incident) -> Incident:
    """`new` (a later replay's view of an incident) with the episodes of `old` it no longer sees (they
    ended before the replayed hours): what the live engine reports."""
    have = {e.id for e in new.episodes}
    return Incident(sorted(new.episodes + [e for e in old.episodes if e.id not in have], key=_order))


def _running(g: Episode, e: Episode, gap: timedelta = INCIDENT_GAP) -> bool:
    """Whether episode `g` (started no later than `e`) is open, or ended at most `gap` before `e`."""
    return g.ended_at is None or e.started_at - g.ended_at <= gap


def _joins(group: list[Episode], e: Episode) -> bool:
    """An episode joins a running incident that holds no other key of its dimension (two keys of one
    dimension share no request: each request has one endpoint, one token…), when it starts at most
    INCIDENT_GAP after the incident, or — a coarser dimension than the incident's first episode's, new
    to it — at most LATE_JOIN after (the leaked token's endpoint, once the leak outweighs the endpoint's
    own traffic). A finer key never joins late: a token that starts burning hours after an endpoint is
    another problem as often as the same."""
    if not any(_running(g, e) for g in group):
        return False
    same = [g for g in group if g.dimension == e.dimension]
    after = e.started_at - group[0].started_at
    coarser = specific(e.dimension) > specific(group[0].dimension)
    return all(g.key == e.key for g in same) and (
        after <= INCIDENT_GAP or (not same and coarser and after <= LATE_JOIN)
    )


def _continues(group: list[Episode], e: Episode) -> bool:
    """An episode on a key of an incident whose episode on that key ran until at most CONTINUE_GAP
    before continues that incident (a rule that stops holding for the night, a surge's quiet hours)."""
    return any((g.dimension, g.key) == (e.dimension, e.key) and _running(g, e, CONTINUE_GAP) for g in group)
