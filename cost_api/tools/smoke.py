"""`cost-api smoke`: run every registered query once against a database, with harmless parameters.

A one-hour range ending now, no filters, the price table's thresholds padded as the aggregator pads
them. Prints name, rows and milliseconds per query; any failure makes the exit status non-zero.
A query taking a parameter this module has no value for fails, naming it: add a harmless value.
Then, when every query ran, the rows of the last 24 hours that the figures leave out, per reason (the
`data_quality` block of the API: bad rows are no failure, but never silent).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from cost_api.aggregation.aggregator import Filters, data_quality_block, filter_params, threshold_params
from cost_api.config import Settings
from cost_api.store.database import NotInSchema
from cost_api.web.service import Service, build_service
from cost_api.windows import HOUR_MS, Range

OPTIONAL_QUERIES = ("token_labels", "token_tags")  # api_tokens and its tags column are optional (request-log.md)
QUALITY_SPAN = timedelta(hours=24)


def harmless_params(thresholds: dict[str, int], now: datetime) -> dict[str, Any]:
    end = now.replace(microsecond=0)
    return {
        "start": end - timedelta(hours=1),
        "end": end,
        "after": 2**62,  # rows_after: nothing that new
        "hole_from": [],
        "hole_to": [],
        "max_id": None,
        "skip_from": None,
        "skip_to": None,
        "lo": 2**62,  # id_span_hours: nothing that new
        "hi": 2**62,
        "slot_ms": HOUR_MS,
        "dim": "",
        "parts": 1,  # groups: one part, at most 2**62 groups
        "part": 0,
        "max_groups": 2**62,
        **filter_params(Filters(), None),
        **thresholds,
        "c_at": end,
        "c_id": 0,
        "limit": 1,
        "min_requests": 1,
        "cutoff": end,
    }


async def smoke(settings: Settings) -> tuple[int, str]:
    """(exit status, text). A missing schema raises SchemaMissing before any query runs."""
    service = build_service(settings)
    lines = [f"{'query':<24} {'rows':>8} {'ms':>9}"]
    failures = 0
    try:
        await service.db.check_schema()
        params = harmless_params(threshold_params(service.pricing), service.clock.now())
        for query in service.db.registry:
            wanted = {p: params[p] for p in query.params if p in params}
            started = time.perf_counter()
            try:
                rows = await service.db.fetch(query.name, **wanted)
            except Exception as exc:
                if isinstance(exc, NotInSchema) and query.name in OPTIONAL_QUERIES:
                    lines.append(f"{query.name:<24} {'skipped':>8}  (optional table or column absent: {exc})")
                    continue
                failures += 1
                lines.append(f"{query.name:<24} {'FAILED':>8}  {type(exc).__name__}: {exc}")
                continue
            ms = (time.perf_counter() - started) * 1000
            lines.append(f"{query.name:<24} {len(rows):>8} {ms:>9.1f}")
        count = len(lines) - 1
        dialect = service.db.dialect
        if failures:
            lines.append(f"{failures} of {count} queries failed")
        else:
            read = ", ".join((await service.db.read_log_columns()).read) or "none"
            lines += [f"ok: {count} queries on {dialect}; optional columns read: {read}"]
            lines += [await data_quality_line(service)]
    finally:
        await service.close()
    return (1 if failures else 0), "\n".join(lines)


async def data_quality_line(service: Service) -> str:
    """The rows of the last QUALITY_SPAN the figures leave out, per reason, as the API counts them."""
    agg = service.aggregator
    end = agg.now()
    groups = await agg.groups(Range(end - QUALITY_SPAN, end))
    block = data_quality_block(groups, await agg.freshness())
    head = f"data quality, last {QUALITY_SPAN.total_seconds() / 3600:g}h (future rows: whole log):"
    if not block["excluded_requests"]:
        return f"{head} no row left out"
    reasons = ", ".join(f"{reason} {n}" for reason, n in block["reasons"].items() if n)
    return f"{head} {block['excluded_requests']} rows left out of every figure: {reasons}"
