-- 0019_fewer_chunk_index_entries --
-- expand --
-- outside a transaction --
-- A claim and a finish update a chunk's status, which indexes hold, so neither update is HOT:
-- each writes a new entry in every index of chunks whose predicate the new row meets (six for a
-- claim, five for a finish), and each attempt row one in each of five B-trees. Three of those
-- entries a chunk did not need:
-- - chunks_tenant_status (tenant, status) took one at every transition, for reads that the
--   queues' indexes answer as well (a chunk's tenant is its queue's). A tenant's chunks in
--   flight (the claim's quota, its health) are counted through chunks_tenant_in_flight, a
--   partial index of them alone that a chunk enters when claimed and leaves when finished; its
--   waiting and dead chunks through its queues (as SQLite's migration 0015).
-- - chunks_processing (lease_expires_at) and chunks_worker (worker_id), both of the chunks in
--   flight, are one index, chunks_leases (worker_id, lease_expires_at): a worker's heartbeat
--   reads its own chunks by its prefix, the sweep for expired leases reads all of it (only the
--   chunks in flight).
-- - attempts_queue_started (queue_id, started_at): no statement reads an attempt by the time it
--   started; a queue's attempts are read through attempts_queue_finished.
-- A drain of 20,000 no-op chunks at 2 processes, five rounds of two in turns: PostgreSQL's
-- CPU 55.0 -> 49.0 us a chunk, 22,971 -> 25,009 chunks/s (docs/benchmarks.md).
-- The code before this works with the database as it is: no statement names these indexes, and
-- its tenant reads still find their rows (through the queues' index).
-- Safe to run again from its first statement: an interrupted build leaves an invalid index,
-- which the first statements drop.
DROP INDEX CONCURRENTLY IF EXISTS chunks_tenant_in_flight;
CREATE INDEX CONCURRENTLY chunks_tenant_in_flight ON chunks (tenant, status) WHERE status = 'processing';
DROP INDEX CONCURRENTLY IF EXISTS chunks_leases;
CREATE INDEX CONCURRENTLY chunks_leases ON chunks (worker_id, lease_expires_at) WHERE status = 'processing';
DROP INDEX CONCURRENTLY IF EXISTS chunks_tenant_status;
DROP INDEX CONCURRENTLY IF EXISTS chunks_processing;
DROP INDEX CONCURRENTLY IF EXISTS chunks_worker;
DROP INDEX CONCURRENTLY IF EXISTS attempts_queue_started;
