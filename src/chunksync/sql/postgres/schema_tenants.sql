-- Tenants: weights, quotas and the fair order of chunks (migration 0014), written once.
-- include migrations/0013_tenants.sql --
-- A tenant's chunks in flight, counted through a partial index of them alone (migration 0019):
-- its waiting and dead chunks are read through its queues, and 0013's index of every status is
-- gone.
DROP INDEX chunks_tenant_status;
CREATE INDEX chunks_tenant_in_flight ON chunks (tenant, status) WHERE status = 'processing';
