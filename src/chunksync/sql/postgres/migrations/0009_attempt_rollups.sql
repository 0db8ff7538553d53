-- 0009_attempt_rollups --
-- Attempt rollups (chunksync.observe.rollups): per minute and per hour, per queue, tenant,
-- outcome and category, the attempts' counts and sums; per hour and queue, a histogram of
-- processing times. They are kept OFF the write path: the maintenance leader folds the attempts
-- past a watermark (attempt_rollup_marks.folded_id) into them every few seconds, one grouped
-- upsert, and the health interface below reads the *_live views: the rollups plus the raw
-- attempts past the watermark (a short tail read through the primary key). So it reads a few
-- thousand rows instead of every attempt, its figures stay exact, and workers' finishes never
-- touch a shared rollup row. Retention deletes raw attempts, not their rollups (those go on
-- their own, longer schedule). Category '' stands for none: a key column is never NULL. A
-- queue's service-level objectives (chunksync.observe.slo) are read when an attempt is rolled
-- up: a first attempt that started more than wait_objective_s after its chunk was queued counts
-- as a slow claim, a completion more than deadline_s after it was queued as a late one.

ALTER TABLE queues ADD COLUMN wait_objective_s double precision;  -- p95 queued -> first claim
ALTER TABLE queues ADD COLUMN deadline_s double precision;  -- queued -> completed

CREATE TABLE attempt_rollups (
    width_s          integer NOT NULL,  -- 60 (a minute) or 3600 (an hour)
    queue_id         uuid NOT NULL,
    bucket           bigint NOT NULL,  -- the bucket's start, seconds since the epoch
    tenant           text NOT NULL,
    outcome          text NOT NULL,
    category         text NOT NULL,
    n                bigint NOT NULL,
    processing_s     double precision NOT NULL,
    items            bigint NOT NULL,
    retry_delay_s    double precision NOT NULL,
    efficiency_sum   double precision NOT NULL,
    efficiency_n     bigint NOT NULL,
    first_started_at double precision,
    first_attempts   bigint NOT NULL DEFAULT 0,  -- claims of chunks never tried before
    slow_claims      bigint NOT NULL DEFAULT 0,  -- ... past the queue's wait objective
    late             bigint NOT NULL DEFAULT 0,  -- completions past the queue's deadline
    PRIMARY KEY (width_s, queue_id, bucket, tenant, outcome, category)
);
CREATE INDEX attempt_rollups_recent ON attempt_rollups (width_s, bucket);

-- Processing times of the timed attempts (every outcome but stuck and held), per hour and
-- queue, in logarithmic bins: bin 0 holds up to 1 ms, bin b > 0 holds (1 ms * 1.15^(b-1),
-- 1 ms * 1.15^b]; a percentile read from it is within 15% of the exact one.
CREATE TABLE attempt_latency_rollups (
    queue_id uuid NOT NULL,
    bucket   bigint NOT NULL,
    bin      integer NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (queue_id, bucket, bin)
);
CREATE INDEX attempt_latency_rollups_hour ON attempt_latency_rollups (bucket);

CREATE FUNCTION chunksync_latency_bin(p_seconds double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_seconds <= 0.001 THEN 0
                ELSE 1 + floor(ln(p_seconds / 0.001) / 0.13976194237515868)::integer END
$$;

-- How far the attempts are folded into the rollups: every attempt with id <= folded_id is in
-- them, none past it. seen_id is the newest attempt id at the last fold (seen_at): the next fold
-- goes up to it, so an attempt is folded at least one fold interval after its id was handed out
-- (chunksync.observe.rollups.fold). One row, locked by each fold.
CREATE TABLE attempt_rollup_marks (
    id        integer PRIMARY KEY CHECK (id = 1),
    folded_id bigint NOT NULL,
    seen_id   bigint NOT NULL,
    seen_at   double precision NOT NULL
);

-- A corrected attempt already folded (rare: an operator's, a stall recovery's or a test's
-- UPDATE) moves its figures: its old row's out, its new row's in, grouped and upserted in key
-- order. An attempt past the watermark needs nothing: the live views read it raw. The mark is
-- read FOR SHARE, so a fold running now finishes first (then this sees its new watermark and
-- corrects what it folded) or waits for this transaction (then folds the corrected row).
CREATE FUNCTION chunksync_rollup_attempts() RETURNS trigger
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
        SELECT w.width_s, r.queue_id, (floor(r.finished_at / w.width_s) * w.width_s)::bigint,
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
        FROM r CROSS JOIN (VALUES (60), (3600)) AS w(width_s)
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
        INSERT INTO attempt_latency_rollups AS t (queue_id, bucket, bin, n)
        SELECT r.queue_id, (floor(r.finished_at / 3600) * 3600)::bigint,
               chunksync_latency_bin(r.processing_s), sum(r.sign)
        FROM r WHERE r.outcome NOT IN ('stuck', 'held')
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (queue_id, bucket, bin) DO UPDATE SET n = t.n + excluded.n
    $q$, source) USING folded;
    RETURN NULL;
