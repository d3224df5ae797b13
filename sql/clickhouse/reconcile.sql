-- name: hour_fingerprints
-- Per UTC hour of [:start, :end) (the epoch hour index): the counts the rollups hold for it, named
-- as in rollups.FINGERPRINT — the good rows' requests, errors, six token sums, 1-hour cache writes
-- and estimated requests, and the bad rows (quality as in `rows_between`) — up to
-- id :max_id except the ranges :skip_from[i] to :skip_to[i], as in `groups`. The reconciliation sweep compares them with the rollups
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
      AND ({skip_from:Nullable(String)} IS NULL
           OR NOT arrayExists((lo, hi) -> toInt64(id) BETWEEN lo AND hi,
                              JSONExtract(ifNull({skip_from:Nullable(String)}, '[]'), 'Array(Int64)'),
                              JSONExtract(ifNull({skip_to:Nullable(String)}, '[]'), 'Array(Int64)')))
) AS rows
GROUP BY hour;

-- name: hour_ids
-- Per UTC hour of [:start, :end) (the epoch hour index): how many rows, the highest id, the sum of the
-- ids (up to id :max_id except the ranges :skip_from[i] to :skip_to[i], as in `groups`; bad rows
-- included), and the token counts of the row with the highest id: what a saved snapshot of the
-- rollups is checked against at start-up (late rows, deletes, another database behind the URL).
-- argMax takes the last row's tokens in the same pass.
SELECT intDiv(toUnixTimestamp64Milli(created_at), 3600000) AS hour, count() AS n, max(id) AS max_id,
       toInt64(sum(id)) AS id_sum,
       argMax(prompt_tokens + 3 * completion_tokens + 5 * cache_read_tokens + 7 * cache_write_tokens, id)
         AS last_tokens
FROM {request_log}
WHERE created_at >= {start:DateTime64(6, 'UTC')} AND created_at < {end:DateTime64(6, 'UTC')}
  AND ({max_id:Nullable(Int64)} IS NULL OR id <= {max_id:Nullable(Int64)})
  AND ({skip_from:Nullable(String)} IS NULL
       OR NOT arrayExists((lo, hi) -> toInt64(id) BETWEEN lo AND hi,
                          JSONExtract(ifNull({skip_from:Nullable(String)}, '[]'), 'Array(Int64)'),
                          JSONExtract(ifNull({skip_to:Nullable(String)}, '[]'), 'Array(Int64)')))
GROUP BY hour;

-- name: id_span_hours
-- Per UTC hour (the epoch hour index): how many rows with an id from :lo to :hi it holds. The
-- open-hours reader watches the id spans it no longer reads (ids given up as never committing,
-- holes.py): an hour whose count changes is compared with the rollups and read again.
SELECT intDiv(toUnixTimestamp64Milli(created_at), 3600000) AS hour, count() AS rows
FROM request_log
WHERE id BETWEEN {lo:Int64} AND {hi:Int64}
GROUP BY hour;
