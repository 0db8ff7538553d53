-- Named queries of health you can see (issue 5): SLAs, trends, alerts, metrics, retention.
-- `NOW()` is the database clock in seconds since the epoch; parameters are :name.

-- health_set_queue_sla --
-- Set (or clear, with NULL) the backlog age in seconds a queue allows before its alert fires.
UPDATE queues SET sla_s = :sla_s, updated_at = NOW() WHERE id = :id;

-- health_queue_slas --
-- Active queues with an SLA, with the age of their oldest pending chunk.
SELECT q.id, q.name, q.sla_s,
       NOW() - (SELECT MIN(c.created_at) FROM chunks c
                WHERE c.queue_id = q.id AND c.status = 'pending' AND c.status <> 'completed')
           AS oldest_pending_age_s
FROM queues q
WHERE q.sla_s IS NOT NULL AND q.status = 'active'
ORDER BY q.name;

-- health_queues_dead --
-- The queues with dead chunks and how many, through the index of the dead alone (the rule read
-- every queue with its totals: 1.6 s an evaluation at 50,000 queues).
SELECT q.id, q.name, d.n
FROM (SELECT queue_id, COUNT(*) AS n FROM chunks WHERE status = 'dead' GROUP BY queue_id) d
JOIN queues q ON q.id = d.queue_id
ORDER BY q.name;

-- health_worker_trends --
-- Each recent worker with its attempts, completions and memory over the last :window_s seconds.
SELECT w.id, w.host, w.pid, w.status, w.concurrency, w.started_at, w.last_heartbeat_at,
       NOW() AS now,
       (SELECT COUNT(*) FROM attempts a
         WHERE a.worker_id = w.id AND a.finished_at >= NOW() - :window_s) AS attempts,
       (SELECT COUNT(*) FROM attempts a
         WHERE a.worker_id = w.id AND a.finished_at >= NOW() - :window_s
           AND a.outcome = 'completed') AS completed,
       (SELECT MAX(a.rss_bytes) FROM attempts a
         WHERE a.worker_id = w.id AND a.finished_at >= NOW() - :window_s) AS max_rss_bytes,
       (SELECT a.rss_bytes FROM attempts a
         WHERE a.worker_id = w.id AND a.rss_bytes IS NOT NULL
         ORDER BY a.finished_at DESC LIMIT 1) AS last_rss_bytes
FROM workers w
WHERE w.status IN ('running', 'stopping') OR w.last_heartbeat_at >= NOW() - :window_s
ORDER BY w.last_heartbeat_at DESC
LIMIT :limit;

-- health_worker_buckets --
-- Per worker and time bucket of :bucket_s seconds: completions and peak memory (the trend).
SELECT worker_id, CAST(finished_at / :bucket_s AS INTEGER) * :bucket_s AS t,
       SUM(CASE WHEN outcome = 'completed' THEN 1 ELSE 0 END) AS completed,
       MAX(rss_bytes) AS max_rss_bytes
FROM attempts
WHERE finished_at >= NOW() - :window_s
GROUP BY worker_id, t
ORDER BY worker_id, t;

-- health_buckets --
-- Attempts by time bucket of :bucket_s seconds, category and outcome (failures over time).
SELECT CAST(finished_at / :bucket_s AS INTEGER) * :bucket_s AS t, category, outcome,
       COUNT(*) AS n, SUM(items_processed) AS items
FROM attempts
WHERE finished_at >= NOW() - :window_s
GROUP BY t, category, outcome
ORDER BY t;

-- health_queue_auth_failures --
-- Authentication failures per queue in the last :window_s seconds.
SELECT a.queue_id, q.name, COUNT(*) AS n
FROM attempts a JOIN queues q ON q.id = a.queue_id
WHERE a.finished_at >= NOW() - :window_s AND a.category = 'auth'
  AND a.outcome IN ('retried', 'deferred', 'dead')
GROUP BY a.queue_id, q.name;

