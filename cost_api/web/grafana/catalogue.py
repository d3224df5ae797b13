"""What the datasource offers: its targets (time series, tables, the others), their payload fields as
the plugin's builder mode shows them (/metrics), the variables and the ad-hoc filter keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cost_api.aggregation.aggregator import money
from cost_api.aggregation.groups import Totals
from cost_api.lenses import trend
from cost_api.web.grafana.shapes import Metric, Option, PayloadField, TagKey
from cost_api.windows import HOUR_MS

DAY_MS = trend.DAY_MS
MINUTE_MS = 60_000
# Bucket sizes a series may take: the smallest one that is at least Grafana's `intervalMs`, gives at
# most `maxDataPoints` (and MAX_BUCKETS) points (past `1d`, as many local days as that takes). Sub-day
# steps are aligned to UTC multiples of the step; `1d` buckets are the local days of the dashboard's
# zone, as /v1/trend has them (`trend.step_buckets`).
STEPS = {
    "1m": MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "3h": 3 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
}
STEP_ALIASES = {"hour": "1h", "day": "1d", "60m": "1h", "24h": "1d"}
FILTER_KEYS = ("provider", "model", "endpoint", "token")

SERIES: dict[str, tuple[str, Callable[[Totals], float]]] = {
    "spend": ("Spend (USD)", lambda t: money(t.spend)),
    "saved_by_cache": ("Saved by cache (USD)", lambda t: money(t.saved_by_cache)),
    "requests": ("Requests", lambda t: t.requests),
    "tokens": (
        "Tokens (prompt + completion + cache read + cache write)",
        lambda t: t.prompt_tokens + t.completion_tokens + t.cache_read_tokens + t.cache_write_tokens,
    ),
}


@dataclass(frozen=True, slots=True)
class Table:
    label: str
    group_by: str  # the /v1/spend lens behind it
    limit: int  # rows, unless the payload says `limit`
    keys: tuple[tuple[str, str], ...]  # (item field, column text)


SPEND_COLUMNS = (
    ("spend", "Spend"),
    ("share_pct", "Share %"),
    ("requests", "Requests"),
    ("saved_by_cache", "Saved by cache"),
    ("previous_spend", "Previous spend"),
    ("change_pct", "Change %"),
)
TABLES = {
    "by_provider": Table("Spend by provider (table)", "provider", 50, (("provider", "Provider"),)),
    "top_endpoints": Table("Top endpoints (table)", "endpoint", 10, (("endpoint", "Endpoint"),)),
    "top_tokens": Table("Top tokens (table)", "token", 10, (("token", "Token"), ("name", "Name"))),
    "top_models": Table(
        "Top models (table)", "model", 10, (("provider", "Provider"), ("model", "Model"), ("priced_as", "Priced as"))
    ),
}
SUMMARY_COLUMNS = (
    ("spend", "Spend"),
    ("saved_by_cache", "Saved by cache"),
    ("saved_pct", "Saved %"),
    ("previous_spend", "Previous spend"),
    ("change", "Change"),
    ("change_pct", "Change %"),
    ("requests", "Requests"),
    ("cache_hits", "Cache hits"),
)
LIVE_COLUMNS = (
    ("spend", "Spend"),
    ("saved_by_cache", "Saved by cache"),
    ("requests", "Requests"),
    ("cache_hits", "Cache hits"),
    ("errors", "Errors"),
    ("spend_rate_per_hour", "Spend rate per hour"),
    ("lag_seconds", "Lag seconds"),
)
OTHERS = {
    "summary": "Headline: spend, saved by cache, change vs the previous period (table)",
    "live": "The last hour of the range: spend, savings, errors, burn rate (table)",
    "anomalies": "Anomaly episodes (annotations: time, timeEnd, title, text, tags)",
}
VARIABLES = {"providers": "provider", "models": "model", "endpoints": "endpoint", "tokens": "token"}


def _filter_payloads() -> list[PayloadField]:
    return [
        PayloadField(name=key, label=key.capitalize(), type="multi-select", placeholder="all") for key in FILTER_KEYS
    ]


def metrics() -> list[Metric]:
    """The /metrics answer: every target with its payload fields (the builder mode's form); `text` is
    `value` again, for plugins before 0.4 that read `text` and `value` from /search."""
    series_payloads = [
        PayloadField(
            name="group_by",
            label="Group by",
            type="select",
            options=[
                Option("none", ""),
                *(Option(name.capitalize(), name) for name in trend.GROUP_BY if name != "tag"),
            ],
        ),
        PayloadField(name="top", label="Series", type="input", placeholder="8 (the rest as other)"),
        PayloadField(
            name="interval",
            label="Interval",
            type="select",
            options=[Option("auto", ""), *(Option(s, s) for s in STEPS)],
        ),
        *_filter_payloads(),
    ]
    table_payloads = [PayloadField(name="limit", label="Rows", type="input", placeholder="10"), *_filter_payloads()]
    out = [Metric(name, label, series_payloads, name) for name, (label, _) in SERIES.items()]
    out += [Metric(name, table.label, table_payloads, name) for name, table in TABLES.items()]
    out += [
        Metric(name, label, [] if name == "anomalies" else _filter_payloads(), name) for name, label in OTHERS.items()
    ]
    return out


TAG_KEYS = [TagKey("string", key) for key in FILTER_KEYS]
