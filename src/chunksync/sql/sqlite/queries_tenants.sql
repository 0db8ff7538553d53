-- Named queries of tenants (chunksync.tenants): weights, quotas, the fair order's passes.
-- The same names, parameters and result columns as PostgreSQL's; SQLite serialises writers, so
-- the row locks there are plain reads.

-- tenant_get --
-- One declared tenant.
SELECT * FROM tenants WHERE id = :id;

-- tenant_lock --
-- Serialise this transaction with the other enqueues of one tenant: SQLite's writers are serialised already.
SELECT :id AS id;

-- tenants_capped --
-- How many tenants have an in-flight quota: claims then hold their rows (tenants_lock_capped).
SELECT COUNT(*) AS n FROM tenants WHERE max_in_flight IS NOT NULL;

-- tenants_lock_capped --
-- Hold every row of a tenant with an in-flight quota, in one order, for the claim that follows in this transaction: its count of chunks in flight then sees every claim committed before.
SELECT id FROM tenants WHERE max_in_flight IS NOT NULL ORDER BY id;

-- tenant_queued --
-- How many chunks of a tenant wait (pending), through its queues (queues_tenant_status) and each one's pending chunks (chunks_queue_open): a chunk's tenant is its queue's.
SELECT COUNT(*) AS n FROM queues q JOIN chunks c ON c.queue_id = q.id
WHERE q.tenant = :tenant AND c.status = 'pending' AND c.status <> 'completed';

-- tenant_reserve --
-- Reserve :span of virtual time for a tenant's next chunks at one priority, from its pass or the virtual time (the first pending chunk's place at that priority; without one, the furthest pass), whichever is later; returns where the span starts.
WITH v AS (
    SELECT COALESCE(
        (SELECT c.fair_key FROM chunks c WHERE c.status = 'pending' AND c.priority = :priority
         ORDER BY c.fair_key LIMIT 1),
        (SELECT MAX(t.pass) FROM tenant_passes t WHERE t.priority = :priority),
        0) AS at
)
INSERT INTO tenant_passes AS p (tenant, priority, pass)
SELECT :tenant, :priority, v.at + :span FROM v WHERE true
ON CONFLICT (tenant, priority) DO UPDATE
SET pass = MAX(p.pass, EXCLUDED.pass - :span) + :span
RETURNING pass - :span AS start;

-- tenant_upsert --
-- Declare a tenant or change its weight and quotas.
INSERT INTO tenants (id, weight, max_in_flight, max_queued, created_at, updated_at)
VALUES (:id, :weight, :max_in_flight, :max_queued, NOW(), NOW())
ON CONFLICT (id) DO UPDATE
SET weight = EXCLUDED.weight, max_in_flight = EXCLUDED.max_in_flight,
    max_queued = EXCLUDED.max_queued, updated_at = NOW()
RETURNING *;

-- tenants_list --
-- Every tenant declared or owning a queue, with its chunks waiting and in flight.
SELECT ids.id, t.weight, t.max_in_flight, t.max_queued,
       (SELECT COUNT(*) FROM queues q JOIN chunks c ON c.queue_id = q.id
        WHERE q.tenant = ids.id AND c.status = 'pending' AND c.status <> 'completed') AS pending,
       (SELECT COUNT(*) FROM chunks c WHERE c.tenant = ids.id AND c.status = 'processing')
           AS in_flight
FROM (SELECT id FROM tenants UNION SELECT tenant FROM queues) ids
LEFT JOIN tenants t ON t.id = ids.id
ORDER BY ids.id;
