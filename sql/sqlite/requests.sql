-- name: request_rows
-- The audit view: request-log rows over [:start, :end) and the filters, newest first, :limit of
-- them from the keyset position (:c_at, :c_id) on, exclusive: (created_at, id) < (:c_at, :c_id).
-- The first page passes (:end, 0), which excludes nothing the range does not. created_at comes back
-- as epoch microseconds in both dialects (Postgres keeps microseconds; a cursor must be exact).
-- Each row also comes as a group of one under the names of `rows_between`' columns (slot, key,
-- size class, requests, errors, quality, tier, 1-hour cache writes, estimated requests; the
-- thresholds :t1…:t8 as in `groups`), so the page is priced as every other answer is.
-- The tag filter (:tag_filter = 1) is that of one span of time in which every token's tags stay the
-- same (docs/tags.md): the tokens listed in :tag_ids pass, or with :tag_negate = 1 every token not
-- listed; :tag_anonymous says whether rows without a token pass.
SELECT id, created_at * 1000 AS created_at_us, request_id, provider, model, endpoint, token_id,
       status_code, streamed, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
       cache_hit, prompt_tokens_avoided, completion_tokens_avoided, latency_ms, cache_key,
       created_at AS slot, endpoint AS key,
       (inp > :t1) + (inp > :t2) + (inp > :t3) + (inp > :t4)
         + (inp > :t5) + (inp > :t6) + (inp > :t7) + (inp > :t8) AS size_class,
       1 AS requests, status_code >= 400 AS errors, quality, tier, write_1h AS cache_write_1h_tokens,
       estimated AS estimated_requests
FROM (
    SELECT *, CASE WHEN cache_hit THEN prompt_tokens_avoided
                   ELSE prompt_tokens + cache_read_tokens + cache_write_tokens END AS inp,
              CASE WHEN provider IS NULL OR trim(provider) = '' OR model IS NULL OR trim(model) = '' THEN 2
                   WHEN prompt_tokens < 0 OR completion_tokens < 0 OR cache_read_tokens < 0
                        OR cache_write_tokens < 0 OR prompt_tokens_avoided < 0
                        OR completion_tokens_avoided < 0
                        OR cache_write_1h_tokens < 0 OR cache_write_1h_tokens > cache_write_tokens THEN 1
                   ELSE 0 END AS quality,
              CASE WHEN lower(trim(service_tier)) IN ('', 'standard', 'default') THEN NULL
                   ELSE lower(trim(service_tier)) END AS tier,
              coalesce(cache_write_1h_tokens, 0) AS write_1h,
              CASE WHEN usage_exact IS FALSE THEN 1 ELSE 0 END AS estimated
    FROM {request_log}
    WHERE created_at >= :start AND created_at < :end
      AND created_at <= :c_at AND (created_at < :c_at OR id < :c_id)
      AND (:providers IS NULL OR provider IN (SELECT value FROM json_each(:providers)))
      AND (:models IS NULL OR model IN (SELECT value FROM json_each(:models)))
      AND (:endpoints IS NULL OR endpoint IN (SELECT value FROM json_each(:endpoints)))
      AND (:token_filter = 0
           OR token_id IN (SELECT value FROM json_each(:token_ids))
           OR substr(token_id, 1, 11) IN (SELECT value FROM json_each(:token_prefixes))
           OR (:anonymous = 1 AND token_id IS NULL))
      AND (:tag_filter = 0
           OR (token_id IS NULL AND :tag_anonymous = 1)
           OR (token_id IS NOT NULL
               AND (token_id IN (SELECT value FROM json_each(:tag_ids))) = (:tag_negate = 0)))
) AS page
ORDER BY created_at DESC, id DESC
LIMIT :limit;
