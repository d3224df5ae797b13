-- name: requests_per_minute
-- Requests per minute (the epoch minute index) and value of one dimension (:dim = 'endpoint' |
-- 'token' | 'provider' | 'model', a model as provider/model) over [:start, :end): the per-minute
-- counts of the request_storm rule, read only for the minutes that rule needs; only the minutes
-- with at least :min_requests requests.
SELECT intDiv(toUnixTimestamp64Milli(created_at), 60000) AS minute,
       multiIf({dim:String} = 'endpoint', CAST(endpoint AS Nullable(String)),
               {dim:String} = 'token', token_id,
               {dim:String} = 'provider', CAST(provider AS Nullable(String)),
               {dim:String} = 'model', concat(provider, '/', model), NULL) AS key,
       count() AS requests
FROM request_log
WHERE created_at >= {start:DateTime64(6, 'UTC')} AND created_at < {end:DateTime64(6, 'UTC')}
GROUP BY minute, key
HAVING count() >= {min_requests:Int64};
