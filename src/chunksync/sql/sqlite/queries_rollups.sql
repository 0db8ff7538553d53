-- Health answered from the attempt rollups (migration 0005, chunksync.observe.rollups) through
-- their live views (the rollups plus the attempts past the fold's watermark): all-time figures
-- from the hourly rows, windows from the minute rows plus the raw attempts of the window's first
-- partial minute, so each answer reads a bounded number of rows and stays exact.
-- :window_s windows start at NOW() - :window_s; the minute rows from the next whole minute on.

-- health_queue_attempts --
-- Attempts of one queue by outcome and category, with their sums (from the all-time rollups).
SELECT outcome, NULLIF(category, '') AS category, SUM(n) AS n, SUM(processing_s) AS processing_s,
       SUM(items) AS items, SUM(retry_delay_s) AS retry_delay_s,
       SUM(efficiency_sum) AS efficiency_sum, SUM(efficiency_n) AS efficiency_n,
       MIN(first_started_at) AS first_started_at
FROM attempt_rollups_live WHERE width_s = 0 AND queue_id = :queue_id
GROUP BY outcome, category
HAVING SUM(n) > 0;

-- health_queue_latency --
-- One queue's processing-time histogram (bin, attempts), from the all-time latency rollups.
SELECT bin, SUM(n) AS n FROM attempt_latency_rollups_live
WHERE width_s = 0 AND queue_id = :queue_id
GROUP BY bin HAVING SUM(n) > 0 ORDER BY bin;

-- health_queue_chunks --
-- Oldest pending chunk, stuck chunks, and recent completions of one queue.
SELECT
    NOW() - (SELECT MIN(created_at) FROM chunks WHERE queue_id = :queue_id AND status = 'pending'
                 AND status <> 'completed')
        AS oldest_pending_age_s,
    (SELECT COUNT(*) FROM chunks WHERE queue_id = :queue_id AND status = 'processing'
        AND status <> 'completed' AND lease_expires_at < NOW()) AS stuck,
    (SELECT COALESCE(SUM(n), 0) FROM attempt_rollups_live
        WHERE width_s = 60 AND queue_id = :queue_id AND outcome = 'completed'
          AND bucket >= CAST((NOW() - :window_s) / 60 AS INTEGER) * 60 + 60)
    + (SELECT COUNT(*) FROM attempts WHERE queue_id = :queue_id AND outcome = 'completed'
        AND finished_at >= NOW() - :window_s
        AND finished_at < CAST((NOW() - :window_s) / 60 AS INTEGER) * 60 + 60)
        AS recent_completed,
    (SELECT MIN(first_started_at) FROM attempt_rollups_live WHERE width_s = 0
        AND queue_id = :queue_id) AS first_started_at,
    (SELECT COUNT(*) FROM audit_log WHERE queue_id = :queue_id AND action = 'recover_stuck')
        AS recoveries,
    NOW() AS now;

-- health_queues_attempts --
-- Attempts of each listed queue (:queue_ids) by outcome and category, with their sums (all-time rows).
SELECT queue_id, outcome, NULLIF(category, '') AS category, SUM(n) AS n,
       SUM(processing_s) AS processing_s, SUM(items) AS items,
       SUM(retry_delay_s) AS retry_delay_s, SUM(efficiency_sum) AS efficiency_sum,
       SUM(efficiency_n) AS efficiency_n, MIN(first_started_at) AS first_started_at
FROM attempt_rollups_live
WHERE width_s = 0 AND queue_id IN (SELECT value FROM json_each(:queue_ids))
GROUP BY queue_id, outcome, category
HAVING SUM(n) > 0;

-- health_queues_latency --
-- Each listed queue's processing-time histogram (queue, bin, attempts), from the all-time rows.
SELECT queue_id, bin, SUM(n) AS n FROM attempt_latency_rollups_live
WHERE width_s = 0 AND queue_id IN (SELECT value FROM json_each(:queue_ids))
GROUP BY queue_id, bin HAVING SUM(n) > 0;

-- health_queues_chunks --
-- Each listed queue's oldest pending chunk, stuck chunks and recoveries, and the time now.
SELECT j.value AS queue_id,
    NOW() - (SELECT MIN(created_at) FROM chunks WHERE queue_id = j.value AND status = 'pending'
                 AND status <> 'completed')
        AS oldest_pending_age_s,
    (SELECT COUNT(*) FROM chunks WHERE queue_id = j.value AND status = 'processing'
        AND status <> 'completed' AND lease_expires_at < NOW()) AS stuck,
    (SELECT COUNT(*) FROM audit_log WHERE queue_id = j.value AND action = 'recover_stuck')
        AS recoveries,
    NOW() AS now
FROM json_each(:queue_ids) j;

-- health_window --
-- Attempts and failures finished in the last :window_s seconds, by category.
SELECT category, outcome, SUM(n) AS n FROM (
    SELECT NULLIF(category, '') AS category, outcome, n FROM attempt_rollups_live
    WHERE width_s = 60 AND bucket >= CAST((NOW() - :window_s) / 60 AS INTEGER) * 60 + 60
    UNION ALL
    SELECT category, outcome, 1 FROM attempts
    WHERE finished_at >= NOW() - :window_s
      AND finished_at < CAST((NOW() - :window_s) / 60 AS INTEGER) * 60 + 60
)
GROUP BY category, outcome
HAVING SUM(n) > 0;

-- health_window_by_queue --
-- Attempts of the last :window_s seconds by queue, tenant, outcome and category, with their sums.
SELECT queue_id, tenant, outcome, category, SUM(n) AS n, SUM(processing_s) AS processing_s,
       SUM(items) AS items FROM (
    SELECT queue_id, tenant, outcome, NULLIF(category, '') AS category, n, processing_s, items
    FROM attempt_rollups_live
    WHERE width_s = 60 AND bucket >= CAST((NOW() - :window_s) / 60 AS INTEGER) * 60 + 60
    UNION ALL
    SELECT queue_id, tenant, outcome, category, 1, processing_s, items_processed FROM attempts
    WHERE finished_at >= NOW() - :window_s
      AND finished_at < CAST((NOW() - :window_s) / 60 AS INTEGER) * 60 + 60
)
GROUP BY queue_id, tenant, outcome, category
HAVING SUM(n) > 0;

-- health_minutes --
-- Per queue, minute, outcome and category over the last :window_s seconds (the trend series).
SELECT queue_id, bucket AS t, outcome, NULLIF(category, '') AS category, SUM(n) AS n,
       SUM(processing_s) AS processing_s, SUM(items) AS items
FROM attempt_rollups_live
WHERE width_s = 60 AND bucket > NOW() - :window_s - 60
GROUP BY queue_id, bucket, outcome, category
HAVING SUM(n) > 0
ORDER BY t;

-- health_hourly --
-- Per hour: attempts, successes, failures by category, timing and items (the trend view).
SELECT bucket AS hour, NULLIF(category, '') AS category, outcome, SUM(n) AS n,
       SUM(processing_s) AS processing_s, SUM(items) AS items
FROM attempt_rollups_live
WHERE width_s = 3600 AND bucket > NOW() - :window_s - 3600
GROUP BY bucket, category, outcome
HAVING SUM(n) > 0
ORDER BY hour;

-- rollups_first_raw_hour --
-- The start of the hour of the oldest raw attempt: rollups from there on can be recomputed.
SELECT CAST(MIN(finished_at) / 3600 AS INTEGER) * 3600 AS since FROM attempts;

-- rollups_lock --
-- Nothing to do: a write transaction on SQLite already holds every other writer off.
SELECT 1;

-- rollups_clear_since --
-- Delete the minute and hour rollups from :since on (before recomputing them).
DELETE FROM attempt_rollups WHERE width_s > 0 AND bucket >= :since;

-- rollups_clear_latency_since --
-- Delete the hour latency rollups from :since on.
DELETE FROM attempt_latency_rollups WHERE width_s > 0 AND bucket >= :since;

-- rollups_recompute_since --
-- Recompute the minute and hour rollups of the raw attempts finished from :since on (with
-- today's objectives).
INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome, category, n,
                             processing_s, items, retry_delay_s, efficiency_sum, efficiency_n,
                             first_started_at, first_attempts, slow_claims, late)
SELECT w.width_s, a.queue_id, CAST(a.finished_at / w.width_s AS INTEGER) * w.width_s, a.tenant,
       a.outcome, COALESCE(a.category, ''), COUNT(*), SUM(a.processing_s),
       SUM(a.items_processed), SUM(COALESCE(a.retry_delay_s, 0)),
       SUM(COALESCE(a.efficiency, 0)), SUM(a.efficiency IS NOT NULL), MIN(a.started_at),
       SUM(a.attempt = 1),
       SUM(COALESCE(a.attempt = 1 AND a.started_at - c.created_at > q.wait_objective_s, 0)),
       SUM(COALESCE(a.outcome = 'completed' AND a.finished_at - c.created_at > q.deadline_s, 0))
FROM attempts a CROSS JOIN (SELECT 60 AS width_s UNION ALL SELECT 3600) AS w
LEFT JOIN chunks c ON c.id = a.chunk_id
LEFT JOIN queues q ON q.id = a.queue_id
WHERE a.finished_at >= :since
GROUP BY w.width_s, a.queue_id, CAST(a.finished_at / w.width_s AS INTEGER) * w.width_s,
         a.tenant, a.outcome, COALESCE(a.category, '');

-- rollups_recompute_latency_since --
-- Recompute the hour latency rollups of the raw attempts finished from :since on.
INSERT INTO attempt_latency_rollups (width_s, queue_id, bucket, bin, n)
SELECT 3600, queue_id, CAST(finished_at / 3600 AS INTEGER) * 3600 AS hour,
       CASE WHEN processing_s <= 0.001 THEN 0
            ELSE 1 + CAST(ln(processing_s / 0.001) / 0.13976194237515868 AS INTEGER) END AS b,
       COUNT(*)
FROM attempts WHERE finished_at >= :since AND outcome NOT IN ('stuck', 'held')
GROUP BY queue_id, hour, b;

-- rollups_all_time_adjust --
-- Add (:sign 1) or take out (:sign -1) the hour rows from :since on to or from the all-time rows:
-- a rebuild takes out what it is about to recompute, then adds what it recomputed.
INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome, category, n,
                             processing_s, items, retry_delay_s, efficiency_sum, efficiency_n,
                             first_started_at, first_attempts, slow_claims, late)
