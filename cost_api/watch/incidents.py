"""Incidents: the episodes of one problem, grouped. One leaked token holds `burn_rate` and
`new_spender` on its token, its endpoint, its provider and its model at once: eight episodes, one
incident. `GET /v1/anomalies` answers incidents (`view=episodes`: the raw episodes); docs/alerts.md
states the grouping and the figures.

- Grouping: the hourly rules' episodes sorted by start — tokens, endpoints and tags first, then
  providers and models, then the riding tokens — each added to the incident it meets in the strongest
  way (`_meets`: rides its endpoint's incident, goes on, starts with, resumes, shows late), else
  starting one. A riding token (`riders`) is a client with a history whose spend lies mostly on one
  endpoint (`routes`, read through the aggregation layer): while that endpoint's incident runs, the
  token's rise is the endpoint's. Budget episodes are incidents of their own.
- Impact: an episode's `extra` is its spend over its key's usual spend in its holding hours (Σ max(0,
  s(h) − B1(h)), B1: the mean of the same hour on the 7 days before). The episodes of one incident see
  the same dollars through different dimensions, so the incident's impact is their largest extra, not
  their sum — of its token and endpoint episodes when it has any: a provider's or a model's extra
  also holds other problems' dollars.
- Root: the most specific key (token, then endpoint, model, provider) among those episodes whose extra
  is at least half the impact (its `request_storm` episode, if it has one); the others are related.
- `min_impact`: an incident of the spend rules alone whose impact stays under it is left out (a single
  expensive request in a quiet hour); one with a request storm or a new token's spend, and budget
  incidents, are always kept.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cost_api.aggregation.aggregator import Filters, money
from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.watch.anomalies import Episode, Watched
from cost_api.watch.rules import usd
from cost_api.windows import Range, iso

INCIDENT_GAP = timedelta(hours=1)
LATE_JOIN = timedelta(hours=6)  # a coarser key's episode joins an incident this long after its start
CONTINUE_GAP = timedelta(hours=24)  # a key's episode continues its incident after this long a pause
ROOT_SHARE = 0.5  # a root candidate explains at least this share of the impact
RELATED_SHOWN = 5  # related keys named in a text (the webhook's, an annotation's); `related` lists all
ROUTE_SHARE = 0.5  # a token rides the endpoint that carries at least this share of its spend
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
        """Whether `min_impact` applies: only spend rules hold in it, and no new credential. A request
        storm, a budget, or a token that spends for the first time in 7 days (`new_spender`: at the
        rule's rate floor, over at least 3 requests) is kept whatever it cost so far: a leaked token at
        $1.67/h would take 3 hours to reach $5."""
        return all(
            e.rule in SPEND_RULES and not (e.rule == "new_spender" and e.dimension == "token") for e in self.episodes
        )

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

    def also(self) -> str:
        """Its related keys in words, the first RELATED_SHOWN of them: `also endpoint:/chat, token:a… and
        12 more` ('' without any): the tokens that ride a creeping endpoint can be dozens."""
        related = self.related_keys()
        shown = ", ".join(related[:RELATED_SHOWN])
        more = f" and {len(related) - RELATED_SHOWN} more" if len(related) > RELATED_SHOWN else ""
        return f"also {shown}{more}" if related else ""

    def worth(self, min_impact: float, coarse_alone: bool = True) -> bool:
        """Whether it is listed and sent: a storm, a new token or a budget always, else once its impact reaches
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


def incidents(
    found: list[Episode], min_impact: float, *, coarse: bool = True, routes: Mapping[str, str] | None = None
) -> list[Incident]:
    """The episodes grouped into incidents, the largest impact first (then the newest); an hourly
    incident under `min_impact` is left out, and without `coarse` one of provider and model episodes
    alone (`coarse_alone`). `routes`: the endpoint that carries most of each riding token's spend
    (`routes`, below)."""
    routes = routes or {}
    out: list[Incident] = []
    groups: list[list[Episode]] = []  # the hourly incidents' episodes

    def ride(e: Episode) -> str | None:
        return routes.get(e.key) if e.dimension == "token" else None

    # tokens, endpoints and tags first: each request has one of each, so they make the incidents; a
    # provider's or a model's episode then joins the incident it explains, or continues its own; riding
    # tokens last, onto their endpoint's incident
    def rank(e: Episode) -> tuple[Any, ...]:
        return (2 if ride(e) else 0 if is_fine(e.dimension) else 1), *_order(e)

    for e in sorted(found, key=rank):
        if e.rule not in HOURLY_RULES:
            out.append(Incident([e]))
            continue
        best = min(((m, i) for i, g in enumerate(groups) if (m := _meets(g, e, ride(e))) is not None), default=None)
        if best is None:
            groups.append([e])
        else:
            groups[best[1]].append(e)
    out += [Incident(sorted(g, key=_order)) for g in groups]
    kept = [i for i in out if i.worth(min_impact, coarse)]
    kept.sort(key=lambda i: (-i.impact, -i.started_at.timestamp(), i.id))
    return kept


# How an episode meets an incident: a riding token's episode runs while its endpoint's does (an
# endpoint's traffic that creeps up, or its price, raises the spend of every client token on it: one
# problem, seen token by token); its key's run goes on (its episode on that key still runs); it starts
# with one of the incident's running episodes (within INCIDENT_GAP); its key's run resumes after a
# pause (within CONTINUE_GAP: a rule that stops holding for the night, a surge's quiet hours); a coarser
# key shows hours later (within LATE_JOIN). The strongest way wins, then the nearest.
RIDES, GOES_ON, STARTS_WITH, RESUMES, SHOWS_LATE = range(5)
# per kind: tokens, endpoints and tags go on with their own runs first; a provider or a model explains
# what starts with it first
PREFERENCE = {
    True: (RIDES, GOES_ON, STARTS_WITH, RESUMES, SHOWS_LATE),
    False: (STARTS_WITH, GOES_ON, SHOWS_LATE, RESUMES),
}


def _meets(group: list[Episode], e: Episode, endpoint: str | None) -> tuple[int, timedelta] | None:
    """The strongest way `e` meets `group` (in PREFERENCE of its kind), and how far apart; None: not at
    all. `endpoint`: a riding token's. A key joins only an incident that holds no other key of its
    dimension (two keys of one dimension share no request: each request has one endpoint, one token…).
    A finer key never shows late: a token that starts burning hours after an endpoint is another problem
    as often as the same. A storm never resumes an older run: a retry loop is a problem of its own."""
    ways: list[tuple[int, timedelta]] = []
    same = [g for g in group if _key(g) == _key(e)]
    resumed = [g.ended_at for g in same if g.ended_at is not None and _running(g, e, CONTINUE_GAP)]
    ways += [(RIDES, abs(e.started_at - g.started_at)) for g in group if _together(g, e, endpoint)]
    if any(_running(g, e) for g in same):
        ways.append((GOES_ON, timedelta(0)))
    elif resumed and e.rule != "request_storm":
        ways.append((RESUMES, e.started_at - max(resumed)))
    if not any(g.dimension == e.dimension and g.key != e.key for g in group):
        new_dimension = not same and all(g.dimension != e.dimension for g in group)
        for g in (g for g in group if _running(g, e) and _running(e, g)):
            after = e.started_at - g.started_at  # a provider's or a model's episode may start before its token's
            if abs(after) <= INCIDENT_GAP:
                ways.append((STARTS_WITH, abs(after)))
            elif new_dimension and INCIDENT_GAP < after <= LATE_JOIN and specific(e.dimension) > specific(g.dimension):
                ways.append((SHOWS_LATE, after))
    order = PREFERENCE[is_fine(e.dimension)]
    return min(((order.index(way), apart) for way, apart in ways), default=None)


def _together(g: Episode, e: Episode, endpoint: str | None) -> bool:
    """Whether `g` is an episode of `endpoint` that runs at the same time as `e` (within INCIDENT_GAP)."""
    return g.dimension == "endpoint" and g.key == endpoint and _running(g, e) and _running(e, g)


def riders(found: Sequence[Episode]) -> dict[str, tuple[datetime, datetime | None]]:
    """The tokens that could ride an endpoint's incident, each with the span of its episodes (None: open):
    a client with a history (its episodes all `burn_rate` against a baseline; a new credential is a
    problem of its own) whose episodes meet an endpoint's. `routes` reads where their spend went."""
    spans: dict[str, tuple[datetime, datetime | None]] = {}
    for e in found:
        if e.dimension == "token" and e.rule in HOURLY_RULES:
            a, b = spans.get(e.key, (e.started_at, e.ended_at))
            end = None if b is None or e.ended_at is None else max(b, e.ended_at)
            spans[e.key] = (min(a, e.started_at), end)
    unfit = {
        e.key for e in found if e.dimension == "token" and not (e.rule == "burn_rate" and math.isfinite(e.peak_ratio))
    }
    endpoints = [e for e in found if e.dimension == "endpoint" and e.rule in HOURLY_RULES]
    return {
        key: span
        for key, span in spans.items()
        if key not in unfit and any(_spans_meet(span, (h.started_at, h.ended_at)) for h in endpoints)
    }


def _spans_meet(a: tuple[datetime, datetime | None], b: tuple[datetime, datetime | None]) -> bool:
    return (a[1] is None or a[1] + INCIDENT_GAP >= b[0]) and (b[1] is None or b[1] + INCIDENT_GAP >= a[0])


async def grouped(
    service: Watched, found: list[Episode], min_impact: float, now: datetime, *, coarse: bool = True
) -> list[Incident]:
    """`incidents`, with the `routes` of the riding tokens read up to `now`."""
    return incidents(found, min_impact, coarse=coarse, routes=await routes(service, found, now))


async def routes(service: Watched, found: Sequence[Episode], now: datetime) -> dict[str, str]:
    """The endpoint that carries at least ROUTE_SHARE of each riding token's spend over its episodes
    (`riders`): one read per such token, its spend by endpoint under its `token=` filter (what
    `/v1/spend?group_by=endpoint&token=…` sums)."""
    spans = riders(found)
    if not spans:
        return {}
    agg = service.aggregator
    directory = await agg.tokens()
    reads = [
        agg.groups(Range(a, b or now), dim="endpoint", filters=Filters(tokens=(key,)), directory=directory, whole=True)
        for key, (a, b) in spans.items()
    ]
    out: dict[str, str] = {}
    for key, groups in zip(spans, await gather_or_cancel(*reads), strict=True):
        spend = groups.spend_by("key")
        best = max(spend, key=lambda k: spend[k], default=None)
        if best is not None and spend[best] > 0 and spend[best] >= ROUTE_SHARE * sum(spend.values()):
            out[key] = str(best)
    return out


def _order(e: Episode) -> tuple[Any, ...]:
    """Episodes by start; at one start a storm first (a retry loop names its incident), then by rule."""
    return e.started_at, e.rule != "request_storm", e.rule, specific(e.dimension), e.dimension, e.key


def merged(old: Incident, new: Incident) -> Incident:
    """`new` (a later replay's view of an incident) with the episodes of `old` it no longer sees (they
    ended before the replayed hours): what the live engine reports."""
    have = {e.id for e in new.episodes}
    return Incident(sorted(new.episodes + [e for e in old.episodes if e.id not in have], key=_order))


def _running(g: Episode, e: Episode, gap: timedelta = INCIDENT_GAP) -> bool:
    """Whether episode `g` (started no later than `e`) is open, or ended at most `gap` before `e`."""
    return g.ended_at is None or e.started_at - g.ended_at <= gap