END
$$;

CREATE TRIGGER attempts_rollup_update AFTER UPDATE ON attempts
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION chunksync_rollup_attempts();

-- The attempts recorded before this migration, rolled up once (no objective was set yet).
INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome, category, n,
                             processing_s, items, retry_delay_s, efficiency_sum, efficiency_n,
                             first_started_at, first_attempts)
SELECT w.width_s, a.queue_id, (floor(a.finished_at / w.width_s) * w.width_s)::bigint, a.tenant,
       a.outcome, COALESCE(a.category, ''), count(*), sum(a.processing_s), sum(a.items_processed),
       sum(COALESCE(a.retry_delay_s, 0)), sum(COALESCE(a.efficiency, 0)), count(a.efficiency),
       min(a.started_at), count(*) FILTER (WHERE a.attempt = 1)
FROM attempts a CROSS JOIN (VALUES (60), (3600)) AS w(width_s)
GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO attempt_latency_rollups (queue_id, bucket, bin, n)
SELECT queue_id, (floor(finished_at / 3600) * 3600)::bigint, chunksync_latency_bin(processing_s),
       count(*)
FROM attempts WHERE outcome NOT IN ('stuck', 'held')
GROUP BY 1, 2, 3;
INSERT INTO attempt_rollup_marks (id, folded_id, seen_id, seen_at)
SELECT 1, COALESCE(max(id), 0), COALESCE(max(id), 0), chunksync_now() FROM attempts;

-- What readers read: the rollups plus, one row per attempt and width, the attempts past the
-- watermark (a range of the primary key). Every reader sums them, so the two add up exactly.
CREATE VIEW attempt_rollups_live AS
SELECT width_s, queue_id, bucket, tenant, outcome, category, n, processing_s, items,
       retry_delay_s, efficiency_sum, efficiency_n, first_started_at, first_attempts,
       slow_claims, late
FROM attempt_rollups
UNION ALL
SELECT w.width_s, a.queue_id, (floor(a.finished_at / w.width_s) * w.width_s)::bigint, a.tenant,
       a.outcome, COALESCE(a.category, ''), 1::bigint, a.processing_s,
       a.items_processed::bigint, COALESCE(a.retry_delay_s, 0), COALESCE(a.efficiency, 0),
       (a.efficiency IS NOT NULL)::integer::bigint, a.started_at, (a.attempt = 1)::integer::bigint,
       COALESCE(a.attempt = 1 AND a.started_at - c.created_at > q.wait_objective_s,
                false)::integer::bigint,
       COALESCE(a.outcome = 'completed' AND a.finished_at - c.created_at > q.deadline_s,
                false)::integer::bigint
FROM attempts a CROSS JOIN (VALUES (60), (3600)) AS w(width_s)
LEFT JOIN chunks c ON c.id = a.chunk_id
LEFT JOIN queues q ON q.id = a.queue_id
WHERE a.id > (SELECT folded_id FROM attempt_rollup_marks WHERE id = 1);

CREATE VIEW attempt_latency_rollups_live AS
SELECT queue_id, bucket, bin, n FROM attempt_latency_rollups
UNION ALL
SELECT queue_id, (floor(finished_at / 3600) * 3600)::bigint, chunksync_latency_bin(processing_s),
       1::bigint
FROM attempts
WHERE id > (SELECT folded_id FROM attempt_rollup_marks WHERE id = 1)
  AND outcome NOT IN ('stuck', 'held');

-- Attempts of the last p_window_s seconds (of one queue, or all): the minute rollups from the
-- next whole minute on, plus the raw attempts of the window's first, partial minute. Exact.
CREATE FUNCTION chunksync_window_attempts(p_window_s double precision, p_queue_id uuid DEFAULT NULL)
RETURNS TABLE (queue_id uuid, tenant text, outcome text, category text, n bigint,
               processing_s double precision, items bigint)