SELECT 0, queue_id, 0, tenant, outcome, category, :sign * SUM(n), :sign * SUM(processing_s),
       :sign * SUM(items), :sign * SUM(retry_delay_s), :sign * SUM(efficiency_sum),
       :sign * SUM(efficiency_n), CASE WHEN :sign > 0 THEN MIN(first_started_at) END,
       :sign * SUM(first_attempts), :sign * SUM(slow_claims), :sign * SUM(late)
FROM attempt_rollups WHERE width_s = 3600 AND bucket >= :since
GROUP BY queue_id, tenant, outcome, category
ON CONFLICT (width_s, queue_id, bucket, tenant, outcome, category) DO UPDATE
SET n = n + excluded.n, processing_s = processing_s + excluded.processing_s,
    items = items + excluded.items, retry_delay_s = retry_delay_s + excluded.retry_delay_s,
    efficiency_sum = efficiency_sum + excluded.efficiency_sum,
    efficiency_n = efficiency_n + excluded.efficiency_n,
    first_started_at = COALESCE(MIN(first_started_at, excluded.first_started_at),
                                first_started_at, excluded.first_started_at),
    first_attempts = first_attempts + excluded.first_attempts,
    slow_claims = slow_claims + excluded.slow_claims, late = late + excluded.late;

