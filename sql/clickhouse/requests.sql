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
SELECT id, toUnixTimestamp64Micro(created_at) AS created_at_us, request_id, provider, model,
       endpoint, token_id,
       status_code, streamed, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,
       cache_hit, prompt_tokens_avoided, completion_tokens_avoided, latency_ms, cache_key,
       toUnixTimestamp64Milli(created_at) AS slot, endpoint AS key,
       (inp > {t1:Int64}) + (inp > {t2:Int64}) + (inp > {t3:Int64}) + (inp > {t4:Int64})
         + (inp > {t5:Int64}) + (inp > {t6:Int64}) + (inp > {t7:Int64}) + (inp > {t8:Int64}) AS size_class,
       1 AS requests, toUInt8(status_code >= 400) AS errors, quality, tier, write_1h AS cache_write_1h_tokens,
       estimated AS estimated_requests
FROM (
    SELECT *, if(cache_hit, toInt64(prompt_tokens_avoided),
                 toInt64(prompt_tokens) + cache_read_tokens + cache_write_tokens) AS inp,
              multiIf(provider IS NULL OR trim(provider) = '' OR model IS NULL OR trim(model) = '', 2,
                   prompt_tokens < 0 OR completion_tokens < 0 OR cache_read_tokens < 0
                   OR cache_write_tokens < 0 OR prompt_tokens_avoided < 0
                   OR completion_tokens_avoided < 0
                   OR cache_write_1h_tokens < 0 OR cache_write_1h_tokens > cache_write_tokens, 1, 0) AS quality,
              if(lower(trim(service_tier)) IN ('', 'standard', 'default'), NULL, lower(trim(service_tier))) AS tier,
              ifNull(cache_write_1h_tokens, 0) AS write_1h,
              if(usage_exact = false, 1, 0) AS estimated
    FROM {request_log}
    WHERE created_at >= {start:DateTime64(6, 'UTC')} AND created_at < {end:DateTime64(6, 'UTC')}
      AND created_at <= {c_at:DateTime64(6, 'UTC')}
      AND (created_at < {c_at:DateTime64(6, 'UTC')} OR id < {c_id:Int64})
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
) AS page
ORDER BY created_at DESC, id DESC
LIMIT {limit:Int64};
