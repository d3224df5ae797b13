"""`cost-api smoke`: run every registered query once against a database, with harmless parameters.

A one-hour range ending now, no filters, the price table's thresholds padded as the aggregator pads
them. Prints name, rows and milliseconds per query; any failure makes the exit status non-zero.
A query taking a parameter this module has no value for fails, naming it: add a harmless value.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from .aggregate import Filters, filter_params, threshold_params
from .config import Settings
from .service import build_service
from .windows import HOUR_MS, now_utc

OPTIONAL_TABLES = ("api_tokens",)  # request-log.md: labels are optional; their absence is no failure


def harmless_params(thresholds: dict[str, int]) -> dict[str, Any]:
    end = now_utc()
    return {
        "start": end - timedelta(hours=1),
        "end": end,
        "after": 2**62,  # rows_after: nothing that new
        "holes": [],
        "slot_ms": HOUR_MS,
        "dim": "",
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
        params = harmless_params(threshold_params(service.pricing))
        for query in service.db.registry:
            wanted = {p: params[p] for p in query.params if p in params}
            started = time.perf_counter()
            try:
                rows = await service.db.fetch(query.name, **wanted)
            except Exception as exc:
                if any(table in str(exc) for table in OPTIONAL_TABLES):
                    lines.append(f"{query.name:<24} {'skipped':>8}  (optional table absent: {exc})")
                    continue
                failures += 1
                lines.append(f"{query.name:<24} {'FAILED':>8}  {type(exc).__name__}: {exc}")
                continue
            ms = (time.perf_counter() - started) * 1000
            lines.append(f"{query.name:<24} {len(rows):>8} {ms:>9.1f}")
    finally:
        await service.close()
    count = len(lines) - 1
    dialect = service.db.dialect
    lines.append(f"{failures} of {count} queries failed" if failures else f"ok: {count} queries on {dialect}")
    return (1 if failures else 0), "\n".join(lines)
