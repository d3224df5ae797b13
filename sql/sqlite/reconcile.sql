-- name: hour_fingerprints
-- Per UTC hour of [:start, :end) (the epoch hour index): the counts the rollups hold for it (requests,
-- errors, the six token sums), up to id :max_id except :skip_ids, as in `groups`. The reconciliation
-- sweep compares them with the rollups and reads again the hours that differ (deletes, updates).
SELECT created_at / 3600000 AS hour, count(*), sum(status_code >= 400),
       sum(prompt_tokens), sum(completion_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
       sum(prompt_tokens_avoided), sum(completion_tokens_avoided)
FROM request_log
WHERE created_at >= :start AND created_at < :end
  AND (:max_id IS NULL OR id <= :max_id)
  AND (:skip_ids IS NULL OR id NOT IN (SELECT value FROM json_each(:skip_ids)))
GROUP BY hour;
