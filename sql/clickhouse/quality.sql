-- name: freshness
-- The newest created_at (epoch ms) at or before :cutoff, NULL when none, and how many rows lie after
-- :cutoff: dated in the future, past now plus the allowed clock skew (aggregate.FUTURE_SKEW).
-- Two range reads on the sorting key's created_at: the newest read backwards in the key's order, one
-- row (max() would read every row up to :cutoff: 870 ms against 54 ms on 10M rows).
SELECT (SELECT toNullable(toUnixTimestamp64Milli(created_at)) FROM request_log
        WHERE created_at <= {cutoff:DateTime64(6, 'UTC')} ORDER BY created_at DESC LIMIT 1) AS newest,
       (SELECT count() FROM request_log WHERE created_at > {cutoff:DateTime64(6, 'UTC')}) AS future;
