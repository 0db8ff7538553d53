-- 0005_attempt_rollups --
-- Attempt rollups (chunksync.observe.rollups): per minute and per hour, per queue, tenant,
-- outcome and category, the attempts' counts and sums; per hour and queue, a histogram of
-- processing times. They are kept OFF the write path: the maintenance leader folds the attempts
-- past a watermark (attempt_rollup_marks.folded_id) into them every few seconds, and readers
-- read the *_live views: the rollups plus the raw attempts past the watermark (a short tail
-- read through the primary key). So every health question reads a few thousand rows instead of
-- every attempt, and the figures stay exact. Retention deletes raw attempts but not their
-- rollups (those go on their own, longer schedule). Category '' stands for none: a key column
-- is never NULL. A queue's service-level objectives (chunksync.observe.slo) are read when an
-- attempt is rolled up: a first attempt that started more than wait_objective_s after its
-- chunk was queued counts as a slow claim, a completion more than deadline_s after it was
-- queued as a late one.

ALTER TABLE queues ADD COLUMN wait_objective_s REAL;  -- p95 queued -> first claim; added by 0005
ALTER TABLE queues ADD COLUMN deadline_s REAL;  -- queued -> completed; added by 0005

CREATE TABLE attempt_rollups (
    width_s          INTEGER NOT NULL,  -- 60 (a minute) or 3600 (an hour)
    queue_id         TEXT NOT NULL,
    bucket           INTEGER NOT NULL,  -- the bucket's start, seconds since the epoch
    tenant           TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    category         TEXT NOT NULL,
    n                INTEGER NOT NULL,
    processing_s     REAL NOT NULL,
    items            INTEGER NOT NULL,
    retry_delay_s    REAL NOT NULL,
    efficiency_sum   REAL NOT NULL,
    efficiency_n     INTEGER NOT NULL,
    first_started_at REAL,
    first_attempts   INTEGER NOT NULL DEFAULT 0,  -- claims of chunks never tried before
    slow_claims      INTEGER NOT NULL DEFAULT 0,  -- ... past the queue's wait objective
    late             INTEGER NOT NULL DEFAULT 0,  -- completions past the queue's deadline
    PRIMARY KEY (width_s, queue_id, bucket, tenant, outcome, category)
) WITHOUT ROWID;  -- one b-tree: an attempt's upsert touches it alone
CREATE INDEX attempt_rollups_recent ON attempt_rollups (width_s, bucket);

-- Processing times of the timed attempts (every outcome but stuck and held), per hour and
-- queue, in logarithmic bins: bin 0 holds up to 1 ms, bin b > 0 holds (1 ms * 1.15^(b-1),
-- 1 ms * 1.15^b]; a percentile read from it is within 15% of the exact one.
CREATE TABLE attempt_latency_rollups (
    queue_id TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    bin      INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (queue_id, bucket, bin)
) WITHOUT ROWID;
CREATE INDEX attempt_latency_rollups_hour ON attempt_latency_rollups (bucket);

-- How far the attempts are folded into the rollups: every attempt with id <= folded_id is in
-- them, none past it. seen_id is the newest attempt id at the last fold (seen_at): the next fold
-- goes up to it, so an attempt is folded at least one fold interval after its id was handed out
-- (chunksync.observe.rollups.fold). One row.
CREATE TABLE attempt_rollup_marks (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    folded_id INTEGER NOT NULL,
    seen_id   INTEGER NOT NULL,
    seen_at   REAL NOT NULL
);

-- A corrected attempt already folded (rare: an operator's, a stall recovery's or a test's
-- UPDATE) moves its figures: out of the old row's buckets, into the new row's. An attempt past
-- the watermark needs nothing: the live views read it raw, and the fold will take it as it is.
CREATE TRIGGER attempts_rollup_update AFTER UPDATE OF queue_id, tenant, finished_at, started_at,
    processing_s, items_processed, outcome, category, retry_delay_s, efficiency, attempt,
    chunk_id ON attempts
    WHEN OLD.id <= (SELECT folded_id FROM attempt_rollup_marks WHERE id = 1)
