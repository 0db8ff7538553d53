-- Named queries for the SQLite backend. Each block: `-- name --`, a one-line description, the SQL.
-- `NOW()` stands for the database clock in seconds since the epoch; the loader expands it.
-- Parameters are named (:name); list parameters arrive as JSON text and are read with json_each.
-- A read of a queue's chunks by status also says `status <> 'completed'`, which its status
-- already implies: SQLite reads a partial index only for a query that repeats the index's own
-- condition, and chunks_queue_open (queue_id, status) holds no completed chunk (migration 0017).
-- The same holds in every queries_*.sql of this dialect.

-- insert_queue --
-- Create one sync queue.
INSERT INTO queues (id, tenant, name, source, kind, status, priority, policy, max_attempts,
                    created_at, updated_at)
VALUES (:id, :tenant, :name, :source, :kind, 'active', :priority, :policy, :max_attempts,
        NOW(), NOW())
RETURNING *;

-- insert_chunks --
-- Add a batch of a queue's chunks ([id, seq, payload's JSON text, fair_key] each), at their places in the fair order.
INSERT INTO chunks (id, queue_id, tenant, seq, payload, priority, max_attempts, run_after,
                    created_at, updated_at, fair_key)
SELECT e.value ->> 0, :queue_id, :tenant, e.value ->> 1, e.value ->> 2, :priority,
       :max_attempts, NOW(), NOW(), NOW(), e.value ->> 3
FROM json_each(:batch) AS e;

-- next_seq --
-- The next free sequence number in a queue.
SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM chunks WHERE queue_id = :queue_id;

-- get_queue --
-- One queue with its chunk totals by status: its completed chunks are its count of chunks (queues.n_chunks, migration 0016) less the others, not counted.
SELECT t.*, t.n_chunks - t.n_pending - t.n_processing - t.n_dead - t.n_cancelled AS n_completed
FROM (SELECT q.*,
       -- include queue_totals --
      FROM queues q
      WHERE q.id = :id OR (q.name = :id AND q.tenant = :tenant)) t;

-- get_queue_row --
-- One queue's row by id, without its chunk totals (a worker's look at a queue: counting a large queue's chunks took 0.1 s).
SELECT q.* FROM queues q
WHERE q.id = :id;

-- list_queues --
-- Every queue (optionally only one status) with its chunk totals, newest first.
SELECT t.*, t.n_chunks - t.n_pending - t.n_processing - t.n_dead - t.n_cancelled AS n_completed
FROM (SELECT q.*,
       -- include queue_totals --
      FROM queues q
      WHERE (:status IS NULL OR q.status = :status)) t
ORDER BY t.created_at DESC, t.name;

-- list_queues_page --
-- A page of the queues, newest first, with their chunk totals (counted for the page's queues
-- only), and how many queues there are in all.
SELECT t.*, t.n_chunks - t.n_pending - t.n_processing - t.n_dead - t.n_cancelled AS n_completed
FROM (SELECT q.*, (SELECT COUNT(*) FROM queues) AS n_queues,
       -- include queue_totals --
      FROM (SELECT * FROM queues ORDER BY created_at DESC, name LIMIT :limit OFFSET :offset) q) t
ORDER BY t.created_at DESC, t.name;

-- count_queues --
-- How many queues there are.
SELECT COUNT(*) AS n_queues FROM queues;

-- set_queue_status --
-- Move a queue from one of the allowed statuses (JSON list) to a new one.
UPDATE queues SET status = :status, updated_at = NOW()
WHERE id = :id AND status IN (SELECT value FROM json_each(:allowed));

-- queue_open_chunk --
-- Whether a queue still has a chunk pending or processing: read before complete_queue_if_done,
-- which only a queue without one needs (on SQLite it takes the write lock, even to change nothing).
SELECT 1 AS open FROM chunks
WHERE queue_id = :id AND status IN ('pending', 'processing') AND status <> 'completed'
LIMIT 1;

-- complete_queue_if_done --
-- An active queue whose chunks are all terminal becomes completed, or failed if any chunk is dead.
UPDATE queues
SET status = CASE WHEN EXISTS (SELECT 1 FROM chunks WHERE queue_id = :id AND status = 'dead'
                                AND status <> 'completed')
                  THEN 'failed' ELSE 'completed' END,
    updated_at = NOW()
WHERE id = :id AND status = 'active'
  AND NOT EXISTS (SELECT 1 FROM chunks WHERE queue_id = :id AND status IN ('pending', 'processing')
                  AND status <> 'completed');

