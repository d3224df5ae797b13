-- name: hour_fingerprints
-- Per UTC hour of [:start, :end) (the epoch hour index): the counts the rollups hold for it (requests,
-- errors, the six token sums), up to id :max_id except :skip_ids, as in `groups`. The reconciliation
-- sweep compares them with the rollups and reads again the hours that differ (deletes, updates).
SELECT floor(extract(epoch FROM created_at) / 3600)::bigint AS hour, count(*),
       count(*) FILTER (WHERE status_code >= 400),
       sum(prompt_tokens), sum(completion_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
       sum(prompt_tokens_avoided), sum(completion_tokens_avoided)
FROM request_log
WHERE created_at >= :start AND created_at < :end
  AND (:max_id::bigint IS NULL OR id <= :max_id::bigint)
  AND (:skip_ids::bigint[] IS NULL OR id <> ALL(:skip_ids::bigint[]))
GROUP BY hour;
