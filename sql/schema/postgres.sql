-- The request-log contract (docs/request-log.md), Postgres flavour.
-- The last three columns are optional: a log without them is read as before (docs/request-log.md).
CREATE TABLE IF NOT EXISTS request_log (
    id                        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at                TIMESTAMPTZ NOT NULL,
    request_id                TEXT,
    provider                  TEXT    NOT NULL,
    model                     TEXT    NOT NULL,
    endpoint                  TEXT    NOT NULL,
    token_id                  TEXT,
    status_code               INTEGER,
    streamed                  BOOLEAN,
    prompt_tokens             INTEGER NOT NULL DEFAULT 0,
    completion_tokens         INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens         INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens        INTEGER NOT NULL DEFAULT 0,
    cache_hit                 BOOLEAN NOT NULL DEFAULT false,
    prompt_tokens_avoided     INTEGER NOT NULL DEFAULT 0,
    completion_tokens_avoided INTEGER NOT NULL DEFAULT 0,
    latency_ms                INTEGER,
    cache_key                 TEXT,
    cache_write_1h_tokens     INTEGER NOT NULL DEFAULT 0,
    service_tier              TEXT,
    usage_exact               BOOLEAN
);

CREATE INDEX IF NOT EXISTS request_log_created_at ON request_log (created_at);

CREATE TABLE IF NOT EXISTS api_tokens (
    id     TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    name   TEXT,
    tags   JSONB  -- optional: a JSON object of strings, e.g. {"team": "search"} (docs/tags.md)
);
