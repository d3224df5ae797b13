"""What the demo log is made of: its columns, models, endpoints and API tokens, the rhythm of its traffic,
and the numbers of its three stories. Data, and the few helpers that derive from it; no database here."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np

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
Token = tuple[str, str, str | None]  # (id, prefix, name); a name of None: no api_tokens row

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
# api_tokens.tags (docs/tags.md): a team per token (of `teams`, the first named here, then team-11, …)
# and an env; a few tokens untagged. The leaked token is the platform team's CI token.
TEAMS = 6
TEAM_NAMES = ("search", "ads", "support", "growth", "platform", "data", "mobile", "billing", "security", "research")
ENVS, ENV_P = ("prod", "staging", "ci"), (0.8, 0.15, 0.05)
UNTAGGED_SHARE = 0.05
LEAKED_TAGS = {"team": "platform", "env": "ci"}
CACHE_KEYS_PER_ENDPOINT = 2000

LEAKED_TOKEN = ("tok_r8c2kq7wm4z9x3vbn5ha", "pg_live_ci7", "leaked-ci-token")
LEAK_SINCE = 10 * DAY
LEAK_DOLLARS_PER_DAY = 40.0
LEAK_ENDPOINT, LEAK_MODEL, LEAK_PRICE = "/chat", "claude-opus-4-1-20250805", (15.0, 75.0)  # $ per 1M in, out
LEAK_PROMPT, LEAK_COMPLETION = (3000, 5000), (600, 1000)  # uniform ranges
AGENT_PROXY, AGENT_PROXY_FACTOR = "/agent-proxy-claude", 3.0
STORM_ENDPOINT, STORM_RATE_PER_S, STORM_SPAN = "/classify-intent", 50.0, 20 * MINUTE
STORM_TOKEN = 2  # customer-C's token loops

MODEL_INDEX = {model: i for i, (_, model, _, _) in enumerate(MODELS)}
ENDPOINT_INDEX = {path: i for i, (path, *_) in enumerate(ENDPOINTS)}


def token_pool(rng: np.random.Generator, count: int = TOKENS) -> list[Token]:
    """(id, prefix, name) of `count` regular tokens, most active first; a name of None: no api_tokens row."""
    alphabet = np.array(list("abcdefghijkmnpqrstuvwxyz23456789"))
    pool = []
    for i in range(count):
        label = _letters(i)
        token_id = "tok_" + "".join(rng.choice(alphabet, 20))
        named = i < 10 or rng.random() >= 0.1
        pool.append((token_id, "pg_live_" + "".join(rng.choice(alphabet, 3)), f"customer-{label}" if named else None))
    return pool


def team_name(i: int) -> str:
    return TEAM_NAMES[i] if i < len(TEAM_NAMES) else f"team-{i + 1:02d}"


def token_tags(tokens: list[Token], teams: int, seed: int) -> dict[str, str]:
    """The `tags` column of each token that has an api_tokens row: a JSON object with a team (of
    `teams`) and an env, drawn from `seed` alone (the token pool's draws stay as they were); a few
    tokens have none."""
    rng = np.random.default_rng([seed, 3])
    named = [t for t in tokens if t[2]]
    team = rng.integers(0, max(teams, 1), len(named))
    env = rng.choice(len(ENVS), len(named), p=ENV_P)
    untagged = rng.random(len(named)) < UNTAGGED_SHARE
    tags = {}
    for (token_id, _, _), t, e, skip in zip(named, team.tolist(), env.tolist(), untagged.tolist(), strict=True):
        if token_id == LEAKED_TOKEN[0]:
            tags[token_id] = json.dumps(LEAKED_TAGS)
        elif not skip:
            tags[token_id] = json.dumps({"team": team_name(t), "env": ENVS[e]})
    return tags


def _letters(i: int) -> str:
    """0 → A, 25 → Z, 26 → AA, …"""
    label = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        label = chr(ord("A") + r) + label
    return label


def epoch_ms(at: datetime) -> int:
    """Milliseconds since 1970-01-01 UTC, as request_log.created_at holds them on SQLite."""
    return (at - EPOCH) // timedelta(milliseconds=1)
