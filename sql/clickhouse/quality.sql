-- name: freshness
-- The newest created_at (epoch ms) at or before :cutoff, NULL when none, and how many rows lie after
-- :cutoff: dated in the future, past now plus the allowed clock skew (aggregate.FUTURE_SKEW).
-- Two range reads on the sorting key's created_at.
SELECT (SELECT toUnixTimestamp64Milli(maxOrNull(created_at)) FROM request_log
        WHERE created_at <= {cutoff:DateTime64(6, 'UTC')}) AS newest,
       (SELECT count() FROM request_log WHERE created_at > {cutoff:DateTime64(6, 'UTC')}) AS future;