-- chunk_statistics_stale --
-- Whether a bulk insert of :added chunks outgrew the planner's statistics: never on SQLite (no count of chunks is below 0), which claims through the partial index without statistics (a full ANALYZE would read every index).
SELECT :added < 0 AS stale;

-- refresh_chunk_statistics --
-- After a bulk insert of chunks: nothing to do on SQLite (chunk_statistics_stale).
SELECT 1;

-- reopen_queue --
-- A finished queue that gets a chunk back becomes active again.
UPDATE queues SET status = 'active', updated_at = NOW()
WHERE id = :id AND status IN ('completed', 'failed');

-- get_chunk --
-- One chunk.
SELECT * FROM chunks WHERE id = :id;

-- list_chunks --
-- Chunks filtered by queue, status and last error category (each optional), in queue order.
-- Read in (queue_id, seq) order, a filter stops after :limit rows, but one that fewer rows meet
-- reads every chunk of history: the chunks in flight (`chunksync chunks --status processing`)
-- took 76 ms at 300,000 chunks. Those and the dead are read through their partial indexes and
-- sorted (`+` keeps SQLite from reading (queue_id, seq) in order instead); a LIMIT of 0 (not a
-- WHERE term, which SQLite tests on each row) runs only the branch the status wants.
SELECT * FROM (
    SELECT * FROM chunks
    WHERE status = 'processing'
      AND (:queue_id IS NULL OR queue_id = :queue_id)
      AND (:category IS NULL OR last_category = :category)
    ORDER BY +queue_id, +seq
    LIMIT CASE WHEN :status = 'processing' THEN :limit ELSE 0 END)
UNION ALL
SELECT * FROM (
    SELECT * FROM chunks
    WHERE status = 'dead'
      AND (:queue_id IS NULL OR queue_id = :queue_id)
      AND (:category IS NULL OR last_category = :category)
    ORDER BY +queue_id, +seq
    LIMIT CASE WHEN :status = 'dead' THEN :limit ELSE 0 END)
UNION ALL
SELECT * FROM (
    SELECT * FROM chunks
    WHERE (:queue_id IS NULL OR queue_id = :queue_id)
      AND (:status IS NULL OR status = :status)
      AND (:category IS NULL OR last_category = :category)
    ORDER BY queue_id, seq
    LIMIT CASE WHEN :status IN ('processing', 'dead') THEN 0 ELSE :limit END)
ORDER BY queue_id, seq;

