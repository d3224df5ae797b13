"""Log one gateway call to `request_log` (SQLite), with its usage read by `cost_api.usage`."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cost_api.usage import StreamUsage, Usage, from_response

log = logging.getLogger("gateway")

INSERT = """
INSERT INTO request_log (
    created_at, request_id, provider, model, endpoint, token_id, status_code, streamed,
    prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
    cache_hit, prompt_tokens_avoided, completion_tokens_avoided, latency_ms, cache_key,
    cache_write_1h_tokens, service_tier, usage_exact
) VALUES (
    :created_at, :request_id, :provider, :model, :endpoint, :token_id, :status_code, :streamed,
    :prompt_tokens, :completion_tokens, :cache_read_tokens, :cache_write_tokens,
    :cache_hit, :prompt_tokens_avoided, :completion_tokens_avoided, :latency_ms, :cache_key,
    :cache_write_1h_tokens, :service_tier, :usage_exact
)
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """What the gateway knows about a request besides the provider's answer."""

    provider: str  # lower case: "openai", "anthropic", "google", ...
    model: str  # as requested; the provider's echo (usage.model) wins when there is one
    endpoint: str  # the gateway route, e.g. "/summarise-ticket"
    streamed: bool = False
    token_id: str | None = None
    request_id: str | None = None
    status_code: int = 200
    latency_ms: int | None = None
    cache_key: str | None = None  # the response-cache key, None when not cacheable
    service_tier: str | None = None  # "batch" for a call sent through a Batch API: its body does not say
    created_at: int = field(default_factory=lambda: time.time_ns() // 1_000_000)  # epoch ms, UTC


def _insert(conn: sqlite3.Connection, call: Call, model: str | None, **columns: int | str | None) -> None:
    row = {
        "created_at": call.created_at,
        "request_id": call.request_id,
        "provider": call.provider,
        "model": model or call.model,
        "endpoint": call.endpoint,
        "token_id": call.token_id,
        "status_code": call.status_code,
        "streamed": int(call.streamed),
        "latency_ms": call.latency_ms,
        "cache_key": call.cache_key,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cache_hit": 0,
        "prompt_tokens_avoided": 0,
        "completion_tokens_avoided": 0,
        "cache_write_1h_tokens": 0,
        "service_tier": None,  # NULL: standard
        "usage_exact": None,  # NULL: exact
    }
    with conn:
        conn.execute(INSERT, row | columns)


def _log_provider_call(conn: sqlite3.Connection, call: Call, usage: Usage) -> Usage:
    if not usage.exact:  # logged all the same: the request happened, its cost is unknown
        log.warning("%s %s: no final usage report; tokens logged as seen", call.provider, call.endpoint)
    _insert(
        conn,
        call,
        usage.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,  # the 1-hour part of cache_write_tokens
        service_tier=call.service_tier or usage.service_tier,
        usage_exact=int(usage.exact),  # 0: the counts are what was seen; the API counts such rows
    )
    return usage


def log_response(conn: sqlite3.Connection, call: Call, body: Mapping[str, Any] | str | bytes) -> Usage:
    """A non-streamed call. Keep the returned Usage with the cached response, for log_cache_hit."""
    return _log_provider_call(conn, call, from_response(call.provider, body))


def log_stream(conn: sqlite3.Connection, call: Call, events: Iterable[Mapping[str, Any] | str | bytes]) -> Usage:
    """A streamed call: `events` are the SSE lines (or decoded events) relayed to the client."""
    usage = StreamUsage(call.provider)
    for event in events:
        usage.feed(event)
    return _log_provider_call(conn, call, usage.result())


def log_cache_hit(conn: sqlite3.Connection, call: Call, original: Usage) -> None:
    """The response cache answered: no provider call, $0; the avoided tokens carry the savings."""
    _insert(
        conn,
        call,
        original.model,
        cache_hit=1,
        prompt_tokens_avoided=original.total_prompt_tokens,
        completion_tokens_avoided=original.completion_tokens,
    )
