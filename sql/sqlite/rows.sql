-- name: rows_between
-- Single rows of [:start, :end) (a closed hour a window only partly covers), each priced as its own
-- group: created_at ms, provider, model, endpoint, size class, cache hit, 1, error, token sums,
-- then token_id and id, up to id :max_id (NULL: all). The thresholds :t1…:t8 as in `groups`.
SELECT created_at, provider, model, endpoint,
       (inp > :t1) + (inp > :t2) + (inp > :t3) + (inp > :t4)
         + (inp > :t5) + (inp > :t6) + (inp > :t7) + (inp > :t8),
       cache_hit, 1, status_code >= 400,
       prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
       prompt_tokens_avoided, completion_tokens_avoided, token_id, id
FROM (
    SELECT *, CASE WHEN cache_hit THEN prompt_tokens_avoided
                   ELSE prompt_tokens + cache_read_tokens + cache_write_tokens END AS inp
    FROM request_log
    WHERE created_at >= :start AND created_at < :end AND (:max_id IS NULL OR id <= :max_id)
);

-- name: rows_after
-- The rows committed since the last read: ids above :after, and the ids in :holes (ids below :after
-- not seen yet, whose transactions may still commit), the first :limit of them by id. Same columns as
-- rows_between.
SELECT created_at, provider, model, endpoint,
       (inp > :t1) + (inp > :t2) + (inp > :t3) + (inp > :t4)
         + (inp > :t5) + (inp > :t6) + (inp > :t7) + (inp > :t8),
       cache_hit, 1, status_code >= 400,
       prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
       prompt_tokens_avoided, completion_tokens_avoided, token_id, id
FROM (
    SELECT *, CASE WHEN cache_hit THEN prompt_tokens_avoided
                   ELSE prompt_tokens + cache_read_tokens + cache_write_tokens END AS inp
    FROM (  -- two lookups by primary key (an OR of both would scan the table)
        SELECT * FROM request_log WHERE id > :after
        UNION ALL
        SELECT * FROM request_log WHERE id IN (SELECT value FROM json_each(:holes))
    )
)
ORDER BY id
LIMIT :limit;

-- name: last_id
-- The highest id in the log: where incremental reads of the open hours start.
SELECT max(id) FROM request_log;
