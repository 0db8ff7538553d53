-- 0024_health_summary_counts_completed_by_queue --
-- expand --
-- get_queue_health_summary counts a queue's completed chunks as chunksync's own readers do
-- since 0023: its count of chunks (queues.n_chunks) less the others, which the index of chunks
-- by queue and status still holds. The function's result is unchanged.
-- Online: a function replaced, no table locked.
-- get_queue_health_summary(), its all-time figures from the all-time rollups.
CREATE OR REPLACE FUNCTION get_queue_health_summary(p_queue_id uuid,
                                                    p_window_s double precision DEFAULT 300)
RETURNS TABLE (
    queue_id uuid, name text, status text, totals jsonb, progress double precision,
    attempts bigint, completed_attempts bigint, failed_attempts bigint,
    success_rate double precision, retries bigint, deferrals bigint, held bigint,
    dead_attempts bigint, stuck_recovered bigint, failures_by_category jsonb,
    avg_processing_s double precision, p95_processing_s double precision,
    items_per_s double precision, avg_efficiency double precision,
    total_retry_delay_s double precision, throughput_chunks_per_s double precision,
    oldest_pending_age_s double precision, stuck bigint, dead bigint, recoveries bigint,
    eta_s double precision
)
LANGUAGE sql STABLE AS $$
WITH q AS (SELECT * FROM queues WHERE id = p_queue_id),
st AS (SELECT c.status, count(*) AS n FROM chunks c WHERE c.queue_id = p_queue_id
       AND c.status <> 'completed' GROUP BY c.status),
t AS (
    SELECT COALESCE(sum(st.n) FILTER (WHERE st.status = 'pending'), 0)::bigint AS n_pending,
           COALESCE(sum(st.n) FILTER (WHERE st.status = 'processing'), 0)::bigint AS n_processing,
           (COALESCE((SELECT q.n_chunks FROM q), 0) - COALESCE(sum(st.n), 0))::bigint
               AS n_completed,
           COALESCE(sum(st.n) FILTER (WHERE st.status = 'dead'), 0)::bigint AS n_dead,
           COALESCE(sum(st.n) FILTER (WHERE st.status = 'cancelled'), 0)::bigint AS n_cancelled,
           (SELECT count(*) FROM chunks c WHERE c.queue_id = p_queue_id
                AND c.status = 'processing' AND c.lease_expires_at < chunksync_now()) AS n_stuck,
           (SELECT min(c.created_at) FROM chunks c WHERE c.queue_id = p_queue_id
                AND c.status = 'pending') AS oldest_pending
    FROM st
),
ro AS (
    SELECT r.outcome, r.category, sum(r.n)::bigint AS n, sum(r.processing_s) AS s,
           sum(r.items)::bigint AS items, sum(r.retry_delay_s) AS delay,
           sum(r.efficiency_sum) AS eff_sum, sum(r.efficiency_n)::bigint AS eff_n,
           min(r.first_started_at) AS first_started
    FROM attempt_rollups_live r WHERE r.width_s = 0 AND r.queue_id = p_queue_id
    GROUP BY r.outcome, r.category HAVING sum(r.n) > 0
),
a AS (
    SELECT COALESCE(sum(n), 0)::bigint AS n,
           COALESCE(sum(n) FILTER (WHERE outcome = 'completed'), 0)::bigint AS n_completed,
           COALESCE(sum(n) FILTER (WHERE outcome IN ('retried', 'deferred', 'dead', 'stuck')),
                    0)::bigint AS n_failed,
           COALESCE(sum(n) FILTER (WHERE outcome = 'retried'), 0)::bigint AS n_retried,
           COALESCE(sum(n) FILTER (WHERE outcome = 'deferred'), 0)::bigint AS n_deferred,
           COALESCE(sum(n) FILTER (WHERE outcome = 'held'), 0)::bigint AS n_held,
           COALESCE(sum(n) FILTER (WHERE outcome = 'dead'), 0)::bigint AS n_dead,
           COALESCE(sum(n) FILTER (WHERE outcome = 'stuck'), 0)::bigint AS n_stuck,
           COALESCE(sum(n) FILTER (WHERE outcome NOT IN ('stuck', 'held')), 0)::bigint AS n_timed,
           sum(s) FILTER (WHERE outcome NOT IN ('stuck', 'held')) AS timed_s,
           sum(s) FILTER (WHERE outcome = 'completed') AS completed_s,
           sum(items) FILTER (WHERE outcome = 'completed') AS completed_items,
           sum(eff_sum) FILTER (WHERE outcome = 'completed')
               / NULLIF(sum(eff_n) FILTER (WHERE outcome = 'completed'), 0) AS efficiency,
           COALESCE(sum(delay), 0) AS delay_total,
           min(first_started) AS first_started
    FROM ro
),
p AS (SELECT chunksync_latency_percentile(0.95, a.n_timed, p_queue_id) AS p95 FROM a),
rc AS (
    SELECT COALESCE(sum(x.n), 0)::bigint AS recent
    FROM chunksync_window_attempts(p_window_s, p_queue_id) x WHERE x.outcome = 'completed'
),
f AS (
    SELECT COALESCE(jsonb_object_agg(category, n), '{}'::jsonb) AS by_category
    FROM (SELECT category, sum(n)::bigint AS n FROM ro
          WHERE category <> '' AND outcome IN ('retried', 'deferred', 'dead', 'stuck')
          GROUP BY category) x
),
r AS (
    SELECT count(*) AS n FROM audit_log l
    WHERE l.queue_id = p_queue_id AND l.action = 'recover_stuck'
),
w AS (
    SELECT CASE WHEN a.first_started IS NULL THEN NULL
                ELSE least(p_window_s, chunksync_now() - a.first_started) END AS span
    FROM a
),
tp AS (
    SELECT CASE WHEN w.span > 0 AND rc.recent > 0 THEN rc.recent / w.span END AS rate
    FROM w, rc
)
SELECT q.id, q.name, q.status,
       jsonb_build_object('pending', t.n_pending, 'processing', t.n_processing,
                          'completed', t.n_completed, 'dead', t.n_dead,
                          'cancelled', t.n_cancelled),
       CASE WHEN t.n_pending + t.n_processing + t.n_completed + t.n_dead + t.n_cancelled = 0
            THEN 1.0
            ELSE (t.n_completed + t.n_dead + t.n_cancelled)::float8
                 / (t.n_pending + t.n_processing + t.n_completed + t.n_dead + t.n_cancelled) END,
       a.n, a.n_completed, a.n_failed,
       CASE WHEN a.n > 0 THEN a.n_completed::float8 / a.n END,
       a.n_retried, a.n_deferred, a.n_held, a.n_dead, a.n_stuck, f.by_category,
       CASE WHEN a.n_timed > 0 THEN a.timed_s / a.n_timed END,
       p.p95,
       CASE WHEN a.completed_s > 0 THEN a.completed_items / a.completed_s END,
       a.efficiency, a.delay_total, tp.rate,
       chunksync_now() - t.oldest_pending, t.n_stuck, t.n_dead, r.n,
       CASE WHEN t.n_pending + t.n_processing = 0 THEN 0.0
            WHEN tp.rate IS NOT NULL THEN (t.n_pending + t.n_processing) / tp.rate END
FROM q, t, a, p, f, r, tp
$$;
