-- 0005_batch_attempts --
-- log_chunk_health_metrics(attempts jsonb): record a batch of attempts (a JSON array of objects
-- with the one-attempt form's parameter names, without the p_) in one INSERT; the workers write
-- each claimed batch's attempts through it. The one-attempt form is now a batch of one, so both
-- share one implementation. A per-row PL/pgSQL call cost ~50 us per attempt; this ~15 us.

CREATE FUNCTION log_chunk_health_metrics(p_attempts jsonb) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    bad text;
BEGIN
    SELECT x.outcome INTO bad FROM jsonb_to_recordset(p_attempts) AS x(outcome text)
    WHERE x.outcome NOT IN ('completed', 'retried', 'deferred', 'held', 'dead', 'stuck',
                            'lost_lease', 'cancelled')
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown attempt outcome %', bad USING ERRCODE = '22023';
    END IF;
    SELECT x.category INTO bad FROM jsonb_to_recordset(p_attempts) AS x(category text)
    WHERE x.category NOT IN ('timeout', 'rate_limit', 'network', 'temporary', 'auth',
                             'permission', 'not_found', 'data_conflict', 'processing_error',
                             'unknown')
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown error category %', bad USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    INSERT INTO attempts (chunk_id, queue_id, tenant, worker_id, attempt, started_at,
                          finished_at, processing_s, chunk_size, items_processed, items_per_s,
                          efficiency, outcome, category, rule, message, retry_delay_s, rss_bytes)
    SELECT x.chunk_id, x.queue_id, x.tenant, x.worker_id, x.attempt,
           chunksync_now() - x.processing_s, chunksync_now(), x.processing_s,
           COALESCE(x.chunk_size, 0), COALESCE(x.items_processed, 0), x.items_per_s,
           x.efficiency, x.outcome, x.category, x.rule, x.message, x.retry_delay_s, x.rss_bytes
    FROM jsonb_to_recordset(p_attempts) AS x(
        chunk_id uuid, queue_id uuid, tenant text, worker_id text, attempt integer,
        processing_s float8, outcome text, chunk_size integer, items_processed integer,
        items_per_s float8, efficiency float8, category text, rule text, message text,
        retry_delay_s float8, rss_bytes bigint)
    RETURNING id;
END
$$;

-- Record one attempt; returns its id. Times are the database's: it ends now.
CREATE OR REPLACE FUNCTION log_chunk_health_metrics(
    p_chunk_id uuid, p_queue_id uuid, p_tenant text, p_worker_id text, p_attempt integer,
    p_processing_s double precision, p_outcome text,
    p_chunk_size integer DEFAULT 0, p_items_processed integer DEFAULT 0,
    p_items_per_s double precision DEFAULT NULL, p_efficiency double precision DEFAULT NULL,
    p_category text DEFAULT NULL, p_rule text DEFAULT NULL, p_message text DEFAULT NULL,
    p_retry_delay_s double precision DEFAULT NULL, p_rss_bytes bigint DEFAULT NULL
) RETURNS bigint
LANGUAGE sql AS $$
    SELECT log_chunk_health_metrics(jsonb_build_array(jsonb_build_object(
        'chunk_id', p_chunk_id, 'queue_id', p_queue_id, 'tenant', p_tenant,
        'worker_id', p_worker_id, 'attempt', p_attempt, 'processing_s', p_processing_s,
        'outcome', p_outcome, 'chunk_size', p_chunk_size, 'items_processed', p_items_processed,
        'items_per_s', p_items_per_s, 'efficiency', p_efficiency, 'category', p_category,
        'rule', p_rule, 'message', p_message, 'retry_delay_s', p_retry_delay_s,
        'rss_bytes', p_rss_bytes)))
$$;
