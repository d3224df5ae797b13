-- The request-log contract (docs/request-log.md), ClickHouse flavour (a server, or chDB in-process).
-- created_at is UTC with milliseconds. The last three columns are optional, as in the other dialects.
-- `id` is the gateway's own sequence number when it has one (ClickHouse has no identity column): the
-- audit view's cursor breaks ties of one millisecond with it.
-- Partitioned by month (a retention job drops a partition: `ALTER TABLE … DROP PARTITION 202401`),
-- sorted by created_at alone (docs/scale-out.md#the-sorting-key): every query reads a range of it,
-- which the sparse index prunes to the granules of that range, and the audit view reads it newest
-- first in that order. A correction (ALTER TABLE … UPDATE) may change any other column, which a key
-- column cannot (the provider and model of a mislabelled row, say).
CREATE TABLE IF NOT EXISTS request_log (
    id                        UInt64,
    created_at                DateTime64(3, 'UTC'),
    request_id                Nullable(String),
    provider                  LowCardinality(String),
    model                     LowCardinality(String),
    endpoint                  LowCardinality(String),
    token_id                  Nullable(String),
    status_code               Nullable(Int32),
    streamed                  Nullable(Bool),
    prompt_tokens             Int64 DEFAULT 0,
    completion_tokens         Int64 DEFAULT 0,
    cache_read_tokens         Int64 DEFAULT 0,
    cache_write_tokens        Int64 DEFAULT 0,
    cache_hit                 Bool DEFAULT false,
    prompt_tokens_avoided     Int64 DEFAULT 0,
    completion_tokens_avoided Int64 DEFAULT 0,
    latency_ms                Nullable(Int32),
    cache_key                 Nullable(String),
    cache_write_1h_tokens     Int64 DEFAULT 0,
    service_tier              Nullable(String),
    usage_exact               Nullable(Bool)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY created_at;

CREATE TABLE IF NOT EXISTS api_tokens (
    id     String,
    prefix String,
    name   Nullable(String),
    tags   Nullable(String)  -- optional: a JSON object of strings, e.g. {"team": "search"} (docs/tags.md)
)
ENGINE = MergeTree
ORDER BY id;
