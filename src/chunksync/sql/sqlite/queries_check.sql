-- Named queries of `chunksync check` (chunksync/check.py): damage to the file, then the chunk invariants. Each returns the offending rows with `n`, how many there are in all.

-- check_integrity --
-- SQLite's own check of every page and index; one row per problem it found.
SELECT integrity_check AS problem FROM pragma_integrity_check WHERE integrity_check <> 'ok';

-- check_foreign_keys --
-- Rows whose parent row is missing (the file was damaged, or written without foreign keys).
SELECT "table" || ' row ' || COALESCE(rowid, '?') || ' has no ' || parent || ' row' AS problem
FROM pragma_foreign_key_check;

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
-- Queues whose count of chunks (queues.n_chunks, migration 0016) is not how many chunks they hold.
SELECT q.id, q.status, COUNT(*) OVER () AS n FROM queues q
WHERE q.n_chunks IS NOT (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id)
ORDER BY q.id LIMIT :limit;

-- check_claim_groups --
-- Chunks in a claim group their dependency's limits do not call for: SQLite keeps no claim groups (its claims read every chunk), so none.
SELECT NULL AS id, NULL AS status, 0 AS n WHERE 0 LIMIT :limit;

-- check_claim_group_moves --
-- Chunks that wait for a move to their claim group: SQLite keeps no claim groups, so none.
SELECT NULL AS id, NULL AS status, 0 AS n WHERE 0 LIMIT :limit;
