-- name: rows_between
-- Single rows of [:start, :end) (a closed hour a window only partly covers), each priced as its own
-- group, under the names of `groups`' columns: created_at ms (slot), provider, model, endpoint (key),
-- size class, cache hit, 1 (requests), error, token sums, then token_id, id and the row's quality:
-- 0 a good row, 1 a negative token count (any of the six columns, or cache_write_1h_tokens below 0
-- or above cache_write_tokens), 2 no provider or model (NULL or blank): such rows are left out of
-- every figure and counted in `data_quality` (docs/request-log.md). After quality, as in `groups`:
-- the service tier, the 1-hour cache writes, and 1 for a row with estimated usage. Ids up to :max_id
-- (NULL: all). The thresholds :t1…:t8 as in `groups`.
SELECT created_at AS slot, provider, model, endpoint AS key,
       (inp > :t1) + (inp > :t2) + (inp > :t3) + (inp > :t4)
         + (inp > :t5) + (inp > :t6) + (inp > :t7) + (inp > :t8) AS size_class,
       cache_hit, 1 AS requests, status_code >= 400 AS errors,
       prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
       prompt_tokens_avoided, completion_tokens_avoided, token_id, id, quality, tier,
       write_1h AS cache_write_1h_tokens, estimated AS estimated_requests
FROM (
    SELECT *, CASE WHEN cache_hit THEN prompt_tokens_avoided
                   ELSE prompt_tokens + cache_read_tokens + cache_write_tokens END AS inp,
              CASE WHEN provider IS NULL OR trim(provider) = '' OR model IS NULL OR trim(model) = '' THEN 2
                   WHEN prompt_tokens < 0 OR completion_tokens < 0 OR cache_read_tokens < 0
                        OR cache_write_tokens < 0 OR prompt_tokens_avoided < 0
                        OR completion_tokens_avoided < 0
                        OR cache_write_1h_tokens < 0 OR cache_write_1h_tokens > cache_write_tokens THEN 1
                   ELSE 0 END AS quality,
              CASE WHEN lower(trim(service_tier)) IN ('', 'standard', 'default') THEN NULL
                   ELSE lower(trim(service_tier)) END AS tier,
              coalesce(cache_write_1h_tokens, 0) AS write_1h,
              CASE WHEN usage_exact IS FALSE THEN 1 ELSE 0 END AS estimated
    FROM {request_log}
    WHERE created_at >= :start AND created_at < :end AND (:max_id IS NULL OR id <= :max_id)
);

-- name: rows_after
-- The rows committed since the last read: ids above :after, and the ids in the ranges :hole_from[i] to
-- :hole_to[i] (ids below :after not seen yet, whose transactions may still commit), the first :limit
-- of them by id. Each part is limited on its own, so a page reads at most 2 × :limit rows. Same
-- columns as rows_between.
SELECT created_at AS slot, provider, model, endpoint AS key,
       (inp > :t1) + (inp > :t2) + (inp > :t3) + (inp > :t4)
         + (inp > :t5) + (inp > :t6) + (inp > :t7) + (inp > :t8) AS size_class,
       cache_hit, 1 AS requests, status_code >= 400 AS errors,
       prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
       prompt_tokens_avoided, completion_tokens_avoided, token_id, id, quality, tier,
       write_1h AS cache_write_1h_tokens, estimated AS estimated_requests
FROM (
    SELECT *, CASE WHEN cache_hit THEN prompt_tokens_avoided
                   ELSE prompt_tokens + cache_read_tokens + cache_write_tokens END AS inp,
              CASE WHEN provider IS NULL OR trim(provider) = '' OR model IS NULL OR trim(model) = '' THEN 2
                   WHEN prompt_tokens < 0 OR completion_tokens < 0 OR cache_read_tokens < 0
                        OR cache_write_tokens < 0 OR prompt_tokens_avoided < 0
                        OR completion_tokens_avoided < 0
                        OR cache_write_1h_tokens < 0 OR cache_write_1h_tokens > cache_write_tokens THEN 1
                   ELSE 0 END AS quality,
              CASE WHEN lower(trim(service_tier)) IN ('', 'standard', 'default') THEN NULL
                   ELSE lower(trim(service_tier)) END AS tier,
              coalesce(cache_write_1h_tokens, 0) AS write_1h,
              CASE WHEN usage_exact IS FALSE THEN 1 ELSE 0 END AS estimated
    FROM (  -- lookups by primary key (an OR of both would scan the table)
        SELECT * FROM (SELECT * FROM {request_log} WHERE id > :after ORDER BY id LIMIT :limit)
        UNION ALL
        SELECT * FROM (  -- CROSS JOIN keeps this order: a range lookup per hole, never a table scan
            SELECT request_log.* FROM json_each(:hole_from) AS f
            CROSS JOIN json_each(:hole_to) AS t
            CROSS JOIN {request_log}
            WHERE t.key = f.key AND request_log.id BETWEEN f.value AND t.value
            ORDER BY request_log.id LIMIT :limit
        )
    )
)
ORDER BY id
LIMIT :limit;

-- name: last_id
-- The highest id in the log: where incremental reads of the open hours start.
SELECT max(id) AS max_id FROM request_log;
