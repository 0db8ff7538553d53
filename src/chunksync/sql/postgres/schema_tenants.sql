-- Tenants: weights, quotas and the fair order of chunks (migration 0014), written once.
-- include migrations/0013_tenants.sql --
-- The chunks in flight, in a partial index of them alone (migrations 0019 and 0021): a tenant's
-- counted by its key, a dead worker's (an operator's requeue) and the expired leases (the sweep)
-- read from it whole; a worker's heartbeat finds the chunks it holds by their ids. A tenant's
-- waiting and dead chunks are read through its queues, and 0013's index of every status is gone.
DROP INDEX chunks_tenant_status;
CREATE INDEX chunks_in_flight ON chunks (tenant) INCLUDE (worker_id, lease_expires_at)
    WHERE status = 'processing';