-- rollups_latency_all_time_adjust --
-- Add (:sign 1) or take out (:sign -1) the hour histograms from :since on to or from all time.
INSERT INTO attempt_latency_rollups (width_s, queue_id, bucket, bin, n)
SELECT 0, queue_id, 0, bin, :sign * SUM(n)
FROM attempt_latency_rollups WHERE width_s = 3600 AND bucket >= :since
GROUP BY queue_id, bin
ON CONFLICT (width_s, queue_id, bucket, bin) DO UPDATE SET n = n + excluded.n;

-- rollups_fold_mark --
-- The fold's watermark, the newest attempt id seen at the last fold and how long ago, and the
-- newest attempt id now.
SELECT folded_id, seen_id, NOW() - seen_at AS seen_age_s,
       (SELECT COALESCE(MAX(id), 0) FROM attempts) AS newest_id
FROM attempt_rollup_marks WHERE id = 1;

-- rollups_settle --
-- Nothing to do: SQLite has one writer at a time, and this transaction is it.
SELECT 1;

-- rollups_fold --
-- Add the attempts with :after < id <= :upto to the minute, hour and all-time rollups (one
-- grouped upsert). The attempts are grouped once, by minute, and each width's rows summed from
-- those groups (an hour and all time are whole minutes): grouping every attempt once per width
-- took three times as long (a fold of 50,000 attempts: 360 -> 130 ms), holding the write lock.
WITH t AS MATERIALIZED (
    SELECT a.queue_id, CAST(a.finished_at / 60 AS INTEGER) * 60 AS minute, a.tenant, a.outcome,
           COALESCE(a.category, '') AS category, COUNT(*) AS n,
           SUM(a.processing_s) AS processing_s, SUM(a.items_processed) AS items,
           SUM(COALESCE(a.retry_delay_s, 0)) AS retry_delay_s,
           SUM(COALESCE(a.efficiency, 0)) AS efficiency_sum,
           SUM(a.efficiency IS NOT NULL) AS efficiency_n, MIN(a.started_at) AS first_started_at,
           SUM(a.attempt = 1) AS first_attempts,
           SUM(COALESCE(a.attempt = 1 AND a.started_at - c.created_at > q.wait_objective_s, 0))
               AS slow_claims,
           SUM(COALESCE(a.outcome = 'completed' AND a.finished_at - c.created_at > q.deadline_s, 0))
               AS late
    FROM attempts a
    LEFT JOIN chunks c ON c.id = a.chunk_id
    LEFT JOIN queues q ON q.id = a.queue_id
    WHERE a.id > :after AND a.id <= :upto
    GROUP BY a.queue_id, minute, a.tenant, a.outcome, COALESCE(a.category, '')
)
INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome, category, n,
                             processing_s, items, retry_delay_s, efficiency_sum, efficiency_n,
                             first_started_at, first_attempts, slow_claims, late)
