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
-- How many tenants have an in-flight quota: claims then hold the rows of those they take chunks of (tenants_lock_claimed).
SELECT COUNT(*) AS n FROM tenants WHERE max_in_flight IS NOT NULL;

-- tenants_lock_claimed --
-- The tenants with an in-flight quota among :tenants, those a claim in this transaction took chunks of (PostgreSQL holds their rows: SQLite's write transaction already holds the database).
SELECT id FROM tenants
WHERE id IN (SELECT value FROM json_each(:tenants)) AND max_in_flight IS NOT NULL
ORDER BY id;

-- tenants_over_quota --
-- The tenants among :tenants with more chunks in flight than their in-flight quota, as (id, over).
SELECT o.id, o.over FROM (
    SELECT t.id, (SELECT COUNT(*) FROM chunks p WHERE p.tenant = t.id AND p.status = 'processing')
                 - t.max_in_flight AS over
    FROM tenants t
    WHERE t.id IN (SELECT value FROM json_each(:tenants)) AND t.max_in_flight IS NOT NULL) o
WHERE o.over > 0;

-- tenant_queued --
-- How many chunks of a tenant wait (pending), through its queues (queues_tenant_status) and each one's pending chunks (chunks_queue_open): a chunk's tenant is its queue's.
SELECT COUNT(*) AS n FROM queues q JOIN chunks c ON c.queue_id = q.id
WHERE q.tenant = :tenant AND c.status = 'pending' AND c.status <> 'completed';

-- fair_virtual_time --
-- The virtual time at one priority, as `at`: where a tenant with nothing waiting starts its places (tenant_reserve). It is the place the plain claim's fair lane has reached, its next chunk: the first pending one at that priority it could take (due, in an active queue whose dependency is not limited, of a tenant below its in-flight quota); without one, the first pending chunk at all; without any, the furthest pass.
-- Not the first pending chunk at all, as before 2026-12-06: a paused queue's backlog, or that of
-- a tenant at its quota, keeps its places at the head of the fair order while the others' work
-- goes on, and a newcomer placed behind its head came before the busy tenants' next chunk for as
-- many chunks as they had run meanwhile (tests/contract/test_tenants_contract.py).
WITH
-- include tenant_room --
SELECT COALESCE(
    (SELECT c.fair_key FROM chunks c INDEXED BY chunks_fair
     WHERE c.status = 'pending' AND c.priority = :priority AND c.run_after <= NOW()
       AND c.queue_id IN (
           SELECT q.id FROM queues q
           WHERE q.status = 'active' AND (q.dependency IS NULL OR q.dependency NOT IN (
               SELECT d.name FROM dependencies d
               WHERE d.connections IS NOT NULL OR d.rate_units IS NOT NULL
                  OR d.flow <> 'ok')))
       AND c.tenant NOT IN (SELECT tenant FROM room WHERE n <= 0)
     ORDER BY c.fair_key LIMIT 1),
    (SELECT c.fair_key FROM chunks c WHERE c.status = 'pending' AND c.priority = :priority
     ORDER BY c.fair_key LIMIT 1),
    (SELECT MAX(t.pass) FROM tenant_passes t WHERE t.priority = :priority),
    0) AS at;

-- tenant_reserve --
-- Reserve :span of virtual time for a tenant's next chunks at one priority, from its pass or the virtual time :at (fair_virtual_time), whichever is later; returns where the span starts.
INSERT INTO tenant_passes AS p (tenant, priority, pass)
VALUES (:tenant, :priority, :at + :span)
ON CONFLICT (tenant, priority) DO UPDATE
SET pass = MAX(p.pass, EXCLUDED.pass - :span) + :span
RETURNING pass - :span AS start;

-- tenant_advance --
-- Move on by :span the pass that this transaction reserved from already (tenant_reserve: its row is locked since), for an enqueue's next batch: the places of one enqueue follow each other, as if reserved at once; returns where the span starts.
UPDATE tenant_passes SET pass = pass + :span WHERE tenant = :tenant AND priority = :priority
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