-- claim_chunks --
-- Atomically lease up to :limit runnable chunks: pending, due, in an active queue of a kind this worker handles, not in :exclude, whose dependency is neither limited nor gated (those are claimed by claim_chunks_of under the dependency's row lock), of a tenant below its in-flight quota; first the lower-priority chunks older than :aging_s, then by priority and each chunk's place in the fair order.
-- Both lanes read an index in order and stop after :limit (docs/tenants.md): the fair order
-- was fixed when the chunks were enqueued (fair_key, index chunks_fair), and the aged lane
-- visits each lower priority level once (levels) through chunks_runnable. A tenant with room
-- for fewer chunks than the candidates gets only its room (ranked.nth).
-- A worker with no queue to claim from (no active queue of its kinds, or each one behind a
-- limited dependency) runs neither lane: each read the whole backlog in order for nothing. A
-- LIMIT of 0 ends a lane before its first row (a WHERE term, even a constant one, is tested
-- on each row).
UPDATE chunks
SET status = 'processing', attempts = attempts + 1, lease_token = :token,
    lease_expires_at = NOW() + :lease_s, worker_id = :worker_id, updated_at = NOW()
WHERE id IN (
    WITH RECURSIVE levels(p) AS (
        SELECT MAX(priority) FROM chunks WHERE status = 'pending'
        UNION ALL
        SELECT (SELECT MAX(c.priority) FROM chunks c
                WHERE c.status = 'pending' AND c.priority < l.p)
        FROM levels l WHERE l.p IS NOT NULL
    ),
    runnable(id) AS (
        SELECT q.id FROM queues q
        WHERE q.status = 'active' AND q.kind IN (SELECT value FROM json_each(:kinds))
          AND q.id NOT IN (SELECT value FROM json_each(:exclude))
          AND (:queue_id IS NULL OR q.id = :queue_id)
          -- Limited (a cap on connections or a rate) as deps_special, Limits.any and, on
          -- PostgreSQL, chunksync_claim_group() say: test_dependency_limited holds them together.
          AND (q.dependency IS NULL OR q.dependency NOT IN (
              SELECT d.name FROM dependencies d
              WHERE d.connections IS NOT NULL OR d.rate_units IS NOT NULL OR d.flow <> 'ok'))
    ),
-- include tenant_room --
    , aged AS (
        SELECT c.id, c.tenant, 0 AS lane, c.created_at AS k1, 0.0 AS k2
        FROM levels l JOIN chunks c ON c.priority = l.p
        WHERE l.p < (SELECT MAX(p) FROM levels)
          AND c.status = 'pending' AND c.created_at <= NOW() - :aging_s
          AND c.run_after <= NOW()
          AND c.queue_id IN runnable
          AND c.tenant NOT IN (SELECT tenant FROM room WHERE n <= 0)
        ORDER BY c.created_at
        LIMIT CASE WHEN EXISTS (SELECT 1 FROM runnable) THEN :limit ELSE 0 END
    ),
    fair AS (
        SELECT c.id, c.tenant, 1 AS lane, -c.priority AS k1, c.fair_key AS k2
        FROM chunks c INDEXED BY chunks_fair  -- in order, stopping at :limit: never a sort of the backlog
        WHERE c.status = 'pending' AND c.run_after <= NOW()
          AND c.queue_id IN runnable
          AND c.tenant NOT IN (SELECT tenant FROM room WHERE n <= 0)
        ORDER BY c.priority DESC, c.fair_key
        LIMIT CASE WHEN EXISTS (SELECT 1 FROM runnable) THEN :limit ELSE 0 END
    ),
    ranked AS (
        SELECT o.id, o.lane, o.k1, o.k2, r.n AS room,
               row_number() OVER (PARTITION BY o.tenant ORDER BY o.lane, o.k1, o.k2) AS nth
        FROM (SELECT * FROM aged
              UNION ALL
              SELECT * FROM fair WHERE fair.id NOT IN (SELECT id FROM aged)) o
        LEFT JOIN room r ON r.tenant = o.tenant
    )
    SELECT id FROM ranked WHERE room IS NULL OR nth <= room
    ORDER BY lane, k1, k2
    LIMIT :limit)
RETURNING *;

-- heartbeat_chunk --
-- Extend one chunk's lease, fenced by its lease token; optionally save a checkpoint.
UPDATE chunks
SET lease_expires_at = NOW() + :lease_s, updated_at = NOW(),
    checkpoint = COALESCE(:checkpoint, checkpoint),
    items_processed = COALESCE(:items, items_processed)
WHERE id = :id AND lease_token = :token AND status = 'processing';

-- extend_worker_leases --
-- Extend the leases of the chunks a live worker holds (its heartbeat), found by their ids.
UPDATE chunks SET lease_expires_at = NOW() + :lease_s
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'processing'
  AND worker_id = :worker_id AND lease_token IN (SELECT value FROM json_each(:tokens));

-- finish_chunks --
-- Record the results of a batch of attempts (a JSON array of rows by position), each row fenced by its own lease token; returns the chunks whose result was written (the others lost their lease). A chunk back to pending comes with its new place in the fair order (chunksync.tenants.places).
UPDATE chunks
SET status = r.status,
    run_after = NOW() + r.delay_s,
    attempts = chunks.attempts + r.attempts_delta,
    deferrals = chunks.deferrals + r.deferrals_delta,
    stress_retries = chunks.stress_retries + r.stress_delta,
    last_category = COALESCE(r.category, chunks.last_category),
    last_error = COALESCE(r.message, chunks.last_error),
    dead_reason = r.dead_reason,
    items_processed = r.items,
    crash_count = 0,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    finished_at = CASE WHEN r.status IN ('completed', 'dead', 'cancelled') THEN NOW() END,
    fair_key = COALESCE(r.fair_key, chunks.fair_key),
    updated_at = NOW()
FROM (
    SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS token,
           json_extract(value, '$[2]') AS status, json_extract(value, '$[3]') AS delay_s,
           json_extract(value, '$[4]') AS attempts_delta, json_extract(value, '$[5]') AS deferrals_delta,
           json_extract(value, '$[6]') AS stress_delta, json_extract(value, '$[7]') AS category,
           json_extract(value, '$[8]') AS message, json_extract(value, '$[9]') AS dead_reason,
           json_extract(value, '$[10]') AS items, json_extract(value, '$[11]') AS fair_key
    FROM json_each(:reports)
) AS r
WHERE chunks.id = r.id AND chunks.lease_token = r.token AND chunks.status = 'processing'
RETURNING chunks.id AS id;

-- insert_attempts --
-- Attempt health metrics of a batch, run once per row (Session.execute_rows), its values in the order of PostgreSQL's compact form of log_chunk_health_metrics; each ends now, by the database clock.
INSERT INTO attempts (chunk_id, queue_id, tenant, worker_id, attempt, started_at, finished_at,
                      processing_s, chunk_size, items_processed, items_per_s, efficiency, outcome,
                      category, rule, message, retry_delay_s, rss_bytes)
VALUES (?1, ?2, ?3, ?4, ?5, NOW() - ?6, NOW(), ?6, ?8, ?9, ?10, ?11, ?7, ?12, ?13, ?14, ?15, ?16);

-- insert_attempt --
-- One row of attempt health metrics; it ends now, by the database clock.
INSERT INTO attempts (chunk_id, queue_id, tenant, worker_id, attempt, started_at, finished_at,
                      processing_s, chunk_size, items_processed, items_per_s, efficiency, outcome,
                      category, rule, message, retry_delay_s, rss_bytes)
VALUES (:chunk_id, :queue_id, :tenant, :worker_id, :attempt, NOW() - :processing_s, NOW(),
        :processing_s, :chunk_size, :items_processed, :items_per_s, :efficiency, :outcome,
        :category, :rule, :message, :retry_delay_s, :rss_bytes);

-- insert_audit --
-- One audit entry: an automatic recovery or a manual intervention.
INSERT INTO audit_log (at, action, actor, reason, chunk_id, queue_id, details)
VALUES (NOW(), :action, :actor, :reason, :chunk_id, :queue_id, :details);

-- list_audit --
-- Audit entries, newest first, optionally for one chunk or queue.
SELECT * FROM audit_log
WHERE (:chunk_id IS NULL OR chunk_id = :chunk_id)
  AND (:queue_id IS NULL OR queue_id = :queue_id)
ORDER BY id DESC
LIMIT :limit;

-- list_attempts --
-- Attempt history of one chunk, oldest first.
SELECT * FROM attempts WHERE chunk_id = :chunk_id ORDER BY id;

-- mark_workers_lost --
-- Workers that stopped heartbeating are lost.
UPDATE workers SET status = 'lost'
WHERE status IN ('running', 'stopping') AND last_heartbeat_at < NOW() - :worker_timeout_s
RETURNING id;

-- find_stuck --
-- Processing chunks whose lease expired or whose worker is gone.
SELECT * FROM chunks
WHERE status = 'processing'
  AND (lease_expires_at < NOW()
       OR worker_id IN (SELECT id FROM workers WHERE status IN ('lost', 'stopped')))
ORDER BY lease_expires_at
LIMIT :limit;

-- recover_chunk --
-- Put a stuck chunk back (pending) or dead, fenced by the lease token it was found with.
UPDATE chunks
SET status = :status, crash_count = crash_count + 1, run_after = NOW() + :delay_s,
    last_category = 'timeout', last_error = :message, dead_reason = :dead_reason,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    finished_at = CASE WHEN :status = 'dead' THEN NOW() END, updated_at = NOW()
WHERE id = :id AND lease_token = :token AND status = 'processing';

-- revive_chunk --
-- Operator retry: a dead chunk runs again with a fresh attempt count.
UPDATE chunks
SET status = 'pending', attempts = 0, crash_count = 0, stress_retries = 0, deferrals = 0,
    dead_reason = NULL, run_after = NOW(), finished_at = NULL, updated_at = NOW()
WHERE id = :id AND status = 'dead';

-- cancel_chunk --
-- Cancel one chunk that is not yet terminal.
UPDATE chunks
SET status = 'cancelled', lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    finished_at = NOW(), updated_at = NOW()
WHERE id = :id AND status IN ('pending', 'processing');

-- cancel_queue_chunks --
-- Cancel every chunk of a queue that is not yet terminal.
UPDATE chunks
SET status = 'cancelled', lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    finished_at = NOW(), updated_at = NOW()
WHERE queue_id = :queue_id AND status IN ('pending', 'processing') AND status <> 'completed';

-- release_chunk --
-- Put a processing chunk back to pending now; :refund gives the attempt back (1) or not (0).
UPDATE chunks
SET status = 'pending', attempts = MAX(0, attempts - :refund), run_after = NOW(),
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = NOW()
WHERE id = :id AND status = 'processing' AND (:token IS NULL OR lease_token = :token);

-- release_chunks --
-- Put processing chunks back to pending now, each while it is still under one of the given
-- lease tokens (a stopping worker's unrun chunks, in one statement); :refund gives the attempt
-- back (1) or not (0). Returns the ids of those released.
UPDATE chunks
SET status = 'pending', attempts = MAX(0, attempts - :refund), run_after = NOW(),
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = NOW()
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'processing'
  AND lease_token IN (SELECT value FROM json_each(:tokens))
RETURNING id;

-- chunks_of_worker --
-- The chunks a worker holds.
SELECT * FROM chunks WHERE status = 'processing' AND worker_id = :worker_id ORDER BY seq;

-- register_worker --
-- A worker announces itself.
INSERT INTO workers (id, host, pid, status, concurrency, started_at, last_heartbeat_at)
VALUES (:id, :host, :pid, 'running', :concurrency, NOW(), NOW());

-- worker_heartbeat --
-- A live worker says it is alive (a worker marked lost comes back as running).
UPDATE workers SET last_heartbeat_at = NOW(), status = :status
WHERE id = :id AND status <> 'stopped';

-- worker_stopped --
-- A worker stopped cleanly.
UPDATE workers SET status = 'stopped', stopped_at = NOW(), last_heartbeat_at = NOW()
WHERE id = :id;

-- get_worker --
-- One worker.
SELECT * FROM workers WHERE id = :id;

-- list_workers --
-- Workers, most recently seen first.
SELECT * FROM workers ORDER BY last_heartbeat_at DESC LIMIT :limit;

-- now --
-- The database clock.
SELECT NOW() AS now;

-- health_queue_timed_count --
-- How many attempts of one queue have a processing time (every outcome but stuck, held).
SELECT COUNT(*) AS n FROM attempts WHERE queue_id = :queue_id AND outcome NOT IN ('stuck', 'held');

-- health_queue_processing_at --
-- The processing times at one rank and the next (for an interpolated percentile).
SELECT processing_s FROM attempts
WHERE queue_id = :queue_id AND outcome NOT IN ('stuck', 'held')
ORDER BY processing_s
LIMIT 2 OFFSET :offset;

-- health_system --
-- Workers, queues and backlog right now. The backlog is counted per active queue through
-- chunks_queue_open (queue_id, status), an index that holds every column it reads; the oldest
-- pending chunk is the first of each priority in chunks_runnable (created_at order) whose queue
-- is active. Both
-- were one join over every pending chunk, looking each up in the table (10 ms each at 10,000).
SELECT
    (SELECT COUNT(*) FROM workers WHERE status IN ('running', 'stopping')
        AND last_heartbeat_at >= NOW() - :worker_timeout_s) AS workers_alive,
    (SELECT COUNT(*) FROM workers WHERE status = 'lost'
        OR (status IN ('running', 'stopping') AND last_heartbeat_at < NOW() - :worker_timeout_s))
        AS workers_lost,
    (SELECT COUNT(*) FROM queues WHERE status = 'active') AS active_queues,
    (SELECT COALESCE(SUM((SELECT COUNT(*) FROM chunks c
                          WHERE c.queue_id = q.id AND c.status = 'pending' AND c.status <> 'completed')), 0)
        FROM queues q WHERE q.status = 'active') AS backlog,
    NOW() - (WITH RECURSIVE levels(p) AS (
                 SELECT MAX(priority) FROM chunks WHERE status = 'pending'
                 UNION ALL
                 SELECT (SELECT MAX(priority) FROM chunks
                         WHERE status = 'pending' AND priority < levels.p)
                 FROM levels WHERE levels.p IS NOT NULL)
             SELECT MIN((SELECT c.created_at FROM chunks c
                         WHERE c.status = 'pending' AND c.priority = l.p
                           AND c.queue_id IN (SELECT id FROM queues WHERE status = 'active')
                         ORDER BY c.created_at LIMIT 1))
             FROM levels l WHERE l.p IS NOT NULL) AS oldest_pending_age_s,
    (SELECT COUNT(*) FROM chunks WHERE status = 'processing' AND lease_expires_at < NOW())
        AS stuck,
    (SELECT COUNT(*) FROM chunks WHERE status = 'dead') AS dead,
    (SELECT COUNT(*) FROM audit_log WHERE action = 'recover_stuck' AND at >= NOW() - :window_s)
        AS recoveries;

-- demo_attempts --
-- Every attempt of one queue, for the demo's report.
SELECT outcome, category, retry_delay_s FROM attempts WHERE queue_id = :queue_id ORDER BY id;
