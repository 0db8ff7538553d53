-- Named queries of `chunksync check` (chunksync/check.py): damage the server can see without the amcheck extension, then the chunk invariants. Each returns the offending rows with `n`, how many there are in all.

-- check_integrity --
-- Indexes the server marks invalid or not ready (an interrupted CREATE INDEX CONCURRENTLY) and tables it cannot count.
SELECT 'index ' || c.relname || ' is invalid' AS problem
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND NOT (i.indisvalid AND i.indisready);

-- check_foreign_keys --
-- The server enforces every foreign key: nothing to find (the query exists for the same check on both dialects).
SELECT NULL::text AS problem WHERE false;

-- check_status --
-- Chunks whose status is none of the five.
SELECT id, status, COUNT(*) OVER () AS n FROM chunks
WHERE status NOT IN ('pending', 'processing', 'completed', 'dead', 'cancelled')
ORDER BY id LIMIT :limit;

-- check_leases --
-- Chunks processing without a whole lease (token, expiry, worker), or holding one while not processing.
SELECT id, status, COUNT(*) OVER () AS n FROM chunks
WHERE (status = 'processing')
   <> (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL AND worker_id IS NOT NULL)
   OR (status <> 'processing' AND (lease_token IS NOT NULL OR worker_id IS NOT NULL))
ORDER BY id LIMIT :limit;

-- check_finished --
-- Chunks in a final state without a finish time, or unfinished with one.
SELECT id, status, COUNT(*) OVER () AS n FROM chunks
WHERE (status IN ('completed', 'dead', 'cancelled')) <> (finished_at IS NOT NULL)
ORDER BY id LIMIT :limit;

-- check_counters --
-- Chunks with a negative attempt, crash or deferral count.
SELECT id, status, COUNT(*) OVER () AS n FROM chunks
WHERE attempts < 0 OR crash_count < 0 OR deferrals < 0 OR stress_retries < 0
ORDER BY id LIMIT :limit;

-- check_orphans --
-- Chunks whose queue is gone.
SELECT c.id, c.status, COUNT(*) OVER () AS n FROM chunks c
LEFT JOIN queues q ON q.id = c.queue_id
WHERE q.id IS NULL
ORDER BY c.id LIMIT :limit;

-- check_attempt_rows --
-- Chunks counting more attempts than their attempt rows (those that spent one), operator releases and a running attempt account for.
SELECT c.id, c.status, COUNT(*) OVER () AS n FROM chunks c
WHERE c.attempts > (
        SELECT COUNT(*) FROM attempts a
        WHERE a.chunk_id = c.id AND a.outcome NOT IN ('deferred', 'held'))
      + (SELECT COUNT(*) FROM audit_log l WHERE l.chunk_id = c.id AND l.action = 'release_chunk')
      + (CASE WHEN c.status = 'processing' THEN 1 ELSE 0 END)
ORDER BY c.id LIMIT :limit;

-- check_queue_totals --
-- Queues whose count of chunks (queues.n_chunks, migration 0022) is not how many chunks they hold.
SELECT q.id, q.status, COUNT(*) OVER () AS n FROM queues q
WHERE q.n_chunks IS DISTINCT FROM (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id)
ORDER BY q.id LIMIT :limit;

-- check_claim_groups --
-- Chunks not completed in a claim group their queue does not call for (migrations 0025 and 0027: the paused group while it is paused, else its dependency's by its limits), with no move of its chunks under way (a dependency's claim_regroups, a queue's regroup_seq): no claim reads them. A paused queue's chunks may be anywhere (no claim takes them; a pause by code before 0027 leaves them where they were).
SELECT c.id, c.status, COUNT(*) OVER () AS n FROM chunks c JOIN queues q ON q.id = c.queue_id
WHERE c.status <> 'completed' AND q.status <> 'paused' AND q.regroup_seq IS NULL
  AND c.claim_group <> chunksync_queue_claim_group(q.status, q.id, q.dependency)
  AND NOT EXISTS (SELECT 1 FROM claim_regroups r WHERE r.dependency = q.dependency)
ORDER BY c.id LIMIT :limit;

-- check_claim_group_moves --
-- Chunks not completed that wait for a move to their claim group which no mover has taken on for ten minutes (claim_regroups: a maintenance leader goes on with one a minute after its mover stops, so none is running, or none sees every tenant's chunks; a queue paused or resumed ten minutes ago whose walk is still due: a leader goes on with it every turn).
SELECT c.id, c.status, COUNT(*) OVER () AS n FROM chunks c JOIN queues q ON q.id = c.queue_id
WHERE c.status <> 'completed'
  AND c.claim_group <> chunksync_queue_claim_group(q.status, q.id, q.dependency)
  AND (EXISTS (SELECT 1 FROM claim_regroups r
               WHERE r.dependency = q.dependency AND r.beat_at < NOW() - 600)
       OR (q.regroup_seq IS NOT NULL AND q.updated_at < NOW() - 600))
ORDER BY c.id LIMIT :limit;
