-- Health answered from the attempt rollups (migration 0009, chunksync.observe.rollups) through
-- their live views (the rollups plus the attempts past the fold's watermark): all-time figures
-- from the all-time rows, windows through chunksync_window_attempts() (the minute rows
-- plus the raw attempts of the window's first partial minute), so each answer stays exact.

-- health_queue_attempts --
-- Attempts of one queue by outcome and category, with their sums (from the all-time rollups).
SELECT outcome, NULLIF(category, '') AS category, SUM(n)::bigint AS n,
       SUM(processing_s) AS processing_s, SUM(items)::bigint AS items,
       SUM(retry_delay_s) AS retry_delay_s, SUM(efficiency_sum) AS efficiency_sum,
       SUM(efficiency_n)::bigint AS efficiency_n, MIN(first_started_at) AS first_started_at
FROM attempt_rollups_live WHERE width_s = 0 AND queue_id = :queue_id::uuid
GROUP BY outcome, category
HAVING SUM(n) > 0;

-- health_queue_latency --
-- One queue's processing-time histogram (bin, attempts), from the all-time latency rollups.
SELECT bin, SUM(n)::bigint AS n FROM attempt_latency_rollups_live
WHERE width_s = 0 AND queue_id = :queue_id::uuid
GROUP BY bin HAVING SUM(n) > 0 ORDER BY bin;

-- health_queue_chunks --
-- Oldest pending chunk, stuck chunks, and recent completions of one queue.
SELECT
    NOW() - (SELECT MIN(created_at) FROM chunks
             WHERE queue_id = :queue_id::uuid AND status = 'pending') AS oldest_pending_age_s,
    (SELECT COUNT(*) FROM chunks WHERE queue_id = :queue_id::uuid AND status = 'processing'
        AND lease_expires_at < NOW()) AS stuck,
    (SELECT COALESCE(SUM(n), 0)::bigint
        FROM chunksync_window_attempts(:window_s::float8, :queue_id::uuid)
        WHERE outcome = 'completed') AS recent_completed,
    (SELECT MIN(first_started_at) FROM attempt_rollups_live
        WHERE width_s = 0 AND queue_id = :queue_id::uuid) AS first_started_at,
    (SELECT COUNT(*) FROM audit_log WHERE queue_id = :queue_id::uuid
        AND action = 'recover_stuck') AS recoveries,
    NOW() AS now;

-- health_queues_attempts --
-- Attempts of each listed queue (:queue_ids) by outcome and category, with their sums (all-time rows).
SELECT queue_id::text AS queue_id, outcome, NULLIF(category, '') AS category, SUM(n)::bigint AS n,
       SUM(processing_s) AS processing_s, SUM(items)::bigint AS items,
       SUM(retry_delay_s) AS retry_delay_s, SUM(efficiency_sum) AS efficiency_sum,
       SUM(efficiency_n)::bigint AS efficiency_n, MIN(first_started_at) AS first_started_at
FROM attempt_rollups_live
WHERE width_s = 0 AND queue_id = ANY(:queue_ids::uuid[])
GROUP BY queue_id, outcome, category
HAVING SUM(n) > 0;

-- health_queues_latency --
-- Each listed queue's processing-time histogram (queue, bin, attempts), from the all-time rows.
SELECT queue_id::text AS queue_id, bin, SUM(n)::bigint AS n FROM attempt_latency_rollups_live
WHERE width_s = 0 AND queue_id = ANY(:queue_ids::uuid[])
GROUP BY queue_id, bin HAVING SUM(n) > 0;

-- health_queues_chunks --
-- Each listed queue's oldest pending chunk, stuck chunks and recoveries, and the time now.
SELECT j.id::text AS queue_id,
    NOW() - (SELECT MIN(created_at) FROM chunks WHERE queue_id = j.id AND status = 'pending')
        AS oldest_pending_age_s,
    (SELECT COUNT(*) FROM chunks WHERE queue_id = j.id AND status = 'processing'
        AND lease_expires_at < NOW()) AS stuck,
    (SELECT COUNT(*) FROM audit_log WHERE queue_id = j.id AND action = 'recover_stuck')
        AS recoveries,
    NOW() AS now
FROM unnest(:queue_ids::uuid[]) AS j(id);

-- health_window --
-- Attempts and failures finished in the last :window_s seconds, by category.
SELECT category, outcome, SUM(n)::bigint AS n
FROM chunksync_window_attempts(:window_s::float8)
GROUP BY category, outcome
HAVING SUM(n) > 0;

-- health_window_by_queue --
-- Attempts of the last :window_s seconds by queue, tenant, outcome and category, with their sums.
SELECT queue_id::text AS queue_id, tenant, outcome, category, SUM(n)::bigint AS n,
       SUM(processing_s) AS processing_s, SUM(items)::bigint AS items
FROM chunksync_window_attempts(:window_s::float8)
GROUP BY queue_id, tenant, outcome, category
HAVING SUM(n) > 0;

-- health_minutes --
-- Per queue, minute, outcome and category over the last :window_s seconds (the trend series).
SELECT queue_id::text AS queue_id, bucket AS t, outcome, NULLIF(category, '') AS category,
       SUM(n)::bigint AS n, SUM(processing_s) AS processing_s, SUM(items)::bigint AS items
FROM attempt_rollups_live
WHERE width_s = 60 AND bucket > NOW() - :window_s::float8 - 60
GROUP BY queue_id, bucket, outcome, category
HAVING SUM(n) > 0
ORDER BY t;

-- health_hourly --
-- Per hour: attempts, successes, failures by category, timing and items (the trend view).
SELECT bucket AS hour, NULLIF(category, '') AS category, outcome, SUM(n)::bigint AS n,
       SUM(processing_s) AS processing_s, SUM(items)::bigint AS items
FROM attempt_rollups_live
WHERE width_s = 3600 AND bucket > NOW() - :window_s::float8 - 3600
GROUP BY bucket, category, outcome
HAVING SUM(n) > 0
ORDER BY hour;

-- rollups_first_raw_hour --
-- The start of the hour of the oldest raw attempt: rollups from there on can be recomputed.
SELECT (floor(MIN(finished_at) / 3600) * 3600)::bigint AS since FROM attempts;

-- rollups_lock --
-- Hold off every other writer of the rollups while they are recomputed.
LOCK TABLE attempt_rollups, attempt_latency_rollups IN EXCLUSIVE MODE;

-- rollups_clear_since --
-- Delete the minute and hour rollups from :since on (before recomputing them).
DELETE FROM attempt_rollups WHERE width_s > 0 AND bucket >= :since::bigint;

-- rollups_clear_latency_since --
-- Delete the hour latency rollups from :since on.
DELETE FROM attempt_latency_rollups WHERE width_s > 0 AND bucket >= :since::bigint;

-- rollups_recompute_since --
-- Recompute the minute and hour rollups of the raw attempts finished from :since on (with
-- today's objectives).
INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome, category, n,
                             processing_s, items, retry_delay_s, efficiency_sum, efficiency_n,
                             first_started_at, first_attempts, slow_claims, late)
SELECT w.width_s, a.queue_id,
       CASE w.width_s WHEN 0 THEN 0 ELSE (floor(a.finished_at / w.width_s) * w.width_s)::bigint END,
       a.tenant, a.outcome, COALESCE(a.category, ''), count(*), sum(a.processing_s),
       sum(a.items_processed),
       sum(COALESCE(a.retry_delay_s, 0)), sum(COALESCE(a.efficiency, 0)), count(a.efficiency),
       min(a.started_at), count(*) FILTER (WHERE a.attempt = 1),
       count(*) FILTER (WHERE a.attempt = 1 AND a.started_at - c.created_at > q.wait_objective_s),
       count(*) FILTER (WHERE a.outcome = 'completed'
                          AND a.finished_at - c.created_at > q.deadline_s)
FROM attempts a CROSS JOIN (VALUES (60), (3600)) AS w(width_s)
LEFT JOIN chunks c ON c.id = a.chunk_id
LEFT JOIN queues q ON q.id = a.queue_id
WHERE a.finished_at >= :since::bigint
GROUP BY 1, 2, 3, 4, 5, 6;

-- rollups_recompute_latency_since --
-- Recompute the hour latency rollups of the raw attempts finished from :since on.
INSERT INTO attempt_latency_rollups (width_s, queue_id, bucket, bin, n)
SELECT 3600, queue_id, (floor(finished_at / 3600) * 3600)::bigint,
       chunksync_latency_bin(processing_s), count(*)
FROM attempts WHERE finished_at >= :since::bigint AND outcome NOT IN ('stuck', 'held')
GROUP BY 2, 3, 4;

-- rollups_all_time_adjust --
-- Add (:sign 1) or take out (:sign -1) the hour rows from :since on to or from the all-time rows:
-- a rebuild takes out what it is about to recompute, then adds what it recomputed.
INSERT INTO attempt_rollups AS t (width_s, queue_id, bucket, tenant, outcome, category, n,
                                  processing_s, items, retry_delay_s, efficiency_sum,
                                  efficiency_n, first_started_at, first_attempts, slow_claims,
                                  late)
SELECT 0, queue_id, 0, tenant, outcome, category, :sign::integer * sum(n),
       :sign::integer * sum(processing_s), :sign::integer * sum(items),
       :sign::integer * sum(retry_delay_s), :sign::integer * sum(efficiency_sum),
       :sign::integer * sum(efficiency_n),
       CASE WHEN :sign::integer > 0 THEN min(first_started_at) END,
       :sign::integer * sum(first_attempts), :sign::integer * sum(slow_claims),
       :sign::integer * sum(late)
FROM attempt_rollups WHERE width_s = 3600 AND bucket >= :since::bigint
GROUP BY 2, 4, 5, 6 ORDER BY 2, 4, 5, 6
ON CONFLICT (width_s, queue_id, bucket, tenant, outcome, category) DO UPDATE
SET n = t.n + excluded.n, processing_s = t.processing_s + excluded.processing_s,
    items = t.items + excluded.items, retry_delay_s = t.retry_delay_s + excluded.retry_delay_s,
    efficiency_sum = t.efficiency_sum + excluded.efficiency_sum,
    efficiency_n = t.efficiency_n + excluded.efficiency_n,
    first_started_at = least(t.first_started_at, excluded.first_started_at),
    first_attempts = t.first_attempts + excluded.first_attempts,
    slow_claims = t.slow_claims + excluded.slow_claims, late = t.late + excluded.late;

-- rollups_latency_all_time_adjust --
-- Add (:sign 1) or take out (:sign -1) the hour histograms from :since on to or from all time.
INSERT INTO attempt_latency_rollups AS t (width_s, queue_id, bucket, bin, n)
SELECT 0, queue_id, 0, bin, :sign::integer * sum(n)
FROM attempt_latency_rollups WHERE width_s = 3600 AND bucket >= :since::bigint
GROUP BY 2, 4 ORDER BY 2, 4
ON CONFLICT (width_s, queue_id, bucket, bin) DO UPDATE SET n = t.n + excluded.n;

-- rollups_fold_mark --
-- The fold's watermark (locked: one fold at a time), the newest attempt id seen at the last fold
-- and how long ago, and the newest attempt id now.
SELECT folded_id, seen_id, NOW() - seen_at AS seen_age_s,
       (SELECT COALESCE(max(id), 0) FROM attempts) AS newest_id
FROM attempt_rollup_marks WHERE id = 1 FOR UPDATE;

-- rollups_settle --
-- Wait for every transaction writing attempts to end, and hold new ones off, so that every
-- attempt id handed out so far is committed (an exact fold or rebuild). Taken first: attempts,
-- then the mark, then the rollups is the one lock order (a corrected attempt's trigger too).
LOCK TABLE attempts IN SHARE MODE;

-- rollups_fold --
-- Add the attempts with :after < id <= :upto to the minute, hour and all-time rollups: one
-- grouped upsert in key order. The attempts are grouped once, by minute, and each width's rows
-- summed from those groups (an hour and all time are whole minutes): grouping every attempt
-- once per width took twice as long (a fold of 50,000 attempts: 480 -> 220 ms).
WITH m AS MATERIALIZED (
    SELECT a.queue_id, floor(a.finished_at / 60) * 60 AS minute, a.tenant, a.outcome,
           COALESCE(a.category, '') AS category, count(*) AS n,
           sum(a.processing_s) AS processing_s, sum(a.items_processed) AS items,
           sum(COALESCE(a.retry_delay_s, 0)) AS retry_delay_s,
           sum(COALESCE(a.efficiency, 0)) AS efficiency_sum, count(a.efficiency) AS efficiency_n,
           min(a.started_at) AS first_started_at,
           count(*) FILTER (WHERE a.attempt = 1) AS first_attempts,
           count(*) FILTER (WHERE a.attempt = 1 AND a.started_at - c.created_at > q.wait_objective_s)
               AS slow_claims,
           count(*) FILTER (WHERE a.outcome = 'completed'
                              AND a.finished_at - c.created_at > q.deadline_s) AS late
    FROM attempts a
    LEFT JOIN chunks c ON c.id = a.chunk_id
    LEFT JOIN queues q ON q.id = a.queue_id
    WHERE a.id > :after::bigint AND a.id <= :upto::bigint
    GROUP BY 1, 2, 3, 4, 5
)
INSERT INTO attempt_rollups AS t (width_s, queue_id, bucket, tenant, outcome, category, n,
                                  processing_s, items, retry_delay_s, efficiency_sum,
                                  efficiency_n, first_started_at, first_attempts, slow_claims,
                                  late)
SELECT w.width_s, m.queue_id,
       CASE w.width_s WHEN 0 THEN 0 ELSE (floor(m.minute / w.width_s) * w.width_s)::bigint END,
       m.tenant, m.outcome, m.category, sum(m.n), sum(m.processing_s), sum(m.items),
       sum(m.retry_delay_s), sum(m.efficiency_sum), sum(m.efficiency_n),
       min(m.first_started_at), sum(m.first_attempts), sum(m.slow_claims), sum(m.late)
FROM m CROSS JOIN (VALUES (60), (3600), (0)) AS w(width_s)
GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
ON CONFLICT (width_s, queue_id, bucket, tenant, outcome, category) DO UPDATE
SET n = t.n + excluded.n, processing_s = t.processing_s + excluded.processing_s,
    items = t.items + excluded.items, retry_delay_s = t.retry_delay_s + excluded.retry_delay_s,
    efficiency_sum = t.efficiency_sum + excluded.efficiency_sum,
    efficiency_n = t.efficiency_n + excluded.efficiency_n,
    first_started_at = least(t.first_started_at, excluded.first_started_at),
    first_attempts = t.first_attempts + excluded.first_attempts,
    slow_claims = t.slow_claims + excluded.slow_claims, late = t.late + excluded.late;

-- rollups_fold_latency --
-- Add the timed attempts with :after < id <= :upto to the hour and all-time latency histograms:
-- grouped once by hour and bin, the all-time rows summed from those groups (as rollups_fold).
WITH h AS MATERIALIZED (
    SELECT a.queue_id, (floor(a.finished_at / 3600) * 3600)::bigint AS hour,
           chunksync_latency_bin(a.processing_s) AS b, count(*) AS n
    FROM attempts a
    WHERE a.id > :after::bigint AND a.id <= :upto::bigint AND a.outcome NOT IN ('stuck', 'held')
    GROUP BY 1, 2, 3
)
INSERT INTO attempt_latency_rollups AS t (width_s, queue_id, bucket, bin, n)
SELECT w.width_s, h.queue_id, CASE w.width_s WHEN 0 THEN 0 ELSE h.hour END, h.b, sum(h.n)
FROM h CROSS JOIN (VALUES (3600), (0)) AS w(width_s)
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (width_s, queue_id, bucket, bin) DO UPDATE SET n = t.n + excluded.n;

-- rollups_fold_advance --
-- Move the watermark to :upto and remember the newest attempt id now (the next fold's bound).
UPDATE attempt_rollup_marks
SET folded_id = :upto::bigint,
    seen_id = greatest(:upto::bigint, (SELECT COALESCE(max(id), 0) FROM attempts)),
    seen_at = NOW()
WHERE id = 1;

-- rollups_trim --
-- Delete at most :limit rollup rows of width :width_s whose bucket ended :older_than_s ago.
DELETE FROM attempt_rollups WHERE ctid IN (
    SELECT ctid FROM attempt_rollups
    WHERE width_s = :width_s::integer AND bucket < NOW() - :older_than_s::float8 LIMIT :limit);

-- rollups_trim_latency --
-- Delete at most :limit latency rollup rows older than :older_than_s.
DELETE FROM attempt_latency_rollups WHERE ctid IN (
    SELECT ctid FROM attempt_latency_rollups
    WHERE width_s > 0 AND bucket < NOW() - :older_than_s::float8 LIMIT :limit);

-- slo_set --
-- Set (or clear, with NULL) a queue's wait objective and completion deadline, in seconds.
UPDATE queues SET wait_objective_s = :wait_objective_s::float8, deadline_s = :deadline_s::float8,
                  updated_at = NOW()
WHERE id = :id::uuid;

-- slo_queues --
-- Queues with an objective, with their backlog.
SELECT q.id::text AS id, q.name, q.tenant, q.wait_objective_s, q.deadline_s,
       (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'pending') AS backlog
FROM queues q
WHERE q.wait_objective_s IS NOT NULL OR q.deadline_s IS NOT NULL
ORDER BY q.name;

-- slo_window --
-- Per queue and tenant over the last :window_s seconds (minute rollups): first claims, slow
-- ones, completions, late ones. Whole minutes: a burn rate needs no partial minute.
SELECT queue_id::text AS queue_id, tenant, SUM(first_attempts)::bigint AS claims,
       SUM(slow_claims)::bigint AS slow,
       SUM(CASE WHEN outcome = 'completed' THEN n ELSE 0 END)::bigint AS completed,
       SUM(late)::bigint AS late
FROM attempt_rollups_live
WHERE width_s = 60 AND bucket >= NOW() - :window_s::float8
GROUP BY queue_id, tenant;

-- slo_period --
-- Per queue and tenant since :since (hourly rollups): first claims, slow ones, completions,
-- late ones (the error budget's period).
SELECT queue_id::text AS queue_id, tenant, SUM(first_attempts)::bigint AS claims,
       SUM(slow_claims)::bigint AS slow,
       SUM(CASE WHEN outcome = 'completed' THEN n ELSE 0 END)::bigint AS completed,
       SUM(late)::bigint AS late
FROM attempt_rollups_live
WHERE width_s = 3600 AND bucket >= :since::float8
GROUP BY queue_id, tenant;

-- scale_arrivals --
-- Chunks queued per queue and minute over the last :window_s seconds (the arrival series).
SELECT queue_id::text AS queue_id, (floor(created_at / 60) * 60)::bigint AS t, COUNT(*) AS n
FROM chunks WHERE created_at >= NOW() - :window_s::float8
GROUP BY 1, 2 ORDER BY 2;

-- scale_slots --
-- Worker slots alive now.
SELECT COALESCE(SUM(concurrency), 0)::bigint AS slots FROM workers
WHERE status IN ('running', 'stopping') AND last_heartbeat_at >= NOW() - :worker_timeout_s::float8;

-- scale_queues --
-- Active queues with their tenant, dependency and backlog (what scaling advice is about).
SELECT q.id::text AS id, q.name, q.tenant, q.dependency, q.wait_objective_s, q.deadline_s,
       (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'pending') AS backlog
FROM queues q WHERE q.status = 'active'
ORDER BY q.name;

-- health_dependency_window --
-- Attempts of the last :window_s seconds by queue source and outcome (the per-dependency rate).
SELECT q.source, q.kind, w.outcome, SUM(w.n)::bigint AS n
FROM chunksync_window_attempts(:window_s::float8) w JOIN queues q ON q.id = w.queue_id
GROUP BY q.source, q.kind, w.outcome
HAVING SUM(w.n) > 0;

