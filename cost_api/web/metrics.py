"""Prometheus metrics, served as text at `GET /metrics`.

- `cost_api_request_duration_seconds{method,path,status_code,app_name}` (and `cost_api_requests_total`,
  `cost_api_requests_in_progress`, `cost_api_requests_error_total`): per route, from litestar's
  Prometheus plugin; `path` is the route template (`/v1/summary`), so unknown paths add no series.
- `cost_api_query_duration_seconds{query,outcome}`: each named query of the registry, timed in
  `Database.fetch` (store/timing.py); `outcome` is `ok`, `timeout`, `unavailable`, `cancelled` (a
  sibling query of the same request failed) or `error`.
- `cost_api_shed_requests_total`: analytics requests answered 503 because `max_concurrent_queries`
  were already running (see limits.py).
- `cost_api_webhook_deliveries_total{result}`: alert webhook deliveries, counted by the alert engine
  (watch/alerts.py) as `delivered`, `failed` or `retried`.

The metrics live in prometheus_client's process-wide registry: every app in one process shares them,
and each is defined in the layer that counts it (the store, the alert engine, admission here).
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest

from cost_api.store.timing import BUCKETS
from cost_api.web.scope import key_scope, refuse

SHED_REQUESTS = Counter(
    "cost_api_shed_requests",
    "Analytics requests answered 503 because max_concurrent_queries were already running",
)
ABANDONED_REQUESTS = Counter(
    "cost_api_abandoned_requests",
    "Requests whose client disconnected before the answer: their work and queries were cancelled",
)


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
def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    refuse(key_scope(request.scope), "/metrics")
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
