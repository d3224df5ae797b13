"""Each named query's duration by outcome, for `GET /metrics` (`cost_api_query_duration_seconds`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Histogram

from cost_api.store.errors import DatabaseUnavailable, QueryTimeout

# Seconds: from a cached in-memory answer (ms) to a query near its time limit.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

QUERY_SECONDS = Histogram(
    "cost_api_query_duration_seconds",
    "Time spent in one named database query, by query name and outcome",
    ["query", "outcome"],
    buckets=BUCKETS,
)


@contextmanager
def time_query(name: str) -> Iterator[None]:
    """Observe one named query's duration, labelled with how it ended."""
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
