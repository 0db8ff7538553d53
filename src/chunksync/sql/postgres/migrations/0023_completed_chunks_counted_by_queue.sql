-- 0023_completed_chunks_counted_by_queue --
-- expand --
-- outside a transaction --
-- First the chunks of every queue older than 0022 are counted, a hundred queues a transaction
-- (each queue's row locked while its chunks are counted: chunksync_count_queue_chunks).
-- Then the index of chunks by queue and status leaves the completed ones out. A finish wrote
-- the completed chunk's entry in it; most of a queue's history is completed chunks, and no
-- reader needs them there any more: a queue's completed chunks are its count (queues.n_chunks)
-- less the others. The finish 26.1 -> 24.2, 25.7 -> 23.3 and 27.1 -> 24.3 us a chunk of the
-- server's CPU (benchmarks/paired_statements, both ways round). The code after this reads
-- queues.n_chunks, so it needs this migration whole. The code before this works with the
-- database as it is; its counts of a queue's completed chunks read the (queue_id, seq) key
-- instead: slower for a large queue, as long as the upgrade lasts.
-- Safe to run again from its first statement: the count skips the queues already counted, and
-- an interrupted build leaves an invalid index, which the index's first statement drops.
-- in batches --
UPDATE queues SET n_chunks = chunksync_count_queue_chunks(id)
WHERE id IN (SELECT id FROM queues WHERE n_chunks IS NULL LIMIT 100);
DROP INDEX CONCURRENTLY IF EXISTS chunks_queue_open;
CREATE INDEX CONCURRENTLY chunks_queue_open ON chunks (queue_id, status, tenant) WHERE status <> 'completed';
DROP INDEX CONCURRENTLY IF EXISTS chunks_queue_status_tenant;
