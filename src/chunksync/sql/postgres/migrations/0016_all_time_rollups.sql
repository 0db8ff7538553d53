-- 0016_all_time_rollups --
-- All-time rollups: a queue's figures over its whole life in one row per tenant, outcome and
-- category (attempt_rollups width 0, bucket 0), and its whole processing-time histogram (the
-- latency histograms gain a width column: 3600 for an hour, 0 for all time).
-- get_queue_health_summary (counts, sums, p95) reads them: ~11 rows and ~60 bins however long
-- the queue's history, where it summed ~8,000 hourly rows for a month. Unlike the hour and
-- minute rows they are never trimmed: the all-time figures count every attempt the queue ever
-- had. Built here from the hour rows kept so far; from now on the fold, a correction and a
-- rebuild keep them. get_queue_health_summary also counts a queue's chunks by status through
-- the (queue_id, status) index instead of one pass with seven filtered aggregates.

INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome, category, n,
                             processing_s, items, retry_delay_s, efficiency_sum, efficiency_n,
                             first_started_at, first_attempts, slow_claims, late)
SELECT 0, queue_id, 0, tenant, outcome, category, sum(n), sum(processing_s), sum(items),
       sum(retry_delay_s), sum(efficiency_sum), sum(efficiency_n), min(first_started_at),
       sum(first_attempts), sum(slow_claims), sum(late)
FROM attempt_rollups WHERE width_s = 3600
GROUP BY 2, 4, 5, 6;

ALTER TABLE attempt_latency_rollups ADD COLUMN width_s integer NOT NULL DEFAULT 3600;
ALTER TABLE attempt_latency_rollups ALTER COLUMN width_s DROP DEFAULT;
ALTER TABLE attempt_latency_rollups DROP CONSTRAINT attempt_latency_rollups_pkey;
ALTER TABLE attempt_latency_rollups ADD PRIMARY KEY (width_s, queue_id, bucket, bin);
DROP INDEX attempt_latency_rollups_hour;
CREATE INDEX attempt_latency_rollups_hour ON attempt_latency_rollups (width_s, bucket);
INSERT INTO attempt_latency_rollups (width_s, queue_id, bucket, bin, n)
SELECT 0, queue_id, 0, bin, sum(n) FROM attempt_latency_rollups WHERE width_s = 3600
GROUP BY 2, 4;

