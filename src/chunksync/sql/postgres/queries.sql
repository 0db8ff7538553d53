-- Named queries for the PostgreSQL backend: the same names, parameters and result columns as
-- SQLite's (tested). Each block: `-- name --`, a one-line description, the SQL.
-- `NOW()` stands for the statement's time in seconds since the epoch; the loader expands it.
-- Parameters are named (:name) and cast where their type matters; lists arrive as arrays.
-- Ids typed by a user go through chunksync_try_uuid(), so a name never fails a uuid cast.

-- insert_queue --
-- Create one sync queue.
INSERT INTO queues (id, tenant, name, source, kind, status, priority, policy, max_attempts,
                    created_at, updated_at)
VALUES (:id::uuid, :tenant, :name, :source, :kind, 'active', :priority, :policy, :max_attempts,
        NOW(), NOW())
RETURNING *;

-- insert_chunks --
-- Add a batch of a queue's chunks ([id, seq, payload's JSON text, fair_key] each), at their places in the fair order: one statement a batch (100,000 chunks: 2.9 s, against 6.2 s one INSERT a chunk).
-- Each in its claim group (migrations 0025 and 0027: by the queue's status and dependency), read
-- once for the batch; the insert's trigger checks it under the queue's lock, so a change of the
-- dependency's limits or a pause meanwhile is not missed.
INSERT INTO chunks (id, queue_id, tenant, seq, payload, priority, max_attempts, run_after,
                    created_at, updated_at, fair_key, claim_group)
SELECT (e->>0)::uuid, :queue_id::uuid, :tenant, (e->>1)::int, (e->>2)::jsonb, :priority,
       :max_attempts, NOW(), NOW(), NOW(), (e->>3)::float8,
       (SELECT chunksync_queue_claim_group(q.status, q.id, q.dependency) FROM queues q
        WHERE q.id = :queue_id::uuid)
FROM jsonb_array_elements(:batch::jsonb) AS e;

-- next_seq --
-- The next free sequence number in a queue.
SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM chunks WHERE queue_id = :queue_id::uuid;

-- get_queue --
-- One queue with its chunk totals by status: its completed chunks are its count of chunks (queues.n_chunks, migration 0022) less the others, which chunks_queue_open holds.
SELECT q.*, t.*
FROM queues q
-- include queue_totals --
WHERE q.id = chunksync_try_uuid(:id::text) OR (q.name = :id::text AND q.tenant = :tenant::text);

-- get_queue_row --
-- One queue's row by id, without its chunk totals (a worker's look at a queue: counting a large queue's chunks took 0.1 s).
SELECT q.* FROM queues q
WHERE q.id = chunksync_try_uuid(:id::text);

-- list_queues --
-- Every queue (optionally only one status) with its chunk totals, newest first.
SELECT q.*, t.*
FROM queues q
-- include queue_totals --
WHERE (:status::text IS NULL OR q.status = :status::text)
ORDER BY q.created_at DESC, q.name;

-- list_queues_page --
-- A page of the queues, newest first, with their chunk totals (counted for the page's queues
-- only), and how many queues there are in all.
SELECT q.*, t.*, (SELECT COUNT(*) FROM queues) AS n_queues
FROM (SELECT * FROM queues ORDER BY created_at DESC, name LIMIT :limit OFFSET :offset) q
-- include queue_totals --
ORDER BY q.created_at DESC, q.name;

-- count_queues --
-- How many queues there are.
SELECT COUNT(*) AS n_queues FROM queues;

-- set_queue_status --
-- Move a queue from one of the allowed statuses (an array) to a new one. A pause or a resume also starts its chunks' walk to the claim group the new status calls for (migration 0027: regroup_seq, from the first chunk; chunksync.deps.regroup.move_queue).
UPDATE queues SET status = :status, updated_at = NOW(),
    regroup_seq = CASE WHEN (status = 'paused') <> (:status::text = 'paused')
                            AND :status::text IN ('paused', 'active')
                       THEN -2147483648 ELSE regroup_seq END
WHERE id = :id::uuid AND status = ANY(:allowed::text[]);

-- queue_open_chunk --
-- Whether a queue still has a chunk pending or processing: read before complete_queue_if_done,
-- which only a queue without one needs (on SQLite it takes the write lock, even to change nothing).
SELECT 1 AS open FROM chunks
WHERE queue_id = :id::uuid AND status IN ('pending', 'processing')
LIMIT 1;

-- complete_queue_if_done --
-- An active queue whose chunks are all terminal becomes completed, or failed if any chunk is dead.
UPDATE queues
SET status = CASE WHEN EXISTS (SELECT 1 FROM chunks WHERE queue_id = :id::uuid AND status = 'dead')
                  THEN 'failed' ELSE 'completed' END,
    updated_at = NOW()
WHERE id = :id::uuid AND status = 'active'
  AND NOT EXISTS (SELECT 1 FROM chunks WHERE queue_id = :id::uuid
                  AND status IN ('pending', 'processing'));

-- chunk_statistics_stale --
-- Whether a bulk insert of :added chunks outgrew what the planner knows of the table: never analyzed (reltuples is -1), or :added a tenth of the rows it knows or more. Fewer change little of its picture, and each ANALYZE costs ~0.2 s whatever was added (a sample of 30,000 rows).
SELECT c.reltuples < 0 OR :added::float8 >= c.reltuples / 10 AS stale
FROM pg_class c WHERE c.oid = 'chunks'::regclass;

-- refresh_chunk_statistics --
-- After a bulk insert of chunks that outgrew the planner's statistics (chunk_statistics_stale):
-- the planner needs to know that most chunks are pending to claim through chunks_runnable
-- (autovacuum's ANALYZE may come a minute later). SKIP_LOCKED: never a wait for a VACUUM or
-- ANALYZE of chunks under way (autovacuum's, which the wait would cancel), which refreshes
-- the statistics anyway.
ANALYZE (SKIP_LOCKED) chunks;

-- reopen_queue --
-- A finished queue that gets a chunk back becomes active again.
UPDATE queues SET status = 'active', updated_at = NOW()
WHERE id = :id::uuid AND status IN ('completed', 'failed');

-- get_chunk --
-- One chunk.
SELECT * FROM chunks WHERE id = chunksync_try_uuid(:id::text);

-- list_chunks --
-- Chunks filtered by queue, status and last error category (each optional), in queue order.
SELECT * FROM chunks
WHERE (:queue_id::text IS NULL OR queue_id = chunksync_try_uuid(:queue_id::text))
  AND (:status::text IS NULL OR status = :status::text)
  AND (:category::text IS NULL OR last_category = :category::text)
ORDER BY queue_id, seq
LIMIT :limit;

-- claim_chunks --
-- Atomically lease up to :limit runnable chunks: pending, due, in an active queue of a kind this worker handles, not in :exclude, whose dependency is neither limited nor gated (those are claimed by claim_chunks_of under the dependency's row lock), of a tenant below its in-flight quota; first the lower-priority chunks older than :aging_s, then by priority and each chunk's place in the fair order.
-- Both lanes read an index in order and stop after :limit (docs/tenants.md): the fair order
-- was fixed when the chunks were enqueued (fair_key), and the aged lane visits each lower
-- priority level once (levels: one index probe per level) through chunks_runnable. A tenant
-- with room for fewer chunks than the candidates gets only its room (ranked.nth).
-- The queues are an array computed once (an InitPlan), not a join: with a join, or with no
-- statistics on chunks, the planner fetched and sorted every pending chunk (10 ms with 20,000
-- pending) instead of reading the index in order and stopping after :limit (0.1 ms).
-- The picked ids are an array too, looked up through the primary key: joined (`FROM picked`),
-- the planner hashed the whole table to find them (4.4 of 6.7 ms for 200 of 20,000 chunks).
-- The tenants at their quota are excluded as `(c.tenant || '')`, an expression without
-- statistics: on the column itself, with one tenant (ndistinct 1) the planner took any array
-- to hold it, estimated 1 row left, and scanned and sorted every pending chunk (18 of 30 ms).
-- A worker with no queue to claim from (no active queue of its kinds: another fleet's work; or
-- each one behind a limited dependency, which claim_chunks_of claims) runs neither lane: each
-- read the whole backlog in order for nothing, 96-170 ms a claim at 100,000 pending chunks.
WITH RECURSIVE levels(p) AS (
    SELECT MAX(priority) FROM chunks WHERE status = 'pending' AND claim_group = ''
    UNION ALL
    SELECT (SELECT MAX(c.priority) FROM chunks c
            WHERE c.status = 'pending' AND c.claim_group = '' AND c.priority < l.p)
    FROM levels l WHERE l.p IS NOT NULL
),
held AS MATERIALIZED (
    -- The dependencies whose queues claim_chunks_of claims: limited (a cap on connections or a
    -- rate) as deps_special, Limits.any and chunksync_claim_group() say (test_dependency_limited
    -- holds them together), or gated. Rows, for a hashed NOT IN: an array compared with each
    -- queue took 23 ms a claim at 2,000 capped accounts' queues.
    SELECT d.name FROM dependencies d
    WHERE d.connections IS NOT NULL OR d.rate_units IS NOT NULL OR d.flow <> 'ok'
),
runnable AS MATERIALIZED (
    -- The queues it may claim from (runnable_queue), as an array when there are few; when there
    -- are more than 500, `few` is false and each chunk read checks its own queue by its key
    -- instead (never with :queue_id, one queue at most, so that check leaves it out). The array
    -- cost ~0.6 us per active queue a claim, in building it and in comparing each chunk read
    -- with it (50,000 active queues: 39.6 ms a claim of 100, against 3.4 now), and a probe a
    -- chunk read costs more than the array when the queues are few (a drain's).
    SELECT ids, cardinality(ids) <= 500 AS few FROM (
        SELECT ARRAY(
            SELECT q.id FROM queues q
            WHERE (:queue_id::uuid IS NULL OR q.id = :queue_id::uuid) AND
-- include runnable_queue --
            LIMIT 501) AS ids
        -- one array, not one for each column
        OFFSET 0) r
),
-- include tenant_room --
, aged AS (
    SELECT a.* FROM levels l
    CROSS JOIN LATERAL (
        SELECT c.id, c.tenant, 0 AS lane, c.created_at AS k1, 0::float8 AS k2
        FROM chunks c
        WHERE c.priority = l.p AND c.status = 'pending'
          AND c.created_at <= NOW() - :aging_s::float8 AND c.run_after <= NOW()
          AND CASE WHEN (SELECT few FROM runnable)
                   THEN c.queue_id = ANY((SELECT ids FROM runnable)::uuid[])
                   -- a scalar subquery, a probe by the key (NULL, false, for no queue): as
                   -- EXISTS, the planner hashed every runnable queue instead (50,000: 8 ms)
                   ELSE (SELECT
-- include runnable_queue --
                         FROM queues q WHERE q.id = c.queue_id) END
          AND NOT ((c.tenant || '') = ANY(ARRAY(SELECT tenant FROM room WHERE n <= 0)))
        ORDER BY c.created_at
        LIMIT :limit
        FOR UPDATE OF c SKIP LOCKED) a
    WHERE l.p < (SELECT MAX(p) FROM levels) AND cardinality((SELECT ids FROM runnable)) > 0
    ORDER BY a.k1
    LIMIT :limit
),
fair AS (
    -- One level at a time, highest first (levels is generated in that order), each read in
    -- fair_key order through chunks_claim_fair with its priority fixed: over the whole table at
    -- once, a planner that misjudged the backlog (just enqueued, not analyzed yet) sorted all of
    -- it. Only the chunks of claim group '' (migration 0025): a limited dependency's backlog,
    -- which claim_chunks_of claims, is not in the way.
    SELECT f.* FROM levels l
    CROSS JOIN LATERAL (
        SELECT c.id, c.tenant, 1 AS lane, -c.priority::float8 AS k1, c.fair_key AS k2
        FROM chunks c
        WHERE c.claim_group = '' AND c.priority = l.p AND c.status = 'pending'
          AND c.run_after <= NOW()
          AND CASE WHEN (SELECT few FROM runnable)
                   THEN EXISTS (SELECT 1 FROM runnable r WHERE c.queue_id = ANY(r.ids))
                   -- a scalar subquery, a probe by the key (NULL, false, for no queue): as
                   -- EXISTS, the planner hashed every runnable queue instead (50,000: 8 ms)
                   ELSE (SELECT
-- include runnable_queue --
                         FROM queues q WHERE q.id = c.queue_id) END
          AND NOT ((c.tenant || '') = ANY(ARRAY(SELECT tenant FROM room WHERE n <= 0)))
        ORDER BY c.fair_key
        LIMIT :limit
        FOR UPDATE OF c SKIP LOCKED) f
    WHERE l.p IS NOT NULL AND cardinality((SELECT ids FROM runnable)) > 0
    LIMIT :limit
),
ranked AS (
    SELECT o.id, o.lane, o.k1, o.k2, r.n AS room,
           row_number() OVER (PARTITION BY o.tenant ORDER BY o.lane, o.k1, o.k2) AS nth
    FROM (SELECT * FROM aged
          UNION ALL
          SELECT * FROM fair WHERE fair.id NOT IN (SELECT id FROM aged)) o
    LEFT JOIN room r ON r.tenant = o.tenant
),
picked AS (
    SELECT id FROM ranked WHERE room IS NULL OR nth <= room
    ORDER BY lane, k1, k2
    LIMIT :limit
)
UPDATE chunks c
SET status = 'processing', attempts = c.attempts + 1, lease_token = :token::uuid,
    lease_expires_at = NOW() + :lease_s::float8, worker_id = :worker_id, updated_at = NOW()
WHERE c.id = ANY(ARRAY(SELECT id FROM picked))
-- Each column of a Chunk and its place in the fair order, read in binary form
-- (Session.fetch_table): the uuids and JSON as text, which psycopg reads in C (a uuid's 16
-- bytes would take a Python loader).
RETURNING c.id::text AS id, c.queue_id::text AS queue_id, c.tenant, c.seq,
          c.payload::text AS payload, c.status, c.priority, c.attempts, c.max_attempts,
          c.run_after, c.lease_token::text AS lease_token, c.lease_expires_at, c.worker_id,
          c.last_category, c.last_error, c.dead_reason, c.items_processed,
          c.checkpoint::text AS checkpoint, c.crash_count, c.stress_retries, c.deferrals,
          c.created_at, c.updated_at, c.fair_key;

-- heartbeat_chunk --
-- Extend one chunk's lease, fenced by its lease token; optionally save a checkpoint.
UPDATE chunks
SET lease_expires_at = NOW() + :lease_s::float8, updated_at = NOW(),
    checkpoint = COALESCE(:checkpoint::jsonb, checkpoint),
    items_processed = COALESCE(:items::integer, items_processed)
WHERE id = :id::uuid AND lease_token = :token::uuid AND status = 'processing';

-- extend_worker_leases --
-- Extend the leases of the chunks a live worker holds (its heartbeat), found by their ids.
UPDATE chunks SET lease_expires_at = NOW() + :lease_s::float8
WHERE id = ANY(:ids::uuid[]) AND status = 'processing' AND worker_id = :worker_id
  AND lease_token = ANY(:tokens::uuid[]);

-- finish_chunks --
-- Record the results of a batch of attempts (a JSON array of rows by position), each row fenced by its own lease token; returns the chunks whose result was written (the others lost their lease). A chunk back to pending comes with its new place in the fair order (chunksync.tenants.places).
WITH r AS (
    SELECT (e->>0)::uuid AS id, (e->>1)::uuid AS token, e->>2 AS status,
           (e->>3)::float8 AS delay_s, (e->>4)::integer AS attempts_delta,
           (e->>5)::integer AS deferrals_delta, (e->>6)::integer AS stress_delta,
           e->>7 AS category, e->>8 AS message, e->>9 AS dead_reason, (e->>10)::integer AS items,
           (e->>11)::float8 AS fair_key
    FROM jsonb_array_elements(:reports::jsonb) AS e
)
UPDATE chunks c
SET status = r.status,
    run_after = NOW() + r.delay_s,
    attempts = c.attempts + r.attempts_delta,
    deferrals = c.deferrals + r.deferrals_delta,
    stress_retries = c.stress_retries + r.stress_delta,
    last_category = COALESCE(r.category, c.last_category),
    last_error = COALESCE(r.message, c.last_error),
    dead_reason = r.dead_reason,
    items_processed = r.items,
    crash_count = 0,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    finished_at = CASE WHEN r.status IN ('completed', 'dead', 'cancelled') THEN NOW() END,
    fair_key = COALESCE(r.fair_key, c.fair_key),
    updated_at = NOW()
FROM r
WHERE c.id = r.id AND c.lease_token = r.token AND c.status = 'processing'
RETURNING c.id::text AS id;

-- insert_attempts --
-- Attempt health metrics of a batch (Session.execute_rows: a JSON array of rows in the compact form of log_chunk_health_metrics(jsonb), its values in that order); each ends now, by the database clock.
-- The function's own INSERT, without its checks of each outcome and category (two more passes
-- over the batch: the worker's come from its enums) or the ids it returns.
INSERT INTO attempts (chunk_id, queue_id, tenant, worker_id, attempt, started_at, finished_at,
                      processing_s, chunk_size, items_processed, items_per_s, efficiency, outcome,
                      category, rule, message, retry_delay_s, rss_bytes)
SELECT (e ->> 0)::uuid, (e ->> 1)::uuid, e ->> 2, e ->> 3, (e ->> 4)::integer,
       NOW() - (e ->> 5)::float8, NOW(), (e ->> 5)::float8,
       COALESCE((e ->> 7)::integer, 0), COALESCE((e ->> 8)::integer, 0), (e ->> 9)::float8,
       (e ->> 10)::float8, e ->> 6, e ->> 11, e ->> 12, e ->> 13, (e ->> 14)::float8,
       (e ->> 15)::bigint
FROM jsonb_array_elements(:batch::jsonb) AS e;

-- insert_attempt --
-- One row of attempt health metrics; it ends now, by the database clock.
INSERT INTO attempts (chunk_id, queue_id, tenant, worker_id, attempt, started_at, finished_at,
                      processing_s, chunk_size, items_processed, items_per_s, efficiency, outcome,
                      category, rule, message, retry_delay_s, rss_bytes)
VALUES (:chunk_id::uuid, :queue_id::uuid, :tenant, :worker_id, :attempt,
        NOW() - :processing_s::float8, NOW(), :processing_s::float8, :chunk_size,
        :items_processed, :items_per_s::float8, :efficiency::float8, :outcome, :category, :rule,
        :message, :retry_delay_s::float8, :rss_bytes::bigint);

-- insert_audit --
-- One audit entry: an automatic recovery or a manual intervention.
INSERT INTO audit_log (at, action, actor, reason, chunk_id, queue_id, details)
VALUES (NOW(), :action, :actor, :reason, :chunk_id::uuid, :queue_id::uuid, :details::jsonb);

-- list_audit --
-- Audit entries, newest first, optionally for one chunk or queue.
SELECT * FROM audit_log
WHERE (:chunk_id::text IS NULL OR chunk_id = chunksync_try_uuid(:chunk_id::text))
  AND (:queue_id::text IS NULL OR queue_id = chunksync_try_uuid(:queue_id::text))
ORDER BY id DESC
LIMIT :limit;

-- list_attempts --
-- Attempt history of one chunk, oldest first.
SELECT * FROM attempts WHERE chunk_id = chunksync_try_uuid(:chunk_id::text) ORDER BY id;

-- mark_workers_lost --
-- Workers that stopped heartbeating are lost.
UPDATE workers SET status = 'lost'
WHERE status IN ('running', 'stopping') AND last_heartbeat_at < NOW() - :worker_timeout_s::float8
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
SET status = :status::text, crash_count = crash_count + 1, run_after = NOW() + :delay_s::float8,
    last_category = 'timeout', last_error = :message::text, dead_reason = :dead_reason::text,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    finished_at = CASE WHEN :status::text = 'dead' THEN NOW() END, updated_at = NOW()
WHERE id = :id::uuid AND lease_token = :token::uuid AND status = 'processing';

-- revive_chunk --
-- Operator retry: a dead chunk runs again with a fresh attempt count.
UPDATE chunks
SET status = 'pending', attempts = 0, crash_count = 0, stress_retries = 0, deferrals = 0,
    dead_reason = NULL, run_after = NOW(), finished_at = NULL, updated_at = NOW()
WHERE id = :id::uuid AND status = 'dead';

-- cancel_chunk --
-- Cancel one chunk that is not yet terminal.
UPDATE chunks
SET status = 'cancelled', lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    finished_at = NOW(), updated_at = NOW()
WHERE id = :id::uuid AND status IN ('pending', 'processing');

-- cancel_queue_chunks --
-- Cancel every chunk of a queue that is not yet terminal.
UPDATE chunks
SET status = 'cancelled', lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    finished_at = NOW(), updated_at = NOW()
WHERE queue_id = :queue_id::uuid AND status IN ('pending', 'processing');

-- release_chunk --
-- Put a processing chunk back to pending now; :refund gives the attempt back (1) or not (0).
UPDATE chunks
SET status = 'pending', attempts = GREATEST(0, attempts - :refund::integer), run_after = NOW(),
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = NOW()
WHERE id = :id::uuid AND status = 'processing'
  AND (:token::uuid IS NULL OR lease_token = :token::uuid);

-- release_chunks --
-- Put processing chunks back to pending now, each while it is still under one of the given
-- lease tokens (a stopping worker's unrun chunks, in one statement); :refund gives the attempt
-- back (1) or not (0). Returns the ids of those released.
UPDATE chunks
SET status = 'pending', attempts = GREATEST(0, attempts - :refund::integer), run_after = NOW(),
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = NOW()
WHERE id = ANY(:ids::uuid[]) AND status = 'processing'
  AND lease_token = ANY(:tokens::uuid[])
RETURNING id;

-- chunks_of_worker --
-- The chunks a worker holds.
SELECT * FROM chunks WHERE status = 'processing' AND worker_id = :worker_id::text ORDER BY seq;

-- register_worker --
-- A worker announces itself.
INSERT INTO workers (id, host, pid, status, concurrency, started_at, last_heartbeat_at)
VALUES (:id, :host, :pid, 'running', :concurrency, NOW(), NOW());

-- worker_heartbeat --
-- A live worker says it is alive (a worker marked lost comes back as running).
UPDATE workers SET last_heartbeat_at = NOW(), status = :status::text
WHERE id = :id::text AND status <> 'stopped';

-- worker_stopped --
-- A worker stopped cleanly.
UPDATE workers SET status = 'stopped', stopped_at = NOW(), last_heartbeat_at = NOW()
WHERE id = :id::text;

-- get_worker --
-- One worker.
SELECT * FROM workers WHERE id = :id::text;

-- list_workers --
-- Workers, most recently seen first.
SELECT * FROM workers ORDER BY last_heartbeat_at DESC LIMIT :limit;

-- now --
-- The database clock.
SELECT NOW() AS now;

-- health_queue_timed_count --
-- How many attempts of one queue have a processing time (every outcome but stuck, held).
SELECT COUNT(*) AS n FROM attempts
WHERE queue_id = :queue_id::uuid AND outcome NOT IN ('stuck', 'held');

-- health_queue_processing_at --
-- The processing times at one rank and the next (for an interpolated percentile).
SELECT processing_s FROM attempts
WHERE queue_id = :queue_id::uuid AND outcome NOT IN ('stuck', 'held')
ORDER BY processing_s
LIMIT 2 OFFSET :offset;

-- health_system --
-- Workers, queues and backlog right now.
SELECT
    (SELECT COUNT(*) FROM workers WHERE status IN ('running', 'stopping')
        AND last_heartbeat_at >= NOW() - :worker_timeout_s::float8) AS workers_alive,
    (SELECT COUNT(*) FROM workers WHERE status = 'lost'
        OR (status IN ('running', 'stopping')
            AND last_heartbeat_at < NOW() - :worker_timeout_s::float8)) AS workers_lost,
    (SELECT COUNT(*) FROM queues WHERE status = 'active') AS active_queues,
    (SELECT COUNT(*) FROM chunks c JOIN queues q ON q.id = c.queue_id
        WHERE c.status = 'pending' AND q.status = 'active') AS backlog,
    NOW() - (SELECT MIN(c.created_at) FROM chunks c JOIN queues q ON q.id = c.queue_id
        WHERE c.status = 'pending' AND q.status = 'active') AS oldest_pending_age_s,
    (SELECT COUNT(*) FROM chunks WHERE status = 'processing' AND lease_expires_at < NOW())
        AS stuck,
    (SELECT COUNT(*) FROM chunks WHERE status = 'dead') AS dead,
    (SELECT COUNT(*) FROM audit_log WHERE action = 'recover_stuck'
        AND at >= NOW() - :window_s::float8) AS recoveries;

-- demo_attempts --
-- Every attempt of one queue, for the demo's report.
SELECT outcome, category, retry_delay_s FROM attempts WHERE queue_id = :queue_id::uuid ORDER BY id;