BEGIN
    INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome, category, n,
                                 processing_s, items, retry_delay_s, efficiency_sum,
                                 efficiency_n, first_started_at, first_attempts, slow_claims,
                                 late)
    SELECT w.width_s, r.queue_id, CAST(r.finished_at / w.width_s AS INTEGER) * w.width_s,
           r.tenant, r.outcome, r.category, r.sign, r.sign * r.processing_s, r.sign * r.items,
           r.sign * r.retry_delay_s, r.sign * r.efficiency_sum, r.sign * r.efficiency_n,
           CASE WHEN r.sign > 0 THEN r.started_at END, r.sign * (r.attempt = 1),
           r.sign * COALESCE(r.attempt = 1 AND r.started_at - c.created_at > q.wait_objective_s, 0),
           r.sign * COALESCE(r.outcome = 'completed' AND r.finished_at - c.created_at > q.deadline_s,
                             0)
    FROM (SELECT 60 AS width_s UNION ALL SELECT 3600) AS w,
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
    INSERT INTO attempt_latency_rollups (queue_id, bucket, bin, n)
    SELECT r.queue_id, CAST(r.finished_at / 3600 AS INTEGER) * 3600,
           CASE WHEN r.processing_s <= 0.001 THEN 0
                ELSE 1 + CAST(ln(r.processing_s / 0.001) / 0.13976194237515868 AS INTEGER) END,
           r.n
    FROM (SELECT OLD.queue_id AS queue_id, OLD.finished_at AS finished_at,
                 OLD.processing_s AS processing_s, -1 AS n
          WHERE OLD.outcome NOT IN ('stuck', 'held')
          UNION ALL
          SELECT NEW.queue_id, NEW.finished_at, NEW.processing_s, 1
          WHERE NEW.outcome NOT IN ('stuck', 'held')) AS r
    WHERE true
    ON CONFLICT (queue_id, bucket, bin) DO UPDATE SET n = n + excluded.n;
END;

-- The attempts recorded before this migration, rolled up once (no objective was set yet).
INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome, category, n,
                             processing_s, items, retry_delay_s, efficiency_sum, efficiency_n,
                             first_started_at, first_attempts)
SELECT w.width_s, a.queue_id, CAST(a.finished_at / w.width_s AS INTEGER) * w.width_s, a.tenant,
       a.outcome, COALESCE(a.category, ''), COUNT(*), SUM(a.processing_s),
       SUM(a.items_processed), SUM(COALESCE(a.retry_delay_s, 0)),
       SUM(COALESCE(a.efficiency, 0)), SUM(a.efficiency IS NOT NULL), MIN(a.started_at),
       SUM(a.attempt = 1)
FROM attempts a, (SELECT 60 AS width_s UNION ALL SELECT 3600) AS w
GROUP BY w.width_s, a.queue_id, CAST(a.finished_at / w.width_s AS INTEGER) * w.width_s,
         a.tenant, a.outcome, COALESCE(a.category, '');
INSERT INTO attempt_latency_rollups (queue_id, bucket, bin, n)
SELECT queue_id, CAST(finished_at / 3600 AS INTEGER) * 3600 AS hour,
       CASE WHEN processing_s <= 0.001 THEN 0
            ELSE 1 + CAST(ln(processing_s / 0.001) / 0.13976194237515868 AS INTEGER) END AS b,
       COUNT(*)
FROM attempts WHERE outcome NOT IN ('stuck', 'held')
GROUP BY queue_id, hour, b;
INSERT INTO attempt_rollup_marks (id, folded_id, seen_id, seen_at)
SELECT 1, COALESCE(MAX(id), 0), COALESCE(MAX(id), 0), (julianday('now') - 2440587.5) * 86400.0 FROM attempts;

-- What readers read: the rollups plus, one row per attempt and width, the attempts past the
-- watermark (a range of the primary key: NOT INDEXED keeps a reader's filter on the queue from
-- choosing the queue's index, which would read every attempt of the queue). Every reader sums
-- them, so the two add up exactly.
CREATE VIEW attempt_rollups_live AS
SELECT width_s, queue_id, bucket, tenant, outcome, category, n, processing_s, items,
       retry_delay_s, efficiency_sum, efficiency_n, first_started_at, first_attempts,
       slow_claims, late
FROM attempt_rollups
UNION ALL
SELECT w.width_s, a.queue_id, CAST(a.finished_at / w.width_s AS INTEGER) * w.width_s, a.tenant,
       a.outcome, COALESCE(a.category, ''), 1, a.processing_s, a.items_processed,
       COALESCE(a.retry_delay_s, 0), COALESCE(a.efficiency, 0), a.efficiency IS NOT NULL,
       a.started_at, a.attempt = 1,
       COALESCE(a.attempt = 1 AND a.started_at - c.created_at > q.wait_objective_s, 0),
       COALESCE(a.outcome = 'completed' AND a.finished_at - c.created_at > q.deadline_s, 0)
FROM attempts AS a NOT INDEXED CROSS JOIN (SELECT 60 AS width_s UNION ALL SELECT 3600) AS w
LEFT JOIN chunks c ON c.id = a.chunk_id
LEFT JOIN queues q ON q.id = a.queue_id
WHERE a.id > (SELECT folded_id FROM attempt_rollup_marks WHERE id = 1);

CREATE VIEW attempt_latency_rollups_live AS
SELECT queue_id, bucket, bin, n FROM attempt_latency_rollups
UNION ALL
SELECT queue_id, CAST(finished_at / 3600 AS INTEGER) * 3600,
       CASE WHEN processing_s <= 0.001 THEN 0
            ELSE 1 + CAST(ln(processing_s / 0.001) / 0.13976194237515868 AS INTEGER) END, 1
FROM attempts NOT INDEXED
WHERE id > (SELECT folded_id FROM attempt_rollup_marks WHERE id = 1)
  AND outcome NOT IN ('stuck', 'held');
