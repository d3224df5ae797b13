-- name: schema_check
-- Reads no row but names every column of the request-log contract: fails unless all can be read
-- (a privilege missing, say; `log_columns` names a column missing or of the wrong type).
SELECT id, created_at, request_id, provider, model, endpoint, token_id, status_code, streamed,
       prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, cache_hit,
       prompt_tokens_avoided, completion_tokens_avoided, latency_ms, cache_key
FROM request_log
LIMIT 0;

-- name: log_columns
-- The request log's columns and their declared types (a view's computed column has none); no rows
-- when there is no request_log table or view.
SELECT name, type FROM pragma_table_info('request_log');

-- name: recovery
-- Whether the database is a hot standby replaying a primary, and when the last transaction it
-- replayed committed there (epoch ms): a SQLite file never is (the same shape as on Postgres).
SELECT 0 AS in_recovery, NULL AS replayed_at_ms;

-- name: log_bounds
-- The oldest and the newest row's created_at in epoch milliseconds (NULLs on an empty log).
-- (two subqueries: SQLite answers min() and max() from the index only one at a time)
SELECT (SELECT min(created_at) FROM request_log) AS oldest,
       (SELECT max(created_at) FROM request_log) AS newest;

-- name: token_labels
-- Every labelled token: id, displayable prefix and name.
SELECT id, prefix, name FROM api_tokens;

-- name: token_tags
-- The optional `tags` column of every token: a JSON object of strings, or NULL (docs/tags.md).
SELECT id, tags FROM api_tokens;
