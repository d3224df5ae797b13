-- name: requests_per_minute
-- Requests per minute (the epoch minute index) and value of one dimension (:dim = 'endpoint' |
-- 'token' | 'provider' | 'model', a model as provider/model) over [:start, :end): the per-minute
-- counts of the request_storm rule, read only for the minutes that rule needs; only the minutes
-- with at least :min_requests requests.
SELECT created_at / 60000 AS minute,
       CASE :dim WHEN 'endpoint' THEN endpoint WHEN 'token' THEN token_id
                 WHEN 'provider' THEN provider WHEN 'model' THEN provider || '/' || model END AS key,
       count(*) AS requests
FROM request_log
WHERE created_at >= :start AND created_at < :end
GROUP BY minute, key
HAVING count(*) >= :min_requests;
