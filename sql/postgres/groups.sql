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
-- A read in parts (`Aggregator._read_split`): the rows whose key's hash (`hashtextextended`; no key
-- hashes as '') modulo :parts is :part (:parts = 1: every row); at most :max_groups groups, and
-- one more to say that there are more.
SELECT slot, provider, model, key,
       (inp > :t1::bigint)::int + (inp > :t2::bigint)::int + (inp > :t3::bigint)::int
         + (inp > :t4::bigint)::int + (inp > :t5::bigint)::int + (inp > :t6::bigint)::int
         + (inp > :t7::bigint)::int + (inp > :t8::bigint)::int AS size_class,
       cache_hit,
       count(*) AS requests,
       count(*) FILTER (WHERE status_code >= 400) AS errors,
       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(prompt_tokens_avoided) AS prompt_tokens_avoided,
       sum(completion_tokens_avoided) AS completion_tokens_avoided,
       quality, tier, sum(write_1h) AS cache_write_1h_tokens, sum(estimated) AS estimated_requests
FROM (
    SELECT floor(extract(epoch FROM created_at) * 1000 / :slot_ms::bigint)::bigint AS slot,
           provider, model,
           CASE :dim::text WHEN 'endpoint' THEN endpoint WHEN 'token' THEN token_id
                           WHEN 'cache_key' THEN cache_key END AS key,
           CASE WHEN cache_hit THEN prompt_tokens_avoided::bigint
                ELSE prompt_tokens::bigint + cache_read_tokens + cache_write_tokens END AS inp,
           cache_hit, status_code,
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
      AND (:providers::text[] IS NULL OR provider = ANY(:providers::text[]))
      AND (:models::text[] IS NULL OR model = ANY(:models::text[]))
      AND (:endpoints::text[] IS NULL OR endpoint = ANY(:endpoints::text[]))
      AND (:token_filter::int = 0
           OR token_id = ANY(:token_ids::text[])
           OR substr(token_id, 1, 11) = ANY(:token_prefixes::text[])
           OR (:anonymous::int = 1 AND token_id IS NULL))
      AND (:tag_filter::int = 0
           OR (token_id IS NULL AND :tag_anonymous::int = 1)
           OR (token_id IS NOT NULL AND (token_id = ANY(:tag_ids::text[])) = (:tag_negate::int = 0)))
      AND (:max_id::bigint IS NULL OR id <= :max_id::bigint)
      AND (:skip_from::bigint[] IS NULL OR id < (:skip_from::bigint[])[1] OR NOT EXISTS (
           SELECT 1 FROM unnest(:skip_from::bigint[], :skip_to::bigint[]) AS s(lo, hi)
           WHERE id BETWEEN s.lo AND s.hi))
) AS rows
WHERE :parts::bigint = 1
   OR (hashtextextended(coalesce(key, ''), 0) & 9223372036854775807) % :parts::bigint = :part::bigint
GROUP BY slot, provider, model, key, size_class, cache_hit, quality, tier
LIMIT :max_groups::bigint + 1;
