-- name: log_columns
-- The request log's column names (a table or a VIEW; the one `request_log` resolves to on the
-- search_path): which of the optional columns (cache_write_1h_tokens, service_tier, usage_exact) the
-- queries can read (queries.LogColumns).
SELECT column_name::text
FROM information_schema.columns
WHERE table_name = 'request_log'
  AND table_schema = (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.oid = to_regclass('request_log'));
