-- 0012_all_time_rollups --
-- All-time rollups: a queue's figures over its whole life in one row per tenant, outcome and
-- category (attempt_rollups width 0, bucket 0), and its whole processing-time histogram (the
-- latency histograms gain a width column: 3600 for an hour, 0 for all time). A queue's summary
-- (counts, sums, p95) reads them: ~11 rows and ~60 bins however long its history, where it
-- summed ~8,000 hourly rows for a month. Unlike the hour and minute rows they are never trimmed:
-- the all-time figures count every attempt the queue ever had. Built here from the hour rows
-- kept so far; from now on the fold, a correction and a rebuild keep them.

INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome, category, n,
                             processing_s, items, retry_delay_s, efficiency_sum, efficiency_n,
                             first_started_at, first_attempts, slow_claims, late)
SELECT 0, queue_id, 0, tenant, outcome, category, SUM(n), SUM(processing_s), SUM(items),
       SUM(retry_delay_s), SUM(efficiency_sum), SUM(efficiency_n), MIN(first_started_at),
       SUM(first_attempts), SUM(slow_claims), SUM(late)
FROM attempt_rollups WHERE width_s = 3600
GROUP BY queue_id, tenant, outcome, category;

DROP VIEW attempt_rollups_live;
DROP VIEW attempt_latency_rollups_live;
DROP TRIGGER attempts_rollup_update;

CREATE TABLE attempt_latency_rollups_widths (
    width_s  INTEGER NOT NULL,  -- 3600 (an hour) or 0 (all time, bucket 0)
    queue_id TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    bin      INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (width_s, queue_id, bucket, bin)
) WITHOUT ROWID;
INSERT INTO attempt_latency_rollups_widths (width_s, queue_id, bucket, bin, n)
SELECT 3600, queue_id, bucket, bin, n FROM attempt_latency_rollups;
INSERT INTO attempt_latency_rollups_widths (width_s, queue_id, bucket, bin, n)
SELECT 0, queue_id, 0, bin, SUM(n) FROM attempt_latency_rollups GROUP BY queue_id, bin;
DROP TABLE attempt_latency_rollups;
ALTER TABLE attempt_latency_rollups_widths RENAME TO attempt_latency_rollups;
CREATE INDEX attempt_latency_rollups_hour ON attempt_latency_rollups (width_s, bucket);