-- alert_fire --
-- Fire an alert unless it already fires; changes one row only for the process that fired it.
INSERT INTO alerts (key, rule, subject, severity, state, message, fired_at, updated_at)
VALUES (:key, :rule, :subject, :severity, 'firing', :message, NOW(), NOW())
ON CONFLICT (key) DO UPDATE
SET state = 'firing', severity = excluded.severity, message = excluded.message,
    fired_at = NOW(), updated_at = NOW(), resolved_at = NULL
WHERE alerts.state = 'resolved';

-- alert_resolve --
-- Resolve a firing alert; changes one row only for the process that resolved it.
UPDATE alerts SET state = 'resolved', resolved_at = NOW(), updated_at = NOW()
WHERE key = :key AND state = 'firing';

-- alert_refresh --
-- Keep a firing alert's text current (the count in it changes while it fires); no new event.
UPDATE alerts SET message = :message, severity = :severity, updated_at = NOW()
WHERE key = :key AND state = 'firing'
  AND (message <> :message OR severity <> :severity);

-- alerts_firing --
-- Every alert firing now.
SELECT * FROM alerts WHERE state = 'firing' ORDER BY fired_at DESC;

-- alerts_recent --
-- The most recently changed alerts, firing or resolved.
SELECT * FROM alerts ORDER BY updated_at DESC LIMIT :limit;

-- metrics_attempts --
-- Every recorded attempt by outcome and category, with the processing seconds.
SELECT outcome, category, COUNT(*) AS n, SUM(processing_s) AS processing_s
FROM attempts GROUP BY outcome, category;

-- metrics_processing_buckets --
-- Attempts (not stuck ones) by outcome and histogram bucket of their processing time.
SELECT outcome,
       CASE WHEN processing_s <= 0.005 THEN 0 WHEN processing_s <= 0.01 THEN 1
            WHEN processing_s <= 0.025 THEN 2 WHEN processing_s <= 0.05 THEN 3
            WHEN processing_s <= 0.1 THEN 4 WHEN processing_s <= 0.25 THEN 5
            WHEN processing_s <= 0.5 THEN 6 WHEN processing_s <= 1 THEN 7
            WHEN processing_s <= 2.5 THEN 8 WHEN processing_s <= 5 THEN 9
            WHEN processing_s <= 10 THEN 10 WHEN processing_s <= 30 THEN 11
            WHEN processing_s <= 60 THEN 12 WHEN processing_s <= 120 THEN 13
            WHEN processing_s <= 300 THEN 14 ELSE 15 END AS bucket,
       COUNT(*) AS n
FROM attempts WHERE outcome <> 'stuck'
GROUP BY outcome, bucket;

-- metrics_gauges --
-- Workers alive, recoveries ever recorded.
SELECT
    (SELECT COUNT(*) FROM workers WHERE status IN ('running', 'stopping')
        AND last_heartbeat_at >= NOW() - :worker_timeout_s) AS workers_alive,
    (SELECT COUNT(*) FROM audit_log WHERE action = 'recover_stuck') AS recoveries;

-- metrics_backlog --
-- Pending chunks per queue that is not finished.
SELECT q.id, q.name, q.status,
       (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'pending'
                                                  AND c.status <> 'completed') AS pending
FROM queues q WHERE q.status IN ('active', 'paused');

-- retention_attempts --
-- Delete at most :limit attempt rows that finished before the cutoff.
DELETE FROM attempts WHERE id IN (
    SELECT id FROM attempts WHERE finished_at < NOW() - :older_than_s LIMIT :limit);

-- retention_audit --
-- Delete at most :limit audit entries older than the cutoff.
DELETE FROM audit_log WHERE id IN (
    SELECT id FROM audit_log WHERE at < NOW() - :older_than_s LIMIT :limit);

-- retention_chunks --
-- Delete at most :limit chunks that finished (completed, dead, cancelled) before the cutoff.
DELETE FROM chunks WHERE id IN (
    SELECT id FROM chunks WHERE finished_at < NOW() - :older_than_s
      AND status IN ('completed', 'dead', 'cancelled') LIMIT :limit);

-- retention_alerts --
-- Delete at most :limit alerts resolved before the cutoff.
DELETE FROM alerts WHERE key IN (
    SELECT key FROM alerts WHERE state = 'resolved' AND resolved_at < NOW() - :older_than_s
    LIMIT :limit);
