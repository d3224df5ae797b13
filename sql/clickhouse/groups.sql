-- name: groups
-- Token sums per time slot, provider, model, size class, cache hit and one dimension (:dim =
-- 'endpoint' | 'token' | 'cache_key', anything else: none), over [:start, :end) and the filters.
-- Each group is uniform in price: a slot never spans a UTC day (or, when :slot_ms outlasts the log,
-- the service asks for a span in which no rate changes), and the size class counts how many of the
-- price table's long-context thresholds (:t1 ≤ … ≤ :t8, padded) the request's input exceeds.
-- :max_id (NULL: none) and the id ranges :skip_from[i] to :skip_to[i] (NULL: none) keep a rollup
-- read to the ids the incremental reader has not taken: ids up to :max_id except the ranges it still
-- waits for.
-- Then quality, which sets bad rows apart in groups of their own (see `rows_between`), and the optional
-- columns' detail (docs/request-log.md; a log without them reads 0, NULL, NULL): the service tier
-- (lower case, NULL: standard), the 1-hour part of the cache writes, the requests with estimated usage.
-- The tag filter (:tag_filter = 1) is that of one span of time in which every token's tags stay the
-- same (docs/tags.md): the tokens listed in :tag_ids pass, or with :tag_negate = 1 every token not
-- listed; :tag_anonymous says whether rows without a token pass.
-- A read in parts (`Aggregator._read_split`): the rows whose key's hash (`cityHash64`; no key
-- hashes as '') modulo :parts is :part (:parts = 1: every row); at most :max_groups groups, and
-- one more to say that there are more (the store also sets the engine's max_rows_to_group_by to
-- :max_groups: the query stops as its hash table passes it, TooManyGroups).
SELECT slot, provider, model, key,
       (inp > {t1:Int64}) + (inp > {t2:Int64}) + (inp > {t3:Int64}) + (inp > {t4:Int64})
         + (inp > {t5:Int64}) + (inp > {t6:Int64}) + (inp > {t7:Int64}) + (inp > {t8:Int64}) AS size_class,
       cache_hit,
       count() AS requests,
       countIf(status_code >= 400) AS errors,
       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(prompt_tokens_avoided) AS prompt_tokens_avoided,
       sum(completion_tokens_avoided) AS completion_tokens_avoided,
       quality, tier, sum(write_1h) AS cache_write_1h_tokens, sum(estimated) AS estimated_requests
FROM (
    SELECT intDiv(toUnixTimestamp64Milli(created_at), {slot_ms:Int64}) AS slot,
           provider, model,
           -- nested ifs, not multiIf: the engine drops the branch of a constant condition, so a read
           -- reads only its own key column (multiIf reads all three; at 100M rows a week by endpoint
           -- took 1.08-1.10 s with it, 0.84-0.87 s without; by no key or by token ~3 % less)
           if({dim:String} = 'endpoint', CAST(endpoint AS Nullable(String)),
              if({dim:String} = 'token', token_id,
                 if({dim:String} = 'cache_key', cache_key, CAST(NULL AS Nullable(String))))) AS key,
           if(cache_hit, toInt64(prompt_tokens_avoided),
                 toInt64(prompt_tokens) + cache_read_tokens + cache_write_tokens) AS inp,
           cache_hit, status_code,
           prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
           prompt_tokens_avoided, completion_tokens_avoided,
           if(lower(trim(service_tier)) IN ('', 'standard', 'default'), NULL, lower(trim(service_tier))) AS tier,
           ifNull(cache_write_1h_tokens, 0) AS write_1h,
           if(usage_exact = false, 1, 0) AS estimated,
           multiIf(provider IS NULL OR trim(provider) = '' OR model IS NULL OR trim(model) = '', 2,
                   prompt_tokens < 0 OR completion_tokens < 0 OR cache_read_tokens < 0
                   OR cache_write_tokens < 0 OR prompt_tokens_avoided < 0
                   OR completion_tokens_avoided < 0
                   OR cache_write_1h_tokens < 0 OR cache_write_1h_tokens > cache_write_tokens, 1, 0) AS quality
    FROM {request_log}
    WHERE created_at >= {start:DateTime64(6, 'UTC')} AND created_at < {end:DateTime64(6, 'UTC')}
      AND ({providers:Nullable(String)} IS NULL
           OR has(JSONExtract(ifNull({providers:Nullable(String)}, '[]'), 'Array(String)'), provider))
      AND ({models:Nullable(String)} IS NULL
           OR has(JSONExtract(ifNull({models:Nullable(String)}, '[]'), 'Array(String)'), model))
      AND ({endpoints:Nullable(String)} IS NULL
           OR has(JSONExtract(ifNull({endpoints:Nullable(String)}, '[]'), 'Array(String)'), endpoint))
      AND ({token_filter:Int64} = 0
           OR has(JSONExtract(ifNull({token_ids:Nullable(String)}, '[]'), 'Array(String)'), token_id)
           OR has(JSONExtract(ifNull({token_prefixes:Nullable(String)}, '[]'), 'Array(String)'),
                  substring(token_id, 1, 11))
           OR ({anonymous:Int64} = 1 AND token_id IS NULL))
      AND ({tag_filter:Int64} = 0
           OR (token_id IS NULL AND {tag_anonymous:Int64} = 1)
           OR (token_id IS NOT NULL
               AND has(JSONExtract(ifNull({tag_ids:Nullable(String)}, '[]'), 'Array(String)'), token_id)
                   = ({tag_negate:Int64} = 0)))
      AND ({max_id:Nullable(Int64)} IS NULL OR id <= {max_id:Nullable(Int64)})
      AND ({skip_from:Nullable(String)} IS NULL
           OR NOT arrayExists((lo, hi) -> toInt64(id) BETWEEN lo AND hi,
                              JSONExtract(ifNull({skip_from:Nullable(String)}, '[]'), 'Array(Int64)'),
                              JSONExtract(ifNull({skip_to:Nullable(String)}, '[]'), 'Array(Int64)')))
) AS rows
WHERE {parts:UInt64} = 1 OR cityHash64(ifNull(key, '')) % {parts:UInt64} = {part:UInt64}
GROUP BY slot, provider, model, key, size_class, cache_hit, quality, tier
LIMIT {max_groups:UInt64} + 1;