LANGUAGE sql STABLE AS $$
    WITH b AS (SELECT chunksync_now() - p_window_s AS since,
                      (floor((chunksync_now() - p_window_s) / 60) * 60 + 60)::bigint AS minute)
    SELECT r.queue_id, r.tenant, r.outcome, NULLIF(r.category, ''), r.n, r.processing_s,
           r.items
    FROM attempt_rollups_live r, b
    WHERE r.width_s = 60 AND r.bucket >= b.minute AND r.n <> 0
      AND (p_queue_id IS NULL OR r.queue_id = p_queue_id)
    UNION ALL
    SELECT a.queue_id, a.tenant, a.outcome, a.category, 1, a.processing_s, a.items_processed
    FROM attempts a, b
    WHERE a.finished_at >= b.since AND a.finished_at < b.minute
      AND (p_queue_id IS NULL OR a.queue_id = p_queue_id)
$$;

-- A percentile of the processing times of one queue's timed attempts (p_queue_id) or of one
-- hour's attempts (p_hour): exact (percentile_cont over the raw rows) up to p_exact_max
-- attempts, else interpolated in the histogram's bin that holds it.
CREATE FUNCTION chunksync_latency_percentile(
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

-- The value at a share (0..1) of the way through a latency bin (chunksync.observe.rollups).
CREATE FUNCTION chunksync_bin_value(p_bin integer, p_share double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_bin <= 0 THEN 0.001 * least(greatest(p_share, 0), 1)
                ELSE 0.001 * power(1.15, p_bin - 1)
                     + 0.001 * (power(1.15, p_bin) - power(1.15, p_bin - 1))
                       * least(greatest(p_share, 0), 1) END
$$;

-- get_queue_health_summary(), from the rollups: same columns and figures as 0004's.
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
t AS (
    SELECT count(*) FILTER (WHERE c.status = 'pending') AS n_pending,
           count(*) FILTER (WHERE c.status = 'processing') AS n_processing,
           count(*) FILTER (WHERE c.status = 'completed') AS n_completed,
           count(*) FILTER (WHERE c.status = 'dead') AS n_dead,
           count(*) FILTER (WHERE c.status = 'cancelled') AS n_cancelled,
           count(*) FILTER (WHERE c.status = 'processing' AND c.lease_expires_at < chunksync_now())
               AS n_stuck,
           min(c.created_at) FILTER (WHERE c.status = 'pending') AS oldest_pending
    FROM chunks c WHERE c.queue_id = p_queue_id
),
ro AS (
    SELECT r.outcome, r.category, sum(r.n)::bigint AS n, sum(r.processing_s) AS s,
           sum(r.items)::bigint AS items, sum(r.retry_delay_s) AS delay,
           sum(r.efficiency_sum) AS eff_sum, sum(r.efficiency_n)::bigint AS eff_n,
           min(r.first_started_at) AS first_started
    FROM attempt_rollups_live r WHERE r.width_s = 3600 AND r.queue_id = p_queue_id
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

-- get_system_health_metrics(), its attempt windows from the rollups: same columns and figures.
CREATE OR REPLACE FUNCTION get_system_health_metrics(
    p_worker_timeout_s double precision DEFAULT 60,
    p_error_rate_degraded double precision DEFAULT 0.10,
    p_error_rate_critical double precision DEFAULT 0.50,
    p_min_attempts integer DEFAULT 20,
    p_backlog_age_degraded_s double precision DEFAULT 3600,
    p_stuck_degraded integer DEFAULT 1,
    p_stressed_dependencies text[] DEFAULT '{}'
)
RETURNS TABLE (
    state text, reasons text[], workers_alive bigint, workers_lost bigint,
    active_queues bigint, backlog bigint, oldest_pending_age_s double precision,
    error_rate_5m double precision, error_rate_60m double precision, attempts_5m bigint,
    attempts_60m bigint, top_failure_categories jsonb, recoveries_60m bigint, stuck bigint,
    dead bigint
)
LANGUAGE sql STABLE AS $$
WITH now AS (SELECT chunksync_now() AS t),
wk AS (
    SELECT count(*) FILTER (WHERE status IN ('running', 'stopping')
                              AND last_heartbeat_at >= now.t - p_worker_timeout_s) AS alive,
           count(*) FILTER (WHERE status = 'lost' OR (status IN ('running', 'stopping')
                              AND last_heartbeat_at < now.t - p_worker_timeout_s)) AS lost
    FROM workers, now
),
bl AS (
    SELECT count(*) AS n, now.t - min(c.created_at) AS oldest
    FROM chunks c JOIN queues q ON q.id = c.queue_id, now
    WHERE c.status = 'pending' AND q.status = 'active'
    GROUP BY now.t
),
h AS (SELECT * FROM chunksync_window_attempts(3600)),
at AS (
    SELECT COALESCE(sum(n), 0)::bigint AS n60,
           COALESCE(sum(n) FILTER (WHERE outcome IN ('retried', 'deferred', 'dead', 'stuck')),
                    0)::bigint AS f60,
           COALESCE(sum(n) FILTER (WHERE category = 'auth'
                              AND outcome IN ('retried', 'deferred', 'dead', 'stuck')),
                    0)::bigint AS auth60
    FROM h
),
at5 AS (
    SELECT COALESCE(sum(n), 0)::bigint AS n5,
           COALESCE(sum(n) FILTER (WHERE outcome IN ('retried', 'deferred', 'dead', 'stuck')),
                    0)::bigint AS f5
    FROM chunksync_window_attempts(300)
),
top AS (
    SELECT COALESCE(jsonb_agg(jsonb_build_array(category, n) ORDER BY n DESC, category), '[]')
           AS categories
    FROM (SELECT category, sum(n)::bigint AS n FROM h
          WHERE category IS NOT NULL AND outcome IN ('retried', 'deferred', 'dead', 'stuck')
          GROUP BY category HAVING sum(n) > 0 ORDER BY 2 DESC, category LIMIT 5) x
),
misc AS (
    SELECT (SELECT count(*) FROM queues WHERE status = 'active') AS active_queues,
           (SELECT count(*) FROM chunks, now WHERE status = 'processing'
                AND lease_expires_at < now.t) AS stuck,
           (SELECT count(*) FROM chunks WHERE status = 'dead') AS dead,
           (SELECT count(*) FROM audit_log, now WHERE action = 'recover_stuck'
                AND at >= now.t - 3600) AS recoveries
),
fig AS (
    SELECT wk.alive, wk.lost, misc.active_queues, COALESCE(bl.n, 0) AS backlog, bl.oldest,
           CASE WHEN at5.n5 > 0 THEN at5.f5::float8 / at5.n5 END AS rate5,
           CASE WHEN at.n60 > 0 THEN at.f60::float8 / at.n60 END AS rate60,
           at5.n5, at.n60, top.categories, misc.recoveries, misc.stuck, misc.dead, at.auth60
    FROM wk CROSS JOIN misc CROSS JOIN at CROSS JOIN at5 CROSS JOIN top LEFT JOIN bl ON true
)
SELECT h.state, h.reasons, fig.alive, fig.lost, fig.active_queues, fig.backlog, fig.oldest,
       fig.rate5, fig.rate60, fig.n5, fig.n60, fig.categories, fig.recoveries, fig.stuck,
       fig.dead
FROM fig, chunksync_assess_health(fig.alive, fig.backlog, fig.oldest, fig.n5, fig.rate5,
                                  fig.stuck, fig.auth60, p_error_rate_degraded,
                                  p_error_rate_critical, p_min_attempts,
                                  p_backlog_age_degraded_s, p_stuck_degraded,
                                  p_stressed_dependencies) h
$$;

-- chunked_sync_health_summary, from the hourly rollups: same columns and figures. One grouped
-- subquery, so that a caller's filter on the hour reaches the rollups' index.
CREATE OR REPLACE VIEW chunked_sync_health_summary AS
SELECT to_timestamp(hours.hour_s) AS hour, hours.attempts, hours.successes, hours.failures,
       COALESCE(c.failures_by_category, '{}'::jsonb) AS failures_by_category,
       hours.processing_s / hours.attempts AS avg_processing_s,
       chunksync_latency_percentile(0.95, hours.attempts, NULL, hours.hour_s)
           AS p95_processing_s,
       hours.items::float8 / NULLIF(hours.processing_s, 0) AS items_per_s
FROM (
    SELECT r.bucket AS hour_s, sum(r.n)::bigint AS attempts,
           COALESCE(sum(r.n) FILTER (WHERE r.outcome = 'completed'), 0)::bigint AS successes,
           COALESCE(sum(r.n) FILTER (WHERE r.outcome IN ('retried', 'deferred', 'dead', 'stuck')),
                    0)::bigint AS failures,
           sum(r.processing_s) AS processing_s, sum(r.items) AS items
    FROM attempt_rollups_live r WHERE r.width_s = 3600
    GROUP BY r.bucket HAVING sum(r.n) > 0
) AS hours
LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(x.category, x.n) AS failures_by_category
    FROM (SELECT r.category, sum(r.n)::bigint AS n FROM attempt_rollups_live r
          WHERE r.width_s = 3600 AND r.bucket = hours.hour_s AND r.category <> ''
            AND r.outcome IN ('retried', 'deferred', 'dead', 'stuck')
          GROUP BY r.category HAVING sum(r.n) > 0) x
) AS c ON true
ORDER BY hours.hour_s;
