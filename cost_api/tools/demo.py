"""`cost-api demo`: write a realistic request log, with three stories to find, into a database it creates.

The log covers `days` days up to `now`: 8 providers with real model ids, 40 endpoints and a few hundred
API tokens on skewed popularity, a daily and weekly rhythm, month-over-month growth, response-cache hits,
provider prompt caching, long-context requests, an unpriced model, errors. The stories:

1. `leaked-ci-token`: silent until 10 days before `now`, then about $40/day of claude-opus-4-1, day and night.
2. `/agent-proxy-claude`: 3× its usual requests (and spend) from the most recent Monday 00:00 in `tz`.
3. A retry storm: ~50 requests/s of gpt-4o-mini at `/classify-intent` over the 20 minutes before `now`.

Columns are generated with numpy per day (or per second when following) and written in large transactions.
The demo writes only into a database it created, which it marks with a `cost_api_demo` table holding
its parameters, so that `--follow` continues the same log with the same distributions.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import numpy as np
from tqdm import tqdm

from cost_api.resources import sql_dir
from cost_api.store.url import DatabaseURL, parse_database_url

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

COLUMNS = (
    "created_at", "request_id", "provider", "model", "endpoint", "token_id", "status_code", "streamed",
    "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "cache_hit",
    "prompt_tokens_avoided", "completion_tokens_avoided", "latency_ms", "cache_key",
)  # fmt: skip
Batch = dict[str, np.ndarray]
T = TypeVar("T")

# provider, model id, milliseconds per output token, input size above which a long-context tier applies
MODELS = (
    ("anthropic", "claude-sonnet-4-5-20250929", 18, 0),
    ("anthropic", "claude-3-5-sonnet-20241022", 16, 0),
    ("anthropic", "claude-3-7-sonnet-20250219", 16, 0),
    ("anthropic", "claude-haiku-4-5-20251001", 8, 0),
    ("anthropic", "us.anthropic.claude-3-5-haiku-20241022-v1:0", 9, 0),
    ("anthropic", "claude-sonnet-4-20250514", 18, 200_000),
    ("anthropic", "claude-opus-4-1-20250805", 30, 0),
    ("openai", "gpt-4o-2024-08-06", 12, 0),
    ("openai", "gpt-4o-2024-05-13", 14, 0),
    ("openai", "gpt-4o-mini-2024-07-18", 6, 0),
    ("openai", "gpt-4.1-2025-04-14", 12, 0),
    ("openai", "gpt-4.1-mini-2025-04-14", 7, 0),
    ("openai", "gpt-4.1-nano-2025-04-14", 4, 0),
    ("openai", "o3-mini-2025-01-31", 10, 0),
    ("openai", "gpt-5-2025-08-07", 15, 0),
    ("openai", "gpt-5-mini-2025-08-07", 8, 0),
    ("openai", "gpt-5.4-2026-03-05", 14, 272_000),
    ("openai", "text-embedding-3-small", 0, 0),
    ("google", "models/gemini-2.5-pro", 14, 200_000),
    ("google", "models/gemini-2.5-flash", 5, 0),
    ("google", "gemini-2.0-flash-001", 4, 0),
    ("google", "gemini-2.0-flash-lite", 3, 0),
    ("cohere", "command-r-08-2024", 9, 0),
    ("cohere", "command-r-plus-08-2024", 14, 0),
    ("cohere", "command-r7b-12-2024", 5, 0),
    ("cohere", "command-a-03-2025", 12, 0),
    ("mistral", "mistral-large-2411", 14, 0),
    ("mistral", "mistral-small-latest", 6, 0),
    ("mistral", "codestral-2501", 7, 0),
    ("groq", "llama-3.1-8b-instant", 1, 0),
    ("groq", "llama-3.3-70b-versatile", 3, 0),
    ("groq", "openai/gpt-oss-120b", 2, 0),
    ("groq", "openai/gpt-oss-20b", 1, 0),
    ("together", "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo", 8, 0),
    ("together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", 4, 0),
    ("together", "acme/llama-3-finetune-v7", 9, 0),  # unpriced: a private fine-tune
    ("ollama", "llama3.1:8b", 25, 0),
    ("ollama", "qwen2.5-coder:7b", 22, 0),
)

# path, models (the first serves 80% when there are two), median prompt and completion tokens,
# share of requests the response cache may answer. Popularity follows the order (Zipf, 1/rank).
ENDPOINTS = (
    ("/chat", ("claude-sonnet-4-5-20250929", "gpt-4o-2024-08-06"), 2500, 450, 0.0),
    ("/summarise-ticket", ("claude-3-5-sonnet-20241022",), 14000, 600, 0.5),
    ("/classify-intent", ("gpt-4o-mini-2024-07-18",), 350, 8, 0.6),
    ("/search-rerank", ("command-r-08-2024",), 1800, 40, 0.4),
    ("/autocomplete", ("llama-3.1-8b-instant",), 400, 30, 0.3),
    ("/embed-documents", ("text-embedding-3-small",), 800, 0, 0.5),
    ("/extract-invoice", ("models/gemini-2.5-flash",), 3500, 400, 0.3),
    ("/translate", ("mistral-small-latest", "gemini-2.0-flash-001"), 600, 650, 0.5),
    ("/agent-proxy-claude", ("claude-sonnet-4-5-20250929",), 9000, 700, 0.0),
    ("/code-review", ("gpt-4.1-2025-04-14", "codestral-2501"), 8000, 900, 0.0),
    ("/support-reply", ("claude-haiku-4-5-20251001",), 3000, 350, 0.4),
    ("/moderate-content", ("gemini-2.0-flash-lite",), 500, 10, 0.7),
    ("/sql-assistant", ("codestral-2501",), 2500, 300, 0.3),
    ("/product-description", ("gpt-4o-mini-2024-07-18",), 400, 300, 0.6),
    ("/sentiment", ("us.anthropic.claude-3-5-haiku-20241022-v1:0",), 450, 5, 0.6),
    ("/local-dev-assistant", ("llama3.1:8b", "qwen2.5-coder:7b"), 1500, 400, 0.0),
    ("/meeting-notes", ("gpt-5-mini-2025-08-07",), 12000, 800, 0.1),
    ("/faq-bot", ("mistral-large-2411",), 1500, 200, 0.8),
    ("/email-draft", ("command-a-03-2025",), 900, 350, 0.1),
    ("/research-agent", ("gpt-5-2025-08-07", "o3-mini-2025-01-31"), 6000, 2500, 0.0),
    ("/analyse-contract", ("models/gemini-2.5-pro", "claude-sonnet-4-20250514"), 60000, 1500, 0.2),
    ("/keyword-extract", ("openai/gpt-oss-20b",), 700, 40, 0.5),
    ("/legal-draft-finetuned", ("acme/llama-3-finetune-v7",), 2000, 700, 0.0),
    ("/title-generator", ("llama-3.3-70b-versatile",), 300, 15, 0.5),
    ("/review-codebase", ("gpt-5.4-2026-03-05",), 90000, 3000, 0.0),
    ("/query-rewrite", ("gpt-4.1-mini-2025-04-14",), 250, 60, 0.6),
    ("/docs-qa", ("meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo",), 4000, 300, 0.5),
    ("/changelog-writer", ("claude-3-7-sonnet-20250219",), 5000, 600, 0.2),
    ("/pii-redact", ("gpt-4.1-nano-2025-04-14",), 1200, 1100, 0.0),
    ("/image-caption", ("models/gemini-2.5-flash",), 1300, 80, 0.4),
    ("/lead-scoring", ("command-r7b-12-2024",), 900, 20, 0.5),
    ("/spam-filter", ("llama-3.1-8b-instant",), 500, 3, 0.7),
    ("/report-builder", ("gpt-4o-2024-08-06",), 7000, 1200, 0.1),
    ("/onboarding-guide", ("claude-haiku-4-5-20251001",), 2000, 500, 0.7),
    ("/test-generator", ("gpt-5-mini-2025-08-07",), 3000, 1500, 0.0),
    ("/call-summary", ("gemini-2.0-flash-001",), 9000, 400, 0.1),
    ("/release-notes", ("mistral-large-2411",), 3000, 500, 0.3),
    ("/data-labeling", ("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",), 600, 20, 0.3),
    ("/legacy-gpt4o-bridge", ("gpt-4o-2024-05-13",), 1500, 300, 0.2),
    ("/batch-enrichment", ("openai/gpt-oss-120b", "command-r-plus-08-2024"), 1100, 200, 0.2),
)

# provider prompt caching: share of requests using it, share of their prompt it covers, share that write
PROMPT_CACHING = {"anthropic": (0.5, 0.7, 0.15), "openai": (0.35, 0.5, 0.0), "google": (0.25, 0.6, 0.0)}

HOURLY = np.array([0.30, 0.22, 0.18, 0.16, 0.17, 0.22, 0.35, 0.55, 0.85, 1.10, 1.25, 1.30,
                   1.25, 1.30, 1.35, 1.30, 1.20, 1.05, 0.90, 0.80, 0.70, 0.60, 0.50, 0.40])  # fmt: skip
HOURLY /= HOURLY.mean()
WEEKDAY = np.array([1.0, 1.05, 1.05, 1.0, 0.95, 0.55, 0.50])  # Monday first
WEEKDAY /= WEEKDAY.mean()
MONTHLY_GROWTH = 1.12
RESPONSE_CACHE_HIT_RATE = 0.10  # of the regular traffic
ERROR_RATE = 0.02  # of requests the provider was called for; 70% are 429, the rest 500
LONG_CONTEXT_SHARE = 0.05  # of requests to a model with a long-context tier
TOKENS = 300
ANONYMOUS_SHARE = 0.03
CACHE_KEYS_PER_ENDPOINT = 2000

LEAKED_TOKEN = ("tok_r8c2kq7wm4z9x3vbn5ha", "pg_live_ci7", "leaked-ci-token")
LEAK_SINCE = 10 * DAY
LEAK_DOLLARS_PER_DAY = 40.0
LEAK_ENDPOINT, LEAK_MODEL, LEAK_PRICE = "/chat", "claude-opus-4-1-20250805", (15.0, 75.0)  # $ per 1M in, out
LEAK_PROMPT, LEAK_COMPLETION = (3000, 5000), (600, 1000)  # uniform ranges
AGENT_PROXY, AGENT_PROXY_FACTOR = "/agent-proxy-claude", 3.0
STORM_ENDPOINT, STORM_RATE_PER_S, STORM_SPAN = "/classify-intent", 50.0, 20 * MINUTE
STORM_TOKEN = 2  # customer-C's token loops

FOLLOW_TICK_S = 1.0
MARKER = "cost_api_demo"
MARKER_DDL = (
    f"CREATE TABLE IF NOT EXISTS {MARKER} (created_at {{created_at}} NOT NULL, seed BIGINT NOT NULL, "
    "days INTEGER NOT NULL, requests_per_day INTEGER NOT NULL, tz TEXT NOT NULL)"
)  # created_at: the `now` the log was generated up to, as in request_log

MODEL_INDEX = {model: i for i, (_, model, _, _) in enumerate(MODELS)}
ENDPOINT_INDEX = {path: i for i, (path, *_) in enumerate(ENDPOINTS)}


class DemoError(Exception):
    pass


@dataclass(frozen=True)
class Params:
    """What a demo log is generated from; stored in the marker table so that --follow continues it."""

    now_ms: int
    seed: int
    days: int
    requests_per_day: int
    tz: str


class LogGenerator:
    """Request-log columns for any time span, the same distributions and stories for every span."""

    def __init__(self, params: Params) -> None:
        self.params = params
        try:
            self.zone = ZoneInfo(params.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DemoError(f"unknown time zone {params.tz!r}") from exc
        rng = np.random.default_rng(params.seed)
        self.tokens = _token_pool(rng)  # (id, prefix, name); a name of None: no api_tokens row
        self.token_ids = np.array([t[0] for t in self.tokens] + [None], object)  # last: anonymous
        popularity = 1 / np.arange(1, TOKENS + 1) ** 1.1
        self.token_p = np.append(popularity / popularity.sum() * (1 - ANONYMOUS_SHARE), ANONYMOUS_SHARE)
        self.storm_token = self.tokens[STORM_TOKEN][0]
        self.tokens.append(LEAKED_TOKEN)

        popularity = 1 / np.arange(1, len(ENDPOINTS) + 1)
        self.endpoint_p = popularity / popularity.sum()
        self.paths = np.array([e[0] for e in ENDPOINTS], object)
        self.primary = np.array([MODEL_INDEX[e[1][0]] for e in ENDPOINTS])
        self.secondary = np.array([MODEL_INDEX[e[1][-1]] for e in ENDPOINTS])
        self.prompt_median = np.array([e[2] for e in ENDPOINTS], float)
        self.completion_median = np.array([e[3] for e in ENDPOINTS], float)
        self.cacheable = np.array([e[4] for e in ENDPOINTS])
        self.stream_share = np.where(self.completion_median >= 300, 0.85, 0.05)
        self.hit_rate = RESPONSE_CACHE_HIT_RATE / float(self.endpoint_p @ self.cacheable)
        self.cache_keys = np.array(
            [hashlib.blake2b(f"{params.seed}:{e}:{k}".encode(), digest_size=16).hexdigest()
             for e in range(len(ENDPOINTS)) for k in range(CACHE_KEYS_PER_ENDPOINT)] + [None],
            object,
        )  # fmt: skip

        self.providers = np.array([m[0] for m in MODELS], object)
        self.models = np.array([m[1] for m in MODELS], object)
        self.ms_per_token = np.array([m[2] for m in MODELS], float)
        self.long_above = np.array([m[3] for m in MODELS])
        caching = np.array([PROMPT_CACHING.get(m[0], (0.0, 0.0, 0.0)) for m in MODELS])
        self.cache_use, self.cache_share, self.cache_write_share = caching.T

        now = params.now_ms
        self.rate_per_ms = params.requests_per_day / DAY
        self.growth_per_ms = math.log(MONTHLY_GROWTH) / (30 * DAY)
        self.mid_ms = now - params.days * DAY // 2  # growth is 1 mid-window: requests_per_day is the mean
        self.leak_from = now - LEAK_SINCE
        mean_leak_cost = (
            np.mean(LEAK_PROMPT) * LEAK_PRICE[0] + np.mean(LEAK_COMPLETION) * LEAK_PRICE[1]
        ) / 1e6
        self.leak_rate_per_ms = LEAK_DOLLARS_PER_DAY / mean_leak_cost / DAY
        local_now = datetime.fromtimestamp(now / 1000, self.zone)
        monday = datetime.combine(local_now.date() - timedelta(days=local_now.weekday()), datetime.min.time())
        self.monday_ms = _epoch_ms(monday.replace(tzinfo=self.zone))
        self.storm = (now - STORM_SPAN, now)

    def batch(self, t0: int, t1: int, rng: np.random.Generator) -> Batch:
        """Every request arriving in [t0, t1) (epoch ms), ordered by time."""
        ts = self._arrivals(t0, t1, rng)
        parts = [self._rows(rng, ts, rng.choice(len(ENDPOINTS), len(ts), p=self.endpoint_p))]

        agent = ENDPOINT_INDEX[AGENT_PROXY]
        if (start := max(t0, self.monday_ms)) < t1:
            extra = (AGENT_PROXY_FACTOR - 1) * self.endpoint_p[agent]
            ts = self._arrivals(start, t1, rng, scale=extra)
            parts.append(self._rows(rng, ts, np.full(len(ts), agent)))

        if (start := max(t0, self.leak_from)) < t1:
            ts = _uniform_arrivals(start, t1, self.leak_rate_per_ms, rng)
            n = len(ts)
            endpoint = np.full(n, ENDPOINT_INDEX[LEAK_ENDPOINT])
            leak = self._rows(rng, ts, endpoint, model=MODEL_INDEX[LEAK_MODEL], token=LEAKED_TOKEN[0],
                              cacheable=False, error_rate=0.0)  # fmt: skip
            leak["prompt_tokens"] = rng.integers(*LEAK_PROMPT, n, endpoint=True)
            leak["completion_tokens"] = rng.integers(*LEAK_COMPLETION, n, endpoint=True)
            leak["cache_read_tokens"] = leak["cache_write_tokens"] = np.zeros(n, np.int64)
            parts.append(leak)

        start, end = max(t0, self.storm[0]), min(t1, self.storm[1])
        if start < end:
            ts = _uniform_arrivals(start, end, STORM_RATE_PER_S / SECOND, rng)
            endpoint = np.full(len(ts), ENDPOINT_INDEX[STORM_ENDPOINT])
            storm = self._rows(rng, ts, endpoint, token=self.storm_token, cacheable=False, error_rate=0.15)
            parts.append(storm)

        merged = {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}
        order = np.argsort(merged["created_at"], kind="stable")
        return {c: values[order] for c, values in merged.items()}

    def _arrivals(self, t0: int, t1: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
        """Arrival times of the regular traffic: Poisson, with daily and weekly rhythm and growth."""
        starts = np.arange(t0 // MINUTE * MINUTE, t1, MINUTE, dtype=np.int64)
        lo, hi = np.maximum(starts, t0), np.minimum(starts + MINUTE, t1)
        local = starts + self._utc_offsets_ms(starts)
        rate = (
            self.rate_per_ms
            * scale
            * HOURLY[local // HOUR % 24]
            * WEEKDAY[(local // DAY + 3) % 7]  # 1970-01-01 was a Thursday
            * np.exp(self.growth_per_ms * (starts - self.mid_ms))
        )
        counts = rng.poisson(rate * (hi - lo))
        offsets = rng.random(int(counts.sum())) * np.repeat(hi - lo, counts)
        return np.repeat(lo, counts) + offsets.astype(np.int64)

    def _utc_offsets_ms(self, starts: np.ndarray) -> np.ndarray:
        hours, where = np.unique(starts // HOUR, return_inverse=True)
        offsets = [datetime.fromtimestamp(h * 3600, self.zone).utcoffset() for h in hours.tolist()]
        return np.array([o // timedelta(milliseconds=1) for o in offsets], dtype=np.int64)[where]

    def _rows(
        self,
        rng: np.random.Generator,
        ts: np.ndarray,
        endpoint: np.ndarray,
        *,
        model: int | None = None,
        token: str | None = None,
        cacheable: bool = True,
        error_rate: float = ERROR_RATE,
    ) -> Batch:
        n = len(ts)
        if model is None:
            models = np.where(rng.random(n) < 0.8, self.primary[endpoint], self.secondary[endpoint])
        else:
            models = np.full(n, model)
        if token is None:
            tokens = self.token_ids[rng.choice(len(self.token_p), n, p=self.token_p)]
        else:
            tokens = np.full(n, token, object)

        prompt = np.rint(self.prompt_median[endpoint] * rng.lognormal(0, 0.5, n)).astype(np.int64) + 1
        completion = np.rint(self.completion_median[endpoint] * rng.lognormal(0, 0.6, n)).astype(np.int64)
        cached = np.where(rng.random(n) < self.cache_use[models], prompt * self.cache_share[models], 0)
        cached = cached.astype(np.int64)
        writes = rng.random(n) < self.cache_write_share[models]
        cache_read, cache_write = np.where(writes, 0, cached), np.where(writes, cached, 0)
        prompt -= cached
        long = (self.long_above[models] > 0) & (rng.random(n) < LONG_CONTEXT_SHARE)
        prompt = np.where(long, self.long_above[models] + rng.integers(1000, 150_000, n), prompt)
        cache_read[long] = cache_write[long] = 0

        keyed = cacheable & (rng.random(n) < self.cacheable[endpoint])
        key_rank = (rng.zipf(1.2, n) - 1) % CACHE_KEYS_PER_ENDPOINT  # a few hot prompts, a long tail
        cache_key = np.where(keyed, endpoint * CACHE_KEYS_PER_ENDPOINT + key_rank, len(self.cache_keys) - 1)
        hit = keyed & (rng.random(n) < self.hit_rate) & ~long
        u = rng.random(n)
        status = np.where(hit | (u >= error_rate), 200, np.where(u < 0.7 * error_rate, 429, 500))
        served = ~hit & (status == 200)

        latency = (150 + prompt * 0.01 + completion * self.ms_per_token[models]) * rng.lognormal(0, 0.3, n)
        latency = np.where(hit, rng.integers(3, 40, n), latency)
        latency = np.where(status == 429, rng.integers(5, 60, n), latency)
        latency = np.where(status == 500, rng.integers(200, 30_000, n), latency)
        return {
            "created_at": ts,
            "request_id": np.array([f"req_{x:016x}" for x in rng.integers(0, 2**63, n).tolist()], object),
            "provider": self.providers[models],
            "model": self.models[models],
            "endpoint": self.paths[endpoint],
            "token_id": tokens,
            "status_code": status,
            "streamed": rng.random(n) < self.stream_share[endpoint],
            "prompt_tokens": np.where(served, prompt, 0),
            "completion_tokens": np.where(served, completion, 0),
            "cache_read_tokens": np.where(served, cache_read, 0),
            "cache_write_tokens": np.where(served, cache_write, 0),
            "cache_hit": hit,
            "prompt_tokens_avoided": np.where(hit, prompt, 0),
            "completion_tokens_avoided": np.where(hit, completion, 0),
            "latency_ms": latency.astype(np.int64),
            "cache_key": self.cache_keys[cache_key],
        }


def _uniform_arrivals(t0: int, t1: int, rate_per_ms: float, rng: np.random.Generator) -> np.ndarray:
    n = rng.poisson(rate_per_ms * (t1 - t0))
    return t0 + (rng.random(n) * (t1 - t0)).astype(np.int64)


def _token_pool(rng: np.random.Generator) -> list[tuple[str, str, str | None]]:
    """(id, prefix, name) of the regular tokens, most active first; a name of None: no api_tokens row."""
    alphabet = np.array(list("abcdefghijkmnpqrstuvwxyz23456789"))
    pool = []
    for i in range(TOKENS):
        label = _letters(i)
        token_id = "tok_" + "".join(rng.choice(alphabet, 20))
        named = i < 10 or rng.random() >= 0.1
        pool.append(
            (token_id, "pg_live_" + "".join(rng.choice(alphabet, 3)), f"customer-{label}" if named else None)
        )
    return pool


def _letters(i: int) -> str:
    """0 → A, 25 → Z, 26 → AA, …"""
    label = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        label = chr(ord("A") + r) + label
    return label


class SqliteStore:
    """What the demo reads and writes, on stdlib sqlite3 (WAL, executemany a day per transaction)."""

    def __init__(self, url: DatabaseURL) -> None:
        assert url.path is not None  # parse_database_url sets it for sqlite
        self.conn = sqlite3.connect(url.path)

    def tables(self) -> set[str]:
        rows = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'"
        )
        return {name for (name,) in rows}

    def create_schema(self) -> None:
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(
            (sql_dir() / "schema" / "sqlite.sql").read_text() + MARKER_DDL.format(created_at="INTEGER")
        )

    def params(self) -> Params | None:
        row = self.conn.execute(
            f"SELECT created_at, seed, days, requests_per_day, tz FROM {MARKER}"
        ).fetchone()
        return Params(*row) if row else None

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM request_log").fetchone()[0]

    def last_created_at(self) -> int | None:
        return self.conn.execute("SELECT max(created_at) FROM request_log").fetchone()[0]

    def reset(self, tokens: list[tuple[str, str, str | None]]) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM request_log")
            self.conn.execute("DELETE FROM api_tokens")
            self.conn.executemany("INSERT INTO api_tokens VALUES (?, ?, ?)", [t for t in tokens if t[2]])

    def insert(self, batch: Batch) -> None:
        rows = zip(*(batch[c].tolist() for c in COLUMNS), strict=True)
        sql = f"INSERT INTO request_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        with self.conn:
            self.conn.executemany(sql, rows)

    def mark(self, params: Params) -> None:
        with self.conn:
            self.conn.execute(f"INSERT INTO {MARKER} VALUES (?, ?, ?, ?, ?)", _astuple(params))

    def close(self) -> None:
        self.conn.close()

    abort = close


class PostgresStore:
    """The same operations over asyncpg (COPY a day per transaction), each run on a private event loop."""

    def __init__(self, url: DatabaseURL) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self._run(asyncpg.connect(url.dsn))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def tables(self) -> set[str]:
        rows = self._run(
            self.conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
        )
        return {r[0] for r in rows}

    def create_schema(self) -> None:
        self._run(
            self.conn.execute(
                (sql_dir() / "schema" / "postgres.sql").read_text()
                + MARKER_DDL.format(created_at="TIMESTAMPTZ")
            )
        )

    def params(self) -> Params | None:
        row = self._run(
            self.conn.fetchrow(f"SELECT created_at, seed, days, requests_per_day, tz FROM {MARKER}")
        )
        if row is None:
            return None
        return Params(
            _epoch_ms(row["created_at"]), row["seed"], row["days"], row["requests_per_day"], row["tz"]
        )

    def count(self) -> int:
        return self._run(self.conn.fetchval("SELECT count(*) FROM request_log"))

    def last_created_at(self) -> int | None:
        last = self._run(self.conn.fetchval("SELECT max(created_at) FROM request_log"))
        return None if last is None else _epoch_ms(last)

    def reset(self, tokens: list[tuple[str, str, str | None]]) -> None:
        async def reset() -> None:
            async with self.conn.transaction():
                await self.conn.execute("TRUNCATE request_log, api_tokens RESTART IDENTITY")
                await self.conn.copy_records_to_table("api_tokens", records=[t for t in tokens if t[2]])

        self._run(reset())

    def insert(self, batch: Batch) -> None:
        created_at = [EPOCH + timedelta(milliseconds=ms) for ms in batch["created_at"].tolist()]
        rows = zip(created_at, *(batch[c].tolist() for c in COLUMNS[1:]), strict=True)

        async def insert() -> None:
            async with self.conn.transaction():
                await self.conn.copy_records_to_table("request_log", records=rows, columns=COLUMNS)

        self._run(insert())

    def mark(self, params: Params) -> None:
        values = (EPOCH + timedelta(milliseconds=params.now_ms), *_astuple(params)[1:])
        self._run(self.conn.execute(f"INSERT INTO {MARKER} VALUES ($1, $2, $3, $4, $5)", *values))

    def close(self) -> None:
        self._run(self.conn.close())
        self.loop.close()

    def abort(self) -> None:
        """Drop the connection without waiting: an interrupted COPY leaves nothing to say goodbye to."""
        self.conn.terminate()
        self.loop.close()


Store = SqliteStore | PostgresStore


def _epoch_ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


def _astuple(params: Params) -> tuple[int, int, int, int, str]:
    return (params.now_ms, params.seed, params.days, params.requests_per_day, params.tz)


def run_demo(
    db_url: str,
    *,
    days: int = 60,
    requests_per_day: int = 5000,
    seed: int = 1,
    follow: bool = False,
    now: datetime | None = None,
    tz: str = "UTC",
    progress: bool = True,
) -> int:
    """Write a demo log of `days` days up to `now` into a database this creates; return the rows written.

    A database it created that already holds a log is left alone, or with `follow` continued with the
    parameters stored at its generation: rows are appended in real time (from the end of the log,
    catching up first) until SIGINT (Ctrl-C) or SIGTERM. `progress` shows a progress bar and messages
    on stderr. A naive `now` is taken as UTC.
    """
    if days < 1 or requests_per_day < 1:
        raise DemoError("days and requests_per_day must be at least 1")
    url = parse_database_url(db_url)
    store: Store = SqliteStore(url) if url.dialect == "sqlite" else PostgresStore(url)
    try:
        tables = store.tables()
        if tables and MARKER not in tables:
            raise DemoError(f"{url} was not created by cost-api demo; refusing to write into it")
        store.create_schema()
        params = store.params()
        written = 0
        if params is None:  # a new database, or a generation that was interrupted: (re)generate
            now = now or datetime.now(UTC)
            now_ms = _epoch_ms(now if now.tzinfo else now.replace(tzinfo=UTC))
            params = Params(now_ms, seed, days, requests_per_day, tz)
            generator = LogGenerator(params)
            store.reset(generator.tokens)
            rng = np.random.default_rng([seed, 1])
            start = now_ms - days * DAY
            written = sum(_write_span(store, generator, start, now_ms, rng, progress=progress))
            store.mark(params)
        elif not follow:
            _say(progress, f"{url} already holds a demo log of {store.count():,} rows; nothing written")
            return 0
        if follow:
            _say(progress, f"following: appending live rows to {url} (Ctrl-C to stop)")
            written += _follow(store, LogGenerator(params), progress=progress)
    except BaseException:
        store.abort()
        raise
    store.close()
    return written


def _follow(store: Store, generator: LogGenerator, *, progress: bool) -> int:
    """Append the rows of each passing second until SIGINT or SIGTERM; return the rows written."""
    params = generator.params
    t0 = max(params.now_ms, (store.last_created_at() or 0) + 1)
    rng = np.random.default_rng([params.seed, 2, t0])
    written = 0
    with _stop_on_signals() as stopped:
        while not stopped():
            t1 = int(time.time() * 1000)
            if t1 > t0:
                catching_up = t1 - t0 > HOUR
                for rows in _write_span(store, generator, t0, t1, rng, progress=progress and catching_up):
                    written += rows
                    if stopped():
                        return written
                t0 = t1
            time.sleep(FOLLOW_TICK_S)
    return written


@contextmanager
def _stop_on_signals() -> Iterator[Callable[[], bool]]:
    """SIGINT and SIGTERM set a flag instead of interrupting: a batch is never cut off half-written."""
    received: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(s, lambda signum, _frame: received.append(signum)) for s in signals]
    try:
        yield lambda: bool(received)
    finally:
        for s, handler in zip(signals, previous, strict=True):
            signal.signal(s, handler)


def _write_span(
    store: Store, generator: LogGenerator, t0: int, t1: int, rng: np.random.Generator, *, progress: bool
) -> Iterator[int]:
    """Generate and insert [t0, t1), a day per transaction; yield the rows of each."""
    starts = range(t0, t1, DAY)
    written = 0
    with tqdm(total=len(starts), unit="day", desc="demo", file=sys.stderr, disable=not progress) as bar:
        for start in starts:
            batch = generator.batch(start, min(start + DAY, t1), rng)
            store.insert(batch)
            rows = len(batch["created_at"])
            written += rows
            bar.set_postfix_str(f"{written:,} rows", refresh=False)
            bar.update()
            yield rows


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"cost-api demo: {message}", file=sys.stderr)