SELECT w.width_s, t.queue_id,
       CASE w.width_s WHEN 0 THEN 0 ELSE CAST(t.minute / w.width_s AS INTEGER) * w.width_s END
           AS slot,
       t.tenant, t.outcome, t.category, SUM(t.n), SUM(t.processing_s), SUM(t.items),
       SUM(t.retry_delay_s), SUM(t.efficiency_sum), SUM(t.efficiency_n), MIN(t.first_started_at),
       SUM(t.first_attempts), SUM(t.slow_claims), SUM(t.late)
FROM t CROSS JOIN (SELECT 60 AS width_s UNION ALL SELECT 3600 UNION ALL SELECT 0) AS w
WHERE true
GROUP BY w.width_s, t.queue_id, slot, t.tenant, t.outcome, t.category
ON CONFLICT (width_s, queue_id, bucket, tenant, outcome, category) DO UPDATE
SET n = n + excluded.n, processing_s = processing_s + excluded.processing_s,
    items = items + excluded.items, retry_delay_s = retry_delay_s + excluded.retry_delay_s,
    efficiency_sum = efficiency_sum + excluded.efficiency_sum,
    efficiency_n = efficiency_n + excluded.efficiency_n,
    first_started_at = COALESCE(MIN(first_started_at, excluded.first_started_at),
                                first_started_at, excluded.first_started_at),
    first_attempts = first_attempts + excluded.first_attempts,
    slow_claims = slow_claims + excluded.slow_claims, late = late + excluded.late;

-- rollups_fold_latency --
-- Add the timed attempts with :after < id <= :upto to the hour and all-time latency histograms:
-- grouped once by hour and bin, the all-time rows summed from those groups (as rollups_fold).
WITH h AS MATERIALIZED (
    SELECT a.queue_id, CAST(a.finished_at / 3600 AS INTEGER) * 3600 AS hour,
           CASE WHEN a.processing_s <= 0.001 THEN 0
                ELSE 1 + CAST(ln(a.processing_s / 0.001) / 0.13976194237515868 AS INTEGER) END
               AS b,
           COUNT(*) AS n
    FROM attempts a
    WHERE a.id > :after AND a.id <= :upto AND a.outcome NOT IN ('stuck', 'held')
    GROUP BY a.queue_id, hour, b
)
INSERT INTO attempt_latency_rollups (width_s, queue_id, bucket, bin, n)
SELECT w.width_s, h.queue_id, CASE w.width_s WHEN 0 THEN 0 ELSE h.hour END AS slot, h.b,
       SUM(h.n)
FROM h CROSS JOIN (SELECT 3600 AS width_s UNION ALL SELECT 0) AS w
WHERE true
GROUP BY w.width_s, h.queue_id, slot, h.b
ON CONFLICT (width_s, queue_id, bucket, bin) DO UPDATE SET n = n + excluded.n;

