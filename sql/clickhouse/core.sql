-- name: schema_check
-- Reads no row but names every column of the request-log contract: fails unless all can be read
-- (a grant missing, say; `log_columns` names a column missing or of the wrong type). `id` is
-- optional on ClickHouse (docs/request-log.md): the WITH alias stands in for it where the table has
-- none (every query runs with prefer_column_name_to_alias, so a column `id` wins where there is one).
WITH toInt64(0) AS id
SELECT id, created_at, request_id, provider, model, endpoint, token_id, status_code, streamed,
       prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, cache_hit,
       prompt_tokens_avoided, completion_tokens_avoided, latency_ms, cache_key
FROM request_log
LIMIT 0;

-- name: log_columns
-- The request log's columns and their types, as the queries see it: the request_log of the current
-- database, table or view; no rows when there is none.
SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'request_log';

-- name: recovery
-- A ClickHouse replica is never a hot standby of a primary: never in recovery, nothing replayed.
SELECT 0 AS in_recovery, CAST(NULL AS Nullable(Int64)) AS replayed_at_ms;

-- name: log_bounds
-- The oldest and the newest row's created_at in epoch milliseconds (NULLs on an empty log). Plain
-- min, max and count: answered from the parts' own min/max of the partition key's column, without
-- reading the rows (minOrNull would read them: 870 ms against 54 ms on 10M rows).
SELECT if(count() = 0, NULL, toUnixTimestamp64Milli(min(created_at))) AS oldest,
       if(count() = 0, NULL, toUnixTimestamp64Milli(max(created_at))) AS newest
FROM request_log;

-- name: token_labels
-- Every labelled token: id, displayable prefix and name.
SELECT id, prefix, name FROM api_tokens;

-- name: token_tags
-- The optional `tags` column of every token: a JSON object of strings, or NULL (docs/tags.md).
SELECT id, tags FROM api_tokens;
