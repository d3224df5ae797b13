-- name: freshness
-- The newest created_at (epoch ms) at or before :cutoff, NULL when none, and how many rows lie after
-- :cutoff: dated in the future, past now plus the allowed clock skew (aggregate.FUTURE_SKEW).
-- Two range look-ups on the created_at index.
SELECT (SELECT max(created_at) FROM request_log WHERE created_at <= :cutoff) AS newest,
       (SELECT count(*) FROM request_log WHERE created_at > :cutoff) AS future;
