-- name: hour_fingerprints
-- Per UTC hour of [:start, :end) (the epoch hour index): the counts the rollups hold for it, named
-- as in rollups.FINGERPRINT — the good rows' requests, errors, six token sums, 1-hour cache writes
-- and estimated requests, and the bad rows (quality as in `rows_between`) — up to id :max_id except
-- the ranges :skip_from[i] to :skip_to[i], as in `groups`. The reconciliation sweep compares them with
-- the rollups and reads again the hours that differ (deletes, updates).
SELECT hour, count(*) FILTER (WHERE quality = 0) AS requests,
       count(*) FILTER (WHERE quality = 0 AND status_code >= 400) AS errors,
       sum(prompt_tokens) FILTER (WHERE quality = 0) AS prompt_tokens,
       sum(completion_tokens) FILTER (WHERE quality = 0) AS completion_tokens,
       sum(cache_read_tokens) FILTER (WHERE quality = 0) AS cache_read_tokens,
       sum(cache_write_tokens) FILTER (WHERE quality = 0) AS cache_write_tokens,
       sum(prompt_tokens_avoided) FILTER (WHERE quality = 0) AS prompt_tokens_avoided,
       sum(completion_tokens_avoided) FILTER (WHERE quality = 0) AS completion_tokens_avoided,
       sum(write_1h) FILTER (WHERE quality = 0) AS cache_write_1h_tokens,
       sum(estimated) FILTER (WHERE quality = 0) AS estimated_requests,
       count(*) FILTER (WHERE quality <> 0) AS excluded
FROM (
    SELECT floor(extract(epoch FROM created_at) / 3600)::bigint AS hour, status_code, prompt_tokens,
           completion_tokens, cache_read_tokens, cache_write_tokens, prompt_tokens_avoided,
           completion_tokens_avoided,
           coalesce(cache_write_1h_tokens, 0) AS write_1h,
           CASE WHEN usage_exact IS FALSE THEN 1 ELSE 0 END AS estimated,
           CASE WHEN provider IS NULL OR trim(provider) = '' OR model IS NULL OR trim(model) = '' THEN 2
                WHEN prompt_tokens < 0 OR completion_tokens < 0 OR cache_read_tokens < 0
                     OR cache_write_tokens < 0 OR prompt_tokens_avoided < 0
                     OR completion_tokens_avoided < 0
                     OR cache_write_1h_tokens < 0 OR cache_write_1h_tokens > cache_write_tokens THEN 1
                ELSE 0 END AS quality
    FROM {request_log}
    WHERE created_at >= :start AND created_at < :end
      AND (:max_id::bigint IS NULL OR id <= :max_id::bigint)
      AND (:skip_from::bigint[] IS NULL OR id < (:skip_from::bigint[])[1] OR NOT EXISTS (
           SELECT 1 FROM unnest(:skip_from::bigint[], :skip_to::bigint[]) AS s(lo, hi)
           WHERE id BETWEEN s.lo AND s.hi))
    -- a fence: without it Postgres inlines `quality` into each of the eleven FILTERs and evaluates its
    -- trims per aggregate (7 days of a 10M-row log: 5.1 s of CPU alone, 3.4 s on three cores, against
    -- 1.5 s on one with it; docs/performance.md#the-postgres-stall)
    OFFSET 0
) AS rows
GROUP BY hour;

-- name: hour_ids
-- Per UTC hour of [:start, :end) (the epoch hour index): how many rows, the highest id, the sum of the
-- ids (up to id :max_id except the ranges :skip_from[i] to :skip_to[i], as in `groups`; bad rows
-- included), and the token counts of
-- the row with the highest id: what a saved snapshot of the rollups is checked against at start-up,
-- so that late rows, deletes and another database behind the URL read those hours again. The
-- counts come from the created_at index; the one row per hour is a look-up by id.
SELECT hours.hour, hours.n, hours.max_id, hours.id_sum,
       r.prompt_tokens + 3 * r.completion_tokens + 5 * r.cache_read_tokens + 7 * r.cache_write_tokens AS last_tokens
FROM (
    SELECT floor(extract(epoch FROM created_at) / 3600)::bigint AS hour, count(*) AS n, max(id) AS max_id, sum(id)::bigint AS id_sum
    FROM {request_log}
    WHERE created_at >= :start AND created_at < :end
      AND (:max_id::bigint IS NULL OR id <= :max_id::bigint)
      AND (:skip_from::bigint[] IS NULL OR id < (:skip_from::bigint[])[1] OR NOT EXISTS (
           SELECT 1 FROM unnest(:skip_from::bigint[], :skip_to::bigint[]) AS s(lo, hi)
           WHERE id BETWEEN s.lo AND s.hi))
    GROUP BY 1
) AS hours JOIN {request_log} AS r ON r.id = hours.max_id;

-- name: id_span_hours
-- Per UTC hour (the epoch hour index): how many rows with an id from :lo to :hi it holds, by primary
-- key. The open-hours reader watches the id spans it no longer reads (ids given up as never
-- committing, holes.py): an hour whose count changes is compared with the rollups and read again.
SELECT floor(extract(epoch FROM created_at) / 3600)::bigint AS hour, count(*) AS rows
FROM request_log
WHERE id BETWEEN :lo::bigint AND :hi::bigint
GROUP BY 1;