-- rollups_fold_advance --
-- Move the watermark to :upto and remember the newest attempt id now (the next fold's bound).
UPDATE attempt_rollup_marks
SET folded_id = :upto, seen_id = MAX(:upto, (SELECT COALESCE(MAX(id), 0) FROM attempts)),
    seen_at = NOW()
WHERE id = 1;

-- rollups_trim --
-- Delete at most :limit rollup rows of width :width_s whose bucket ended :older_than_s ago.
DELETE FROM attempt_rollups
WHERE (width_s, queue_id, bucket, tenant, outcome, category) IN (
    SELECT width_s, queue_id, bucket, tenant, outcome, category FROM attempt_rollups
    WHERE width_s = :width_s AND bucket < NOW() - :older_than_s LIMIT :limit);

-- rollups_trim_latency --
-- Delete at most :limit latency rollup rows older than :older_than_s.
DELETE FROM attempt_latency_rollups WHERE (width_s, queue_id, bucket, bin) IN (
    SELECT width_s, queue_id, bucket, bin FROM attempt_latency_rollups
    WHERE width_s > 0 AND bucket < NOW() - :older_than_s LIMIT :limit);

-- slo_set --
-- Set (or clear, with NULL) a queue's wait objective and completion deadline, in seconds.
UPDATE queues SET wait_objective_s = :wait_objective_s, deadline_s = :deadline_s,
                  updated_at = NOW()
WHERE id = :id;

-- slo_queues --
-- Queues with an objective, with their backlog.
SELECT q.id, q.name, q.tenant, q.wait_objective_s, q.deadline_s,
       (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'pending'
                                                  AND c.status <> 'completed') AS backlog
FROM queues q
WHERE q.wait_objective_s IS NOT NULL OR q.deadline_s IS NOT NULL
ORDER BY q.name;

-- slo_window --
-- Per queue and tenant over the last :window_s seconds (minute rollups): first claims, slow
-- ones, completions, late ones. Whole minutes: a burn rate needs no partial minute.
SELECT queue_id, tenant, SUM(first_attempts) AS claims, SUM(slow_claims) AS slow,
       SUM(CASE WHEN outcome = 'completed' THEN n ELSE 0 END) AS completed, SUM(late) AS late
FROM attempt_rollups_live
WHERE width_s = 60 AND bucket >= NOW() - :window_s
GROUP BY queue_id, tenant;

-- slo_period --
-- Per queue and tenant since :since (hourly rollups): first claims, slow ones, completions,
-- late ones (the error budget's period).
SELECT queue_id, tenant, SUM(first_attempts) AS claims, SUM(slow_claims) AS slow,
       SUM(CASE WHEN outcome = 'completed' THEN n ELSE 0 END) AS completed, SUM(late) AS late
FROM attempt_rollups_live
WHERE width_s = 3600 AND bucket >= :since
GROUP BY queue_id, tenant;

-- scale_arrivals --
-- Chunks queued per queue and minute over the last :window_s seconds (the arrival series).
SELECT queue_id, CAST(created_at / 60 AS INTEGER) * 60 AS t, COUNT(*) AS n
FROM chunks WHERE created_at >= NOW() - :window_s
GROUP BY queue_id, t ORDER BY t;

-- scale_slots --
-- Worker slots alive now.
SELECT COALESCE(SUM(concurrency), 0) AS slots FROM workers
WHERE status IN ('running', 'stopping') AND last_heartbeat_at >= NOW() - :worker_timeout_s;

-- scale_queues --
-- Active queues with their tenant, dependency and backlog (what scaling advice is about).
SELECT q.id AS id, q.name, q.tenant, q.dependency, q.wait_objective_s, q.deadline_s,
       (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'pending'
                                                  AND c.status <> 'completed') AS backlog
FROM queues q WHERE q.status = 'active'
ORDER BY q.name;

-- health_dependency_window --
-- Attempts of the last :window_s seconds by queue source and outcome (the per-dependency rate).
SELECT q.source, q.kind, w.outcome, SUM(w.n) AS n FROM (
    SELECT queue_id, outcome, n FROM attempt_rollups_live
    WHERE width_s = 60 AND bucket >= CAST((NOW() - :window_s) / 60 AS INTEGER) * 60 + 60
    UNION ALL
    SELECT queue_id, outcome, 1 FROM attempts
    WHERE finished_at >= NOW() - :window_s
      AND finished_at < CAST((NOW() - :window_s) / 60 AS INTEGER) * 60 + 60
) AS w JOIN queues q ON q.id = w.queue_id
GROUP BY q.source, q.kind, w.outcome
HAVING SUM(w.n) > 0;

