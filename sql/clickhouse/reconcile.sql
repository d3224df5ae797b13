-- name: hour_fingerprints
-- Per UTC hour of [:start, :end) (the epoch hour index): the counts the rollups hold for it, named
-- as in rollups.FINGERPRINT — the good rows' requests, errors, six token sums, 1-hour cache writes
-- and estimated requests, and the bad rows (quality as in `rows_between`) — up to
-- id :max_id except :skip_ids, as in `groups`. The reconciliation sweep compares them with the rollups
-- and reads again the hours that differ (deletes, updates).
SELECT hour, countIf(quality = 0) AS requests,
       countIf(quality = 0 AND status_code >= 400) AS errors,
       sumIf(prompt_tokens, quality = 0) AS prompt_tokens,
       sumIf(completion_tokens, quality = 0) AS completion_tokens,
       sumIf(cache_read_tokens, quality = 0) AS cache_read_tokens,
       sumIf(cache_write_tokens, quality = 0) AS cache_write_tokens,
       sumIf(prompt_tokens_avoided, quality = 0) AS prompt_tokens_avoided,
       sumIf(completion_tokens_avoided, quality = 0) AS completion_tokens_avoided,
       sumIf(write_1h, quality = 0) AS cache_write_1h_tokens,
       sumIf(estimated, quality = 0) AS estimated_requests,
       countIf(quality <> 0) AS excluded
FROM (
    SELECT intDiv(toUnixTimestamp64Milli(created_at), 3600000) AS hour, status_code, prompt_tokens,
           completion_tokens, cache_read_tokens, cache_write_tokens, prompt_tokens_avoided,
           completion_tokens_avoided,
           ifNull(cache_write_1h_tokens, 0) AS write_1h,
           if(usage_exact = false, 1, 0) AS estimated,
           multiIf(provider IS NULL OR trim(provider) = '' OR model IS NULL OR trim(model) = '', 2,
                   prompt_tokens < 0 OR completion_tokens < 0 OR cache_read_tokens < 0
                   OR cache_write_tokens < 0 OR prompt_tokens_avoided < 0
                   OR completion_tokens_avoided < 0
                   OR cache_write_1h_tokens < 0 OR cache_write_1h_tokens > cache_write_tokens, 1, 0) AS quality
    FROM {request_log}
    WHERE created_at >= {start:DateTime64(6, 'UTC')} AND created_at < {end:DateTime64(6, 'UTC')}
      AND ({max_id:Nullable(Int64)} IS NULL OR id <= {max_id:Nullable(Int64)})
      AND ({skip_ids:Nullable(String)} IS NULL
           OR NOT has(JSONExtract(ifNull({skip_ids:Nullable(String)}, '[]'), 'Array(Int64)'), toInt64(id)))
) AS rows
GROUP BY hour;
