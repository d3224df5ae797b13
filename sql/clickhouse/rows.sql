-- name: rows_between
-- Single rows of [:start, :end) (a closed hour a window only partly covers), each priced as its own
-- group, under the names of `groups`' columns: created_at ms (slot), provider, model, endpoint (key),
-- size class, cache hit, 1 (requests), error, token sums, then token_id, id and the row's quality:
-- 0 a good row, 1 a negative token count (any of the six columns, or cache_write_1h_tokens below 0
-- or above cache_write_tokens), 2 no provider or model (NULL or blank): such rows are left out of
-- every figure and counted in `data_quality` (docs/request-log.md). After quality, as in `groups`:
-- the service tier, the 1-hour cache writes, and 1 for a row with estimated usage. Ids up to :max_id
-- (NULL: all). The thresholds :t1…:t8 as in `groups`.
SELECT toUnixTimestamp64Milli(created_at) AS slot, provider, model, endpoint AS key,
       (inp > {t1:Int64}) + (inp > {t2:Int64}) + (inp > {t3:Int64}) + (inp > {t4:Int64})
         + (inp > {t5:Int64}) + (inp > {t6:Int64}) + (inp > {t7:Int64}) + (inp > {t8:Int64}) AS size_class,
       cache_hit, 1 AS requests, toUInt8(status_code >= 400) AS errors,
       prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
       prompt_tokens_avoided, completion_tokens_avoided, token_id, id, quality, tier,
       write_1h AS cache_write_1h_tokens, estimated AS estimated_requests
FROM (
    SELECT *, if(cache_hit, toInt64(prompt_tokens_avoided),
                 toInt64(prompt_tokens) + cache_read_tokens + cache_write_tokens) AS inp,
              multiIf(provider IS NULL OR trim(provider) = '' OR model IS NULL OR trim(model) = '', 2,
                   prompt_tokens < 0 OR completion_tokens < 0 OR cache_read_tokens < 0
                   OR cache_write_tokens < 0 OR prompt_tokens_avoided < 0
                   OR completion_tokens_avoided < 0
                   OR cache_write_1h_tokens < 0 OR cache_write_1h_tokens > cache_write_tokens, 1, 0) AS quality,
              if(lower(trim(service_tier)) IN ('', 'standard', 'default'), NULL, lower(trim(service_tier))) AS tier,
              ifNull(cache_write_1h_tokens, 0) AS write_1h,
              if(usage_exact = false, 1, 0) AS estimated
    FROM {request_log}
    WHERE created_at >= {start:DateTime64(6, 'UTC')} AND created_at < {end:DateTime64(6, 'UTC')}
      AND ({max_id:Nullable(Int64)} IS NULL OR id <= {max_id:Nullable(Int64)})
) AS rows;

-- name: rows_after
-- The rows written since the last read: ids above :after, and the ids in the ranges :hole_from[i] to
-- :hole_to[i] (ids below :after not seen yet), the first :limit of them by id. One read with both
-- conditions, not a union of two as on the other dialects (whose indexes on id serve each part): with
-- no holes the second folds away, and the engine plans one read instead of two (on a 100M-row log with
-- nothing new: 8.6 against 15.9 ms, the largest cost of every answer). Same columns as rows_between.
SELECT toUnixTimestamp64Milli(created_at) AS slot, provider, model, endpoint AS key,
       (inp > {t1:Int64}) + (inp > {t2:Int64}) + (inp > {t3:Int64}) + (inp > {t4:Int64})
         + (inp > {t5:Int64}) + (inp > {t6:Int64}) + (inp > {t7:Int64}) + (inp > {t8:Int64}) AS size_class,
       cache_hit, 1 AS requests, toUInt8(status_code >= 400) AS errors,
       prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
       prompt_tokens_avoided, completion_tokens_avoided, token_id, id, quality, tier,
       write_1h AS cache_write_1h_tokens, estimated AS estimated_requests
FROM (
    SELECT *, if(cache_hit, toInt64(prompt_tokens_avoided),
                 toInt64(prompt_tokens) + cache_read_tokens + cache_write_tokens) AS inp,
              multiIf(provider IS NULL OR trim(provider) = '' OR model IS NULL OR trim(model) = '', 2,
                   prompt_tokens < 0 OR completion_tokens < 0 OR cache_read_tokens < 0
                   OR cache_write_tokens < 0 OR prompt_tokens_avoided < 0
                   OR completion_tokens_avoided < 0
                   OR cache_write_1h_tokens < 0 OR cache_write_1h_tokens > cache_write_tokens, 1, 0) AS quality,
              if(lower(trim(service_tier)) IN ('', 'standard', 'default'), NULL, lower(trim(service_tier))) AS tier,
              ifNull(cache_write_1h_tokens, 0) AS write_1h,
              if(usage_exact = false, 1, 0) AS estimated
    FROM (
        SELECT * FROM {request_log}
        WHERE id > {after:Int64}
           OR ({hole_from:Nullable(String)} IS NOT NULL
               AND arrayExists((lo, hi) -> toInt64(id) BETWEEN lo AND hi,
                               JSONExtract(ifNull({hole_from:Nullable(String)}, '[]'), 'Array(Int64)'),
                               JSONExtract(ifNull({hole_to:Nullable(String)}, '[]'), 'Array(Int64)')))
        ORDER BY id LIMIT {limit:Int64}
    ) AS fresh
) AS rows
ORDER BY id;

-- name: last_id
-- The highest id in the log: where incremental reads of the open hours start.
SELECT max(id) AS max_id FROM request_log;
