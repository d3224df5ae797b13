"""The rows of a demo log: `LogGenerator` gives the request-log columns of any time span, drawn from the
`Params` a log is generated from, with the same distributions and stories for every span."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from cost_api.tools.demo.catalogue import (
    AGENT_PROXY,
    AGENT_PROXY_FACTOR,
    ANONYMOUS_SHARE,
    CACHE_KEYS_PER_ENDPOINT,
    COLUMNS,
    DAY,
    ENDPOINT_INDEX,
    ENDPOINTS,
    ERROR_RATE,
    HOUR,
    HOURLY,
    LEAK_COMPLETION,
    LEAK_DOLLARS_PER_DAY,
    LEAK_ENDPOINT,
    LEAK_MODEL,
    LEAK_PRICE,
    LEAK_PROMPT,
    LEAK_SINCE,
    LEAKED_TOKEN,
    LONG_CONTEXT_SHARE,
    MINUTE,
    MODEL_INDEX,
    MODELS,
    MONTHLY_GROWTH,
    PROMPT_CACHING,
    RESPONSE_CACHE_HIT_RATE,
    SECOND,
    STORM_ENDPOINT,
    STORM_RATE_PER_S,
    STORM_SPAN,
    STORM_TOKEN,
    TEAMS,
    TOKENS,
    WEEKDAY,
    Batch,
    epoch_ms,
    token_pool,
    token_tags,
)


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
    tokens: int = TOKENS  # regular tokens; not kept in the marker: a followed log has the default
    teams: int = TEAMS  # the teams the tokens' tags spread over; not kept either


class LogGenerator:
    """Request-log columns for any time span, the same distributions and stories for every span."""

    def __init__(self, params: Params) -> None:
        self.params = params
        try:
            self.zone = ZoneInfo(params.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DemoError(f"unknown time zone {params.tz!r}") from exc
        rng = np.random.default_rng(params.seed)
        self.tokens = token_pool(rng, params.tokens)  # (id, prefix, name); a name of None: no api_tokens row
        self.token_ids = np.array([t[0] for t in self.tokens] + [None], object)  # last: anonymous
        popularity = 1 / np.arange(1, params.tokens + 1) ** 1.1
        self.token_p = np.append(popularity / popularity.sum() * (1 - ANONYMOUS_SHARE), ANONYMOUS_SHARE)
        self.storm_token = self.tokens[STORM_TOKEN][0]
        self.tokens.append(LEAKED_TOKEN)
        self.tags = token_tags(self.tokens, params.teams, params.seed)  # token id → api_tokens.tags

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
        mean_leak_cost = (np.mean(LEAK_PROMPT) * LEAK_PRICE[0] + np.mean(LEAK_COMPLETION) * LEAK_PRICE[1]) / 1e6
        self.leak_rate_per_ms = float(LEAK_DOLLARS_PER_DAY / mean_leak_cost / DAY)
        local_now = datetime.fromtimestamp(now / 1000, self.zone)
        monday = datetime.combine(local_now.date() - timedelta(days=local_now.weekday()), datetime.min.time())
        self.monday_ms = epoch_ms(monday.replace(tzinfo=self.zone))
        self.storm = (now - STORM_SPAN, now)

    def batch(self, t0: int, t1: int, rng: np.random.Generator) -> Batch:
        """Every request arriving in [t0, t1) (epoch ms), ordered by time."""
        ts = self._arrivals(t0, t1, rng)
        parts = [self._rows(rng, ts, rng.choice(len(ENDPOINTS), len(ts), p=self.endpoint_p))]
        parts += self.stories(t0, t1, rng, parts[0])
        merged = {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}
        order = np.argsort(merged["created_at"], kind="stable")
        return {c: values[order] for c, values in merged.items()}

    def stories(self, t0: int, t1: int, rng: np.random.Generator, regular: Batch) -> list[Batch]:
        """The rows the stories add to [t0, t1) (a subclass may also change the `regular` rows): the
        demo's surging endpoint, leaked token and retry storm."""
        parts = []
        agent = ENDPOINT_INDEX[AGENT_PROXY]
        if (start := max(t0, self.monday_ms)) < t1:
            extra = (AGENT_PROXY_FACTOR - 1) * self.endpoint_p[agent]
            ts = self._arrivals(start, t1, rng, scale=extra)
            parts.append(self._rows(rng, ts, np.full(len(ts), agent)))

        if (start := max(t0, self.leak_from)) < t1:
            ts = uniform_arrivals(start, t1, self.leak_rate_per_ms, rng)
            parts.append(self.leak_rows(rng, ts, LEAK_ENDPOINT, LEAKED_TOKEN[0]))

        start, end = max(t0, self.storm[0]), min(t1, self.storm[1])
        if start < end:
            ts = uniform_arrivals(start, end, STORM_RATE_PER_S / SECOND, rng)
            endpoint = np.full(len(ts), ENDPOINT_INDEX[STORM_ENDPOINT])
            storm = self._rows(rng, ts, endpoint, token=self.storm_token, cacheable=False, error_rate=0.15)
            parts.append(storm)
        return parts

    def leak_rows(self, rng: np.random.Generator, ts: np.ndarray, path: str, token: str) -> Batch:
        """A leaked token's calls at `ts`: the leak model (claude-opus-4-1), never cached, no errors."""
        n = len(ts)
        endpoint = np.full(n, ENDPOINT_INDEX[path])
        leak = self._rows(
            rng, ts, endpoint, model=MODEL_INDEX[LEAK_MODEL], token=token, cacheable=False, error_rate=0.0
        )
        leak["prompt_tokens"] = rng.integers(*LEAK_PROMPT, n, endpoint=True)
        leak["completion_tokens"] = rng.integers(*LEAK_COMPLETION, n, endpoint=True)
        leak["cache_read_tokens"] = leak["cache_write_tokens"] = np.zeros(n, np.int64)
        return leak

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
            * self.rate_factor(starts)
        )
        counts = rng.poisson(rate * (hi - lo))
        offsets = rng.random(int(counts.sum())) * np.repeat(hi - lo, counts)
        arrivals: np.ndarray = np.repeat(lo, counts) + offsets.astype(np.int64)
        return arrivals

    def rate_factor(self, starts: np.ndarray) -> np.ndarray | float:
        """A multiplier of the traffic's rate at each minute start (a subclass's lull): none here."""
        return 1.0

    def _utc_offsets_ms(self, starts: np.ndarray) -> np.ndarray:
        hours, where = np.unique(starts // HOUR, return_inverse=True)
        offsets = [_utc_offset(datetime.fromtimestamp(h * 3600, self.zone)) for h in hours.tolist()]
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


def _utc_offset(moment: datetime) -> timedelta:
    offset = moment.utcoffset()
    assert offset is not None  # an aware datetime (the zone's) always has one
    return offset


def uniform_arrivals(t0: int, t1: int, rate_per_ms: float, rng: np.random.Generator) -> np.ndarray:
    n = rng.poisson(rate_per_ms * (t1 - t0))
    return t0 + (rng.random(n) * (t1 - t0)).astype(np.int64)