-- A corrected attempt already folded moves its figures (as 0009's trigger, at every width).
CREATE OR REPLACE FUNCTION chunksync_rollup_attempts() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    folded bigint;
    source text := 'SELECT queue_id, chunk_id, attempt, tenant, finished_at, started_at, '
        'outcome, category, processing_s, items_processed, retry_delay_s, efficiency, 1 AS sign '
        'FROM new_rows WHERE id <= $1 UNION ALL SELECT queue_id, chunk_id, attempt, tenant, '
        'finished_at, started_at, outcome, category, processing_s, items_processed, '
        'retry_delay_s, efficiency, -1 FROM old_rows WHERE id <= $1';
BEGIN
    SELECT folded_id INTO folded FROM attempt_rollup_marks WHERE id = 1 FOR SHARE;
    IF NOT EXISTS (SELECT 1 FROM old_rows WHERE id <= folded) THEN
        RETURN NULL;
    END IF;
    EXECUTE format($q$
        WITH r AS (%s)
        INSERT INTO attempt_rollups AS t (width_s, queue_id, bucket, tenant, outcome, category,
            n, processing_s, items, retry_delay_s, efficiency_sum, efficiency_n, first_started_at,
            first_attempts, slow_claims, late)
        SELECT w.width_s, r.queue_id,
               CASE w.width_s WHEN 0 THEN 0
                    ELSE (floor(r.finished_at / w.width_s) * w.width_s)::bigint END,
               r.tenant, r.outcome, COALESCE(r.category, ''), sum(r.sign),
               sum(r.sign * r.processing_s), sum(r.sign * r.items_processed),
               sum(r.sign * COALESCE(r.retry_delay_s, 0)), sum(r.sign * COALESCE(r.efficiency, 0)),
               sum(CASE WHEN r.efficiency IS NULL THEN 0 ELSE r.sign END),
               min(r.started_at) FILTER (WHERE r.sign > 0),
               sum(CASE WHEN r.attempt = 1 THEN r.sign ELSE 0 END),
               sum(CASE WHEN r.attempt = 1 AND r.started_at - c.created_at > q.wait_objective_s
                        THEN r.sign ELSE 0 END),
               sum(CASE WHEN r.outcome = 'completed'
                         AND r.finished_at - c.created_at > q.deadline_s THEN r.sign ELSE 0 END)
        FROM r CROSS JOIN (VALUES (60), (3600), (0)) AS w(width_s)
        LEFT JOIN chunks c ON c.id = r.chunk_id
        LEFT JOIN queues q ON q.id = r.queue_id
        GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (width_s, queue_id, bucket, tenant, outcome, category) DO UPDATE
        SET n = t.n + excluded.n, processing_s = t.processing_s + excluded.processing_s,
            items = t.items + excluded.items,
            retry_delay_s = t.retry_delay_s + excluded.retry_delay_s,
            efficiency_sum = t.efficiency_sum + excluded.efficiency_sum,
            efficiency_n = t.efficiency_n + excluded.efficiency_n,
            first_started_at = least(t.first_started_at, excluded.first_started_at),
            first_attempts = t.first_attempts + excluded.first_attempts,
            slow_claims = t.slow_claims + excluded.slow_claims, late = t.late + excluded.late
    $q$, source) USING folded;
    EXECUTE format($q$
        WITH r AS (%s)
        INSERT INTO attempt_latency_rollups AS t (width_s, queue_id, bucket, bin, n)
        SELECT w.width_s, r.queue_id,
               CASE w.width_s WHEN 0 THEN 0
                    ELSE (floor(r.finished_at / w.width_s) * w.width_s)::bigint END,
               chunksync_latency_bin(r.processing_s), sum(r.sign)
        FROM r CROSS JOIN (VALUES (3600), (0)) AS w(width_s)
        WHERE r.outcome NOT IN ('stuck', 'held')
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (width_s, queue_id, bucket, bin) DO UPDATE SET n = t.n + excluded.n
    $q$, source) USING folded;
    RETURN NULL;
END
$$;

-- What readers read (as 0009's views, at every width).
DROP VIEW attempt_latency_rollups_live;
CREATE VIEW attempt_latency_rollups_live AS
SELECT width_s, queue_id, bucket, bin, n FROM attempt_latency_rollups
UNION ALL
SELECT w.width_s, a.queue_id,
       CASE w.width_s WHEN 0 THEN 0 ELSE (floor(a.finished_at / w.width_s) * w.width_s)::bigint END,
       chunksync_latency_bin(a.processing_s), 1::bigint
FROM attempts a CROSS JOIN (VALUES (3600), (0)) AS w(width_s)
WHERE a.id > (SELECT folded_id FROM attempt_rollup_marks WHERE id = 1)
  AND a.outcome NOT IN ('stuck', 'held');

CREATE OR REPLACE VIEW attempt_rollups_live AS
SELECT width_s, queue_id, bucket, tenant, outcome, category, n, processing_s, items,
       retry_delay_s, efficiency_sum, efficiency_n, first_started_at, first_attempts,
       slow_claims, late
FROM attempt_rollups
UNION ALL
SELECT w.width_s, a.queue_id,
       CASE w.width_s WHEN 0 THEN 0 ELSE (floor(a.finished_at / w.width_s) * w.width_s)::bigint END,
       a.tenant,
       a.outcome, COALESCE(a.category, ''), 1::bigint, a.processing_s,
       a.items_processed::bigint, COALESCE(a.retry_delay_s, 0), COALESCE(a.efficiency, 0),
       (a.efficiency IS NOT NULL)::integer::bigint, a.started_at, (a.attempt = 1)::integer::bigint,
       COALESCE(a.attempt = 1 AND a.started_at - c.created_at > q.wait_objective_s,
                false)::integer::bigint,
       COALESCE(a.outcome = 'completed' AND a.finished_at - c.created_at > q.deadline_s,
                false)::integer::bigint
FROM attempts a CROSS JOIN (VALUES (60), (3600), (0)) AS w(width_s)
LEFT JOIN chunks c ON c.id = a.chunk_id
LEFT JOIN queues q ON q.id = a.queue_id
WHERE a.id > (SELECT folded_id FROM attempt_rollup_marks WHERE id = 1);

-- A percentile of one queue's attempts reads its all-time histogram, of one hour's the hour's.
CREATE OR REPLACE FUNCTION chunksync_latency_percentile(
    p_fraction double precision, p_count bigint, p_queue_id uuid DEFAULT NULL,
    p_hour bigint DEFAULT NULL, p_exact_max bigint DEFAULT 20000
) RETURNS double precision
LANGUAGE plpgsql STABLE AS $$
DECLARE
    exact double precision;
    rank double precision;
    b record;
BEGIN
    IF p_count IS NULL OR p_count = 0 THEN
        RETURN NULL;
    END IF;
    IF p_count <= p_exact_max THEN
        IF p_queue_id IS NOT NULL THEN
            SELECT percentile_cont(p_fraction) WITHIN GROUP (ORDER BY a.processing_s) INTO exact
            FROM attempts a
            WHERE a.queue_id = p_queue_id AND a.outcome NOT IN ('stuck', 'held');
        ELSE
            SELECT percentile_cont(p_fraction) WITHIN GROUP (ORDER BY a.processing_s) INTO exact
            FROM attempts a WHERE a.finished_at >= p_hour AND a.finished_at < p_hour + 3600;
        END IF;
        IF exact IS NOT NULL THEN
            RETURN exact;
        END IF;
    END IF;
    FOR b IN
        WITH h AS (
            SELECT l.bin, sum(l.n) AS n FROM attempt_latency_rollups_live l
            WHERE (p_queue_id IS NULL OR l.queue_id = p_queue_id)
              AND (p_hour IS NULL OR l.bucket = p_hour)
              AND l.width_s = CASE WHEN p_hour IS NULL THEN 0 ELSE 3600 END
            GROUP BY l.bin HAVING sum(l.n) > 0
        )
        SELECT h.bin, h.n, sum(h.n) OVER (ORDER BY h.bin) AS cum, sum(h.n) OVER () AS total
        FROM h ORDER BY h.bin
    LOOP
        rank := p_fraction * (b.total - 1);
        IF b.cum > rank THEN
            RETURN chunksync_bin_value(b.bin, (rank - (b.cum - b.n) + 0.5) / b.n);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

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
       GROUP BY c.status),
t AS (
    SELECT COALESCE(sum(st.n) FILTER (WHERE st.status = 'pending'), 0)::bigint AS n_pending,
           COALESCE(sum(st.n) FILTER (WHERE st.status = 'processing'), 0)::bigint AS n_processing,
           COALESCE(sum(st.n) FILTER (WHERE st.status = 'completed'), 0)::bigint AS n_completed,
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
