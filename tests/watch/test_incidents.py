"""Episodes grouped into incidents (watch/incidents.py): one leak seen through four dimensions is one
incident named by its token; keys of one dimension never share one; impacts and the `min_impact` floor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cost_api.watch.anomalies import Episode, Reading
from cost_api.watch.incidents import Incident, incident_id, incidents

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
READING = Reading(1.0, 0.0, 1.0, "words")


def ep(rule: str, dimension: str, key: str, start: datetime, end: datetime | None, extra: float) -> Episode:
    return Episode(rule, dimension, key, start, end, 1.0, extra, READING, extra=extra)


def test_a_leak_seen_through_four_dimensions_is_one_incident_named_by_its_token() -> None:
    found = [
        ep("new_spender", "token", "pg_live_ci7…", T0, T0 + HOUR, 20.0),
        ep("burn_rate", "token", "pg_live_ci7…", T0, None, 30.0),
        ep("burn_rate", "endpoint", "/chat", T0, None, 31.0),  # the token's dollars and a little more
        ep("burn_rate", "provider", "anthropic", T0 + HOUR, None, 24.0),
        ep("burn_rate", "model", "anthropic/claude-opus", T0, None, 9.0),
    ]
    (incident,) = incidents(found, min_impact=5.0)
    # the impact is the largest extra, $31 (not the $114 sum: the same dollars seen four times); the token's
    # $30 is at least half of it and the token the most specific key, so the token is the root
    assert incident.impact == 31.0
    assert (incident.root.dimension, incident.root.key, incident.root.rule) == ("token", "pg_live_ci7…", "burn_rate")
    now = T0 + 2 * HOUR
    body = incident.as_json(now)
    assert body["related"] == ["endpoint:/chat", "model:anthropic/claude-opus", "provider:anthropic"]
    assert body["impact_per_hour"] == 15.5  # $31 over the 2 hours since it started
    assert body["id"] == incident_id(found[1])  # its first episode: the earliest, then by rule


def test_two_endpoints_at_once_are_two_incidents_and_small_ones_are_left_out() -> None:
    found = [
        ep("burn_rate", "endpoint", "/a", T0, T0 + 2 * HOUR, 12.0),
        ep("burn_rate", "endpoint", "/b", T0, T0 + HOUR, 4.0),  # under min_impact $5
        ep("request_storm", "endpoint", "/c", T0 + 30 * HOUR, None, 0.5),  # a storm is kept whatever it cost
        ep("burn_rate", "endpoint", "/d", T0 + 5 * HOUR, T0 + 6 * HOUR, 7.0),
    ]
    assert [(i.root.key, i.impact) for i in incidents(found, min_impact=5.0)] == [
        ("/a", 12.0),
        ("/d", 7.0),
        ("/c", 0.5),
    ]
    assert len(incidents(found, min_impact=0.0)) == 4


def test_a_rule_that_pauses_for_an_hour_continues_its_incident() -> None:
    found = [
        ep("burn_rate", "token", "t…", T0, T0 + 10 * HOUR, 3.0),
        ep("burn_rate", "token", "t…", T0 + 11 * HOUR, None, 4.0),  # ended 1 hour before: the same incident
        ep("burn_rate", "endpoint", "/chat", T0 + 6 * HOUR, None, 6.0),  # the token's endpoint, once it shows
        ep("burn_rate", "token", "t…", T0 + 20 * HOUR + HOUR, None, 8.0),  # open run: continues it too
    ]
    (incident,) = incidents(found, min_impact=5.0)
    assert incident.started_at == T0 and incident.open
    assert (incident.root.key, incident.impact) == ("t…", 8.0)


def test_a_finer_key_never_joins_late_and_a_coarser_one_within_6_hours() -> None:
    found = [
        ep("burn_rate", "endpoint", "/creep", T0, None, 40.0),
        ep("burn_rate", "token", "leak…", T0 + 3 * HOUR, None, 30.0),  # a token hours later: its own incident
        # coarser, within 6 h of both: joins the nearer start, the token's (2 h before it)
        ep("burn_rate", "provider", "anthropic", T0 + 5 * HOUR, None, 45.0),
        ep("burn_rate", "model", "anthropic/claude-opus", T0 + 10 * HOUR, None, 9.0),  # 10 h, 7 h: too late
        ep("burn_rate", "model", "openai/gpt-5", T0 - 2 * HOUR, None, 9.0),  # 2 h before: no late join backwards
    ]
    assert sorted((i.root.key, [e.key for e in i.episodes]) for i in incidents(found, min_impact=5.0)) == [
        ("/creep", ["/creep"]),
        ("anthropic/claude-opus", ["anthropic/claude-opus"]),
        ("leak…", ["leak…", "anthropic"]),
        ("openai/gpt-5", ["openai/gpt-5"]),
    ]


def test_the_impact_is_the_tokens_and_endpoints_and_providers_alone_can_be_left_out() -> None:
    found = [
        ep("burn_rate", "token", "t…", T0, None, 20.0),
        ep("burn_rate", "model", "anthropic/claude-opus", T0, None, 100.0),  # other problems' dollars too
    ]
    (incident,) = incidents(found, min_impact=5.0)
    assert (incident.impact, incident.root.key) == (20.0, "t…")
    alone = [ep("burn_rate", "provider", "openai", T0, None, 50.0)]
    assert [i.impact for i in incidents(alone, min_impact=5.0)] == [50.0]  # when only providers are watched
    assert incidents(alone, min_impact=5.0, coarse=False) == []  # when tokens or endpoints are


def test_tokens_riding_an_endpoints_rise_are_its_incident() -> None:
    """A creeping endpoint raises the spend of every client token on it: the tokens whose spend lies on it
    (`routes`) and whose episodes run while its episodes do are its incident, not one incident each."""
    found = [
        ep("burn_rate", "endpoint", "/summarise", T0, T0 + 30 * HOUR, 300.0),
        ep("burn_rate", "token", "a…", T0 - 4 * HOUR, T0 - 3 * HOUR, 2.0),  # before the endpoint's run
        ep("burn_rate", "token", "a…", T0 + 2 * HOUR, T0 + 20 * HOUR, 40.0),
        ep("burn_rate", "token", "b…", T0 + 5 * HOUR, None, 30.0),
        ep("burn_rate", "token", "c…", T0 + 5 * HOUR, T0 + 9 * HOUR, 20.0),  # its spend lies on /chat
        ep("burn_rate", "endpoint", "/summarise", T0 + 36 * HOUR, None, 50.0),  # resumes after 6 hours
    ]
    routes = {"a…": "/summarise", "b…": "/summarise", "c…": "/chat"}
    creep, other = incidents(found, min_impact=5.0, routes=routes)
    assert (creep.root.key, creep.impact, creep.started_at) == ("/summarise", 300.0, T0)
    assert creep.related_keys() == ["token:a…", "token:b…"]
    assert (other.root.key, other.impact) == ("c…", 20.0)
    # a's run before the endpoint's ($2) stays its own, under min_impact
    assert [(i.root.key, i.impact) for i in incidents(found, min_impact=0.0, routes=routes)][-1] == ("a…", 2.0)
    # without routes each token is an incident of its own
    assert sorted(i.root.key for i in incidents(found, min_impact=5.0)) == ["/summarise", "a…", "b…", "c…"]


def test_a_storm_starts_its_own_incident_and_its_keys_join_it() -> None:
    """A token that burned a little yesterday, then loops today: the storm does not resume yesterday's
    run; its token's burn, its endpoint and its provider (whose own run yesterday it could resume) are
    the storm's incident."""
    found = [
        ep("burn_rate", "token", "q…", T0, T0 + HOUR, 1.0),
        ep("burn_rate", "provider", "openai", T0 - HOUR, T0 + 2 * HOUR, 2.0),
        ep("burn_rate", "token", "q…", T0 + 20 * HOUR, None, 3.0),
        ep("request_storm", "token", "q…", T0 + 20 * HOUR, None, 3.0),
        ep("request_storm", "endpoint", "/classify", T0 + 20 * HOUR, None, 3.0),
        ep("burn_rate", "provider", "openai", T0 + 20 * HOUR, None, 4.0),
    ]
    (storm,) = incidents(found, min_impact=5.0, coarse=False)
    assert (storm.root.rule, storm.root.key, storm.started_at) == ("request_storm", "q…", T0 + 20 * HOUR)
    assert storm.related_keys() == ["endpoint:/classify", "provider:openai"]
    assert storm.id == incident_id(found[3])  # at one start a storm comes first and names it


def test_a_new_credential_is_kept_whatever_it_cost_so_far() -> None:
    """A token with no spend in the 7 days before (`new_spender`) is an incident at once: a leak at
    $1.67/h would take 3 hours to reach min_impact. A new endpoint is a deployment, not a leak."""
    found = [
        ep("new_spender", "token", "new…", T0, None, 0.42),
        ep("new_spender", "endpoint", "/chat", T0, None, 0.42),
    ]
    (incident,) = incidents(found, min_impact=5.0)
    assert (incident.root.key, incident.impact) == ("new…", 0.42)
    assert incidents([ep("new_spender", "endpoint", "/new", T0, None, 0.42)], min_impact=5.0) == []


def test_a_text_names_five_related_keys_and_counts_the_rest() -> None:
    found = [ep("burn_rate", "endpoint", "/creep", T0, None, 100.0)]
    found += [ep("burn_rate", "token", f"t{n}…", T0 + n * HOUR, None, 1.0) for n in range(1, 8)]
    incident = Incident(found)
    assert len(incident.related_keys()) == 7
    assert incident.also() == "also token:t1…, token:t2…, token:t3…, token:t4…, token:t5… and 2 more"
    assert Incident(found[:1]).also() == ""
