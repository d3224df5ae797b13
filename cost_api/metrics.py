"""Prometheus metrics, served as text at `GET /metrics`.

- `cost_api_request_duration_seconds{method,path,status_code,app_name}` (and `cost_api_requests_total`,
  `cost_api_requests_in_progress`, `cost_api_requests_error_total`): per route, from litestar's
  Prometheus plugin; `path` is the route template (`/v1/summary`), so unknown paths add no series.
- `cost_api_query_duration_seconds{query,outcome}`: each named query of the registry, timed in
  `Database.fetch`; `outcome` is `ok`, `timeout`, `unavailable`, `cancelled` (a sibling query of
  the same request failed) or `error`.
- `cost_api_shed_requests_total`: analytics requests answered 503 because `max_concurrent_queries`
  were already running (see limits.py).
- `cost_api_webhook_deliveries_total{result}`: alert webhook deliveries; the alert engine calls
  `WEBHOOK_DELIVERIES.labels(result="delivered").inc()` (or `failed`, `retried`).

The metrics live in prometheus_client's process-wide registry: every app in one process shares them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from litestar import MediaType, Response, get
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

# Seconds: from a cached in-memory answer (ms) to a query near its time limit.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

QUERY_SECONDS = Histogram(
    "cost_api_query_duration_seconds",
    "Time spent in one named database query, by query name and outcome",
    ["query", "outcome"],
    buckets=BUCKETS,
)
SHED_REQUESTS = Counter(
    "cost_api_shed_requests",
    "Analytics requests answered 503 because max_concurrent_queries were already running",
)
ABANDONED_REQUESTS = Counter(
    "cost_api_abandoned_requests",
    "Requests whose client disconnected before the answer: their work and queries were cancelled",
)
WEBHOOK_DELIVERIES = Counter(
    "cost_api_webhook_deliveries",
    "Alert webhook deliveries, by result (delivered, failed, retried)",
    ["result"],
)
for _result in ("delivered", "failed", "retried"):  # present (at 0) before the first delivery
    WEBHOOK_DELIVERIES.labels(result=_result)


@contextmanager
def time_query(name: str) -> Iterator[None]:
    """Observe one named query's duration, labelled with how it ended."""
    from .db import DatabaseUnavailable, QueryTimeout  # db imports this module

    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except QueryTimeout:
        outcome = "timeout"
        raise
    except DatabaseUnavailable:
        outcome = "unavailable"
        raise
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        QUERY_SECONDS.labels(query=name, outcome=outcome).observe(time.perf_counter() - started)


def prometheus_config() -> PrometheusConfig:
    """Per-route request metrics (litestar's Prometheus middleware), grouped by route template."""
    return PrometheusConfig(app_name="cost-api", prefix="cost_api", group_path=True, buckets=list(BUCKETS))


@get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics: request and per-query latency, shed requests, webhook deliveries",
    media_type=MediaType.TEXT,
    sync_to_thread=False,
)
def metrics_endpoint() -> Response[bytes]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
