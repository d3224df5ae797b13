-- name: groups
-- Token sums per time slot, provider, model, size class, cache hit and one dimension (:dim =
-- 'endpoint' | 'token' | 'cache_key', anything else: none), over [:start, :end) and the filters.
-- Each group is uniform in price: a slot never spans a UTC day (or, when :slot_ms outlasts the log,
-- the service asks for a span in which no rate changes), and the size class counts how many of the
-- price table's long-context thresholds (:t1 ≤ … ≤ :t8, padded) the request's input exceeds.
-- :max_id (NULL: none) and the id ranges :skip_from[i] to :skip_to[i] (NULL: none) keep a rollup
-- read to the ids the incremental reader has not taken: ids up to :max_id except the ranges it still
-- waits for (ids below the first range skip the range test).
-- Then quality, which sets bad rows apart in groups of their own (see `rows_between`), and the optional
-- columns' detail (docs/request-log.md; a log without them reads 0, NULL, NULL): the service tier
-- (lower case, NULL: standard), the 1-hour part of the cache writes, the requests with estimated usage.
-- The tag filter (:tag_filter = 1) is that of one span of time in which every token's tags stay the
-- same (docs/tags.md): the tokens listed in :tag_ids pass, or with :tag_negate = 1 every token not
-- listed; :tag_anonymous says whether rows without a token pass.
-- A read in parts (`Aggregator._read_split`): the rows whose key's hash (CRC-32 of its UTF-8 bytes, `key_hash`, a function each of the store's connections defines; no key
-- hashes as '') modulo :parts is :part (:parts = 1: every row); at most :max_groups groups, and
-- one more to say that there are more.
SELECT slot, provider, model, key,
       (inp > :t1) + (inp > :t2) + (inp > :t3) + (inp > :t4)
         + (inp > :t5) + (inp > :t6) + (inp > :t7) + (inp > :t8) AS size_class,
       cache_hit,
       count(*) AS requests,
       sum(status_code >= 400) AS errors,
       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(prompt_tokens_avoided) AS prompt_tokens_avoided,
       sum(completion_tokens_avoided) AS completion_tokens_avoided,
       quality, tier, sum(write_1h) AS cache_write_1h_tokens, sum(estimated) AS estimated_requests
FROM (
    SELECT created_at / :slot_ms AS slot, provider, model,
           CASE :dim WHEN 'endpoint' THEN endpoint WHEN 'token' THEN token_id
                     WHEN 'cache_key' THEN cache_key END AS key,
           CASE WHEN cache_hit THEN prompt_tokens_avoided
                ELSE prompt_tokens + cache_read_tokens + cache_write_tokens END AS inp,
           cache_hit <> 0 AS cache_hit, status_code,
           prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
           prompt_tokens_avoided, completion_tokens_avoided,
           CASE WHEN lower(trim(service_tier)) IN ('', 'standard', 'default') THEN NULL
                ELSE lower(trim(service_tier)) END AS tier,
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
      AND (:max_id IS NULL OR id <= :max_id)
      AND (:skip_from IS NULL OR id < json_extract(:skip_from, '$[0]') OR NOT EXISTS (
           SELECT 1 FROM json_each(:skip_from) AS f JOIN json_each(:skip_to) AS t ON t.key = f.key
           WHERE request_log.id BETWEEN f.value AND t.value))
)
WHERE :parts = 1 OR key_hash(coalesce(key, '')) % :parts = :part
GROUP BY slot, provider, model, key, size_class, cache_hit, quality, tier
LIMIT :max_groups + 1;
