-- name: log_columns
-- The request log's column names (a table or a VIEW): which of the optional columns
-- (cache_write_1h_tokens, service_tier, usage_exact) the queries can read (queries.LogColumns).
SELECT name FROM pragma_table_info('request_log');