-- A corrected attempt already folded moves its figures (as 0005's trigger, at every width).
CREATE TRIGGER attempts_rollup_update AFTER UPDATE OF queue_id, tenant, finished_at, started_at,
    processing_s, items_processed, outcome, category, retry_delay_s, efficiency, attempt,
    chunk_id ON attempts
    WHEN OLD.id <= (SELECT folded_id FROM attempt_rollup_marks WHERE id = 1)
BEGIN
    INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome, category, n,
                                 processing_s, items, retry_delay_s, efficiency_sum,
                                 efficiency_n, first_started_at, first_attempts, slow_claims,
                                 late)
    SELECT w.width_s, r.queue_id,
           CASE w.width_s WHEN 0 THEN 0 ELSE CAST(r.finished_at / w.width_s AS INTEGER) * w.width_s END,
           r.tenant, r.outcome, r.category, r.sign, r.sign * r.processing_s, r.sign * r.items,
           r.sign * r.retry_delay_s, r.sign * r.efficiency_sum, r.sign * r.efficiency_n,
           CASE WHEN r.sign > 0 THEN r.started_at END, r.sign * (r.attempt = 1),
           r.sign * COALESCE(r.attempt = 1 AND r.started_at - c.created_at > q.wait_objective_s, 0),
           r.sign * COALESCE(r.outcome = 'completed' AND r.finished_at - c.created_at > q.deadline_s,
                             0)
    FROM (SELECT 60 AS width_s UNION ALL SELECT 3600 UNION ALL SELECT 0) AS w,
         (SELECT OLD.queue_id AS queue_id, OLD.chunk_id AS chunk_id, OLD.attempt AS attempt,
                 OLD.started_at AS started_at, OLD.finished_at AS finished_at,
                 OLD.tenant AS tenant, OLD.outcome AS outcome,
                 COALESCE(OLD.category, '') AS category, -1 AS sign,
                 OLD.processing_s AS processing_s, OLD.items_processed AS items,
                 COALESCE(OLD.retry_delay_s, 0) AS retry_delay_s,
                 COALESCE(OLD.efficiency, 0) AS efficiency_sum,
                 OLD.efficiency IS NOT NULL AS efficiency_n
          UNION ALL
          SELECT NEW.queue_id, NEW.chunk_id, NEW.attempt, NEW.started_at, NEW.finished_at,
                 NEW.tenant, NEW.outcome, COALESCE(NEW.category, ''), 1, NEW.processing_s,
                 NEW.items_processed, COALESCE(NEW.retry_delay_s, 0),
                 COALESCE(NEW.efficiency, 0), NEW.efficiency IS NOT NULL) AS r
    LEFT JOIN chunks c ON c.id = r.chunk_id
    LEFT JOIN queues q ON q.id = r.queue_id
    WHERE true
    ON CONFLICT (width_s, queue_id, bucket, tenant, outcome, category) DO UPDATE
    SET n = n + excluded.n, processing_s = processing_s + excluded.processing_s,
        items = items + excluded.items, retry_delay_s = retry_delay_s + excluded.retry_delay_s,
        efficiency_sum = efficiency_sum + excluded.efficiency_sum,
        efficiency_n = efficiency_n + excluded.efficiency_n,
        first_started_at = COALESCE(MIN(first_started_at, excluded.first_started_at),
                                    first_started_at, excluded.first_started_at),
        first_attempts = first_attempts + excluded.first_attempts,
        slow_claims = slow_claims + excluded.slow_claims, late = late + excluded.late;
    INSERT INTO attempt_latency_rollups (width_s, queue_id, bucket, bin, n)
    SELECT w.width_s, r.queue_id,
           CASE w.width_s WHEN 0 THEN 0 ELSE CAST(r.finished_at / w.width_s AS INTEGER) * w.width_s END,
           CASE WHEN r.processing_s <= 0.001 THEN 0
                ELSE 1 + CAST(ln(r.processing_s / 0.001) / 0.13976194237515868 AS INTEGER) END,
           r.n
    FROM (SELECT 3600 AS width_s UNION ALL SELECT 0) AS w,
         (SELECT OLD.queue_id AS queue_id, OLD.finished_at AS finished_at,
                 OLD.processing_s AS processing_s, -1 AS n
          WHERE OLD.outcome NOT IN ('stuck', 'held')
          UNION ALL
          SELECT NEW.queue_id, NEW.finished_at, NEW.processing_s, 1
          WHERE NEW.outcome NOT IN ('stuck', 'held')) AS r
    WHERE true
    ON CONFLICT (width_s, queue_id, bucket, bin) DO UPDATE SET n = n + excluded.n;
END;

-- What readers read (as 0005's views, at every width).
CREATE VIEW attempt_rollups_live AS
SELECT width_s, queue_id, bucket, tenant, outcome, category, n, processing_s, items,
       retry_delay_s, efficiency_sum, efficiency_n, first_started_at, first_attempts,
       slow_claims, late
FROM attempt_rollups
UNION ALL
SELECT w.width_s, a.queue_id,
       CASE w.width_s WHEN 0 THEN 0 ELSE CAST(a.finished_at / w.width_s AS INTEGER) * w.width_s END,
       a.tenant,
       a.outcome, COALESCE(a.category, ''), 1, a.processing_s, a.items_processed,
       COALESCE(a.retry_delay_s, 0), COALESCE(a.efficiency, 0), a.efficiency IS NOT NULL,
       a.started_at, a.attempt = 1,
       COALESCE(a.attempt = 1 AND a.started_at - c.created_at > q.wait_objective_s, 0),
       COALESCE(a.outcome = 'completed' AND a.finished_at - c.created_at > q.deadline_s, 0)
FROM attempts AS a NOT INDEXED
CROSS JOIN (SELECT 60 AS width_s UNION ALL SELECT 3600 UNION ALL SELECT 0) AS w
LEFT JOIN chunks c ON c.id = a.chunk_id
LEFT JOIN queues q ON q.id = a.queue_id
WHERE a.id > (SELECT folded_id FROM attempt_rollup_marks WHERE id = 1);

CREATE VIEW attempt_latency_rollups_live AS
SELECT width_s, queue_id, bucket, bin, n FROM attempt_latency_rollups
UNION ALL
SELECT w.width_s, a.queue_id,
       CASE w.width_s WHEN 0 THEN 0 ELSE CAST(a.finished_at / w.width_s AS INTEGER) * w.width_s END,
       CASE WHEN a.processing_s <= 0.001 THEN 0
            ELSE 1 + CAST(ln(a.processing_s / 0.001) / 0.13976194237515868 AS INTEGER) END, 1
FROM attempts AS a NOT INDEXED CROSS JOIN (SELECT 3600 AS width_s UNION ALL SELECT 0) AS w
WHERE a.id > (SELECT folded_id FROM attempt_rollup_marks WHERE id = 1)
  AND a.outcome NOT IN ('stuck', 'held');
