-- name: schema_check
-- Reads no row but names every column of the request-log contract: fails unless all can be read
-- (a privilege missing, say; `log_columns` names a column missing or of the wrong type).
SELECT id, created_at, request_id, provider, model, endpoint, token_id, status_code, streamed,
       prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, cache_hit,
       prompt_tokens_avoided, completion_tokens_avoided, latency_ms, cache_key
FROM request_log
LIMIT 0;

-- name: log_columns
-- The request log's columns and their types (a domain's: its base type), as the queries see it: the
-- first request_log on the search path, table or view; no rows when there is none.
SELECT a.attname::text AS name, coalesce(nullif(t.typbasetype, 0), a.atttypid)::regtype::text AS type
FROM pg_attribute AS a JOIN pg_type AS t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass('request_log') AND a.attnum > 0 AND NOT a.attisdropped;

-- name: recovery
-- Whether the database is a hot standby replaying a primary (in recovery), and when the last
-- transaction it replayed committed there (epoch ms; NULL on a primary, or before the first).
SELECT pg_is_in_recovery() AS in_recovery,
       floor(extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000)::bigint AS replayed_at_ms;

-- name: log_bounds
-- The oldest and the newest row's created_at in epoch milliseconds (NULLs on an empty log).
SELECT floor(extract(epoch FROM min(created_at)) * 1000)::bigint AS oldest,
       floor(extract(epoch FROM max(created_at)) * 1000)::bigint AS newest
FROM request_log;

-- name: token_labels
-- Every labelled token: id, displayable prefix and name.
SELECT id, prefix, name FROM api_tokens;

-- name: token_tags
-- The optional `tags` column of every token: a JSON object of strings, or NULL (docs/tags.md).
SELECT id, tags FROM api_tokens;
