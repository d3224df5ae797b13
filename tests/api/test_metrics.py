"""GET /metrics: Prometheus text with request latency per route, latency per named query, and the
webhook delivery counter the alert engine increments."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from cost_api.store import timing
from cost_api.store.database import DatabaseUnavailable, QueryTimeout
from cost_api.watch import alerts

from ..conftest import ClientFactory
from ..logdb import LogDB, Row, at


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition, keyed by (name, labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0.0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and wanted <= ls)


async def test_metrics_text(client_for: ClientFactory, log: LogDB) -> None:
    await log.insert([Row(at("2026-11-19T10:00:00Z"), prompt_tokens=1000)])
    async with client_for(api_keys=["scraper-key"]) as client:
        key = {"Authorization": "Bearer scraper-key"}
        before = samples((await client.get("/metrics", headers=key)).text)
        for _ in range(2):
            ok = await client.get("/v1/summary", params={"to": "2026-11-20T00:00:00Z"}, headers=key)
            assert ok.status_code == 200
        assert (await client.get("/v1/summary")).status_code == 401
        assert (await client.get("/v1/summary", params={"window": "nonsense"}, headers=key)).status_code == 400
        assert (await client.get("/no/such/path", headers=key)).status_code == 404
        alerts.WEBHOOK_DELIVERIES.labels(result="failed").inc()

        response = await client.get("/metrics", headers=key)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        after = samples(response.text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"path": "/v1/summary", "method": "GET"}
    assert delta("cost_api_requests_total", status_code="200", **route) == 2
    assert delta("cost_api_requests_total", status_code="401", **route) == 1
    assert delta("cost_api_requests_total", status_code="400", **route) == 1
    assert delta("cost_api_request_duration_seconds_count", **route) == 4
    assert value(after, "cost_api_request_duration_seconds_bucket", le="+Inf", **route) >= 4
    # an unknown path is not a route: it adds no series (no cardinality from scanners)
    assert not any("/no/such/path" in dict(labels).get("path", "") for _, labels in after)

    # per named query, with its outcome
    assert delta("cost_api_query_duration_seconds_count", query="groups", outcome="ok") >= 2
    assert value(after, "cost_api_query_duration_seconds_sum", query="groups", outcome="ok") > 0

    # the alert engine's counter, present from the start with every result at zero or more
    assert delta("cost_api_webhook_deliveries_total", result="failed") == 1
    for result in ("delivered", "failed", "retried"):
        assert ("cost_api_webhook_deliveries_total", frozenset({("result", result)})) in after


@pytest.mark.parametrize(
    ("raised", "outcome"),
    [(None, "ok"), (QueryTimeout("x"), "timeout"), (DatabaseUnavailable("x"), "unavailable"), (KeyError("x"), "error")],
)
def test_query_outcomes(raised: Exception | None, outcome: str) -> None:
    labels = {"query": "probe", "outcome": outcome}

    def count() -> float:
        return REGISTRY.get_sample_value("cost_api_query_duration_seconds_count", labels) or 0.0

    before = count()
    with pytest.raises(type(raised)) if raised else nullcontext(), timing.time_query("probe"):
        if raised:
            raise raised
    assert count() == before + 1
