-- Named queries of tenants (chunksync.tenants): weights, quotas, the fair order's passes.
-- The same names, parameters and result columns as SQLite's.

-- tenant_get --
-- One declared tenant.
SELECT * FROM tenants WHERE id = :id::text;

-- tenant_lock --
-- Serialise this transaction with the other enqueues of one tenant (its queued quota is counted under it): an advisory lock, not the tenant's row, which claims lock for its in-flight quota and must not wait for a long enqueue.
SELECT pg_advisory_xact_lock(hashtextextended('chunksync.tenant_queued:' || :id::text, 0)) AS id;

-- tenants_capped --
-- How many tenants have an in-flight quota: claims then hold the rows of those they take chunks of (tenants_lock_claimed).
SELECT COUNT(*) AS n FROM tenants WHERE max_in_flight IS NOT NULL;

-- tenants_lock_claimed --
-- Hold the rows of the tenants with an in-flight quota among :tenants, in one order: those a claim in this transaction took chunks of. Another claim of their chunks waits here for this one's commit, and tenants_over_quota after it counts every claim committed before. Claims of other tenants' chunks do not wait.
SELECT id FROM tenants
WHERE id = ANY(:tenants::text[]) AND max_in_flight IS NOT NULL
ORDER BY id
FOR UPDATE;

-- tenants_over_quota --
-- The tenants among :tenants with more chunks in flight than their in-flight quota, as (id, over), counted after tenants_lock_claimed in a statement of its own: it sees every claim committed before.
SELECT o.id, o.over FROM (
    SELECT t.id, (SELECT COUNT(*) FROM chunks p WHERE p.tenant = t.id AND p.status = 'processing')
                 - t.max_in_flight AS over
    FROM tenants t WHERE t.id = ANY(:tenants::text[]) AND t.max_in_flight IS NOT NULL) o
WHERE o.over > 0;

-- tenant_queued --
-- How many chunks of a tenant wait (pending), through its queues (queues_tenant_status) and each one's pending chunks (chunks_queue_open): a chunk's tenant is its queue's.
SELECT COUNT(*) AS n FROM queues q JOIN chunks c ON c.queue_id = q.id
WHERE q.tenant = :tenant::text AND c.status = 'pending';

-- fair_virtual_time --
-- The virtual time at one priority, as `at`: where a tenant with nothing waiting starts its places (tenant_reserve). It is the place the plain claim's fair lane has reached, its next chunk: the first pending one at that priority it could take (claim group '', due, of a tenant below its in-flight quota); without one, the first pending chunk at all; without any, the furthest pass.
-- Not the first pending chunk at all, as before 2026-12-06: a paused queue's backlog, or that of
-- a tenant at its quota, keeps its places at the head of the fair order while the others' work
-- goes on, and a newcomer placed behind its head came before the busy tenants' next chunk for as
-- many chunks as they had run meanwhile (tests/contract/test_tenants_contract.py).
WITH
-- include tenant_room --
SELECT COALESCE(
    -- (c.tenant || ''): the claim's own way past the planner's estimate for one tenant
    (SELECT c.fair_key FROM chunks c
     WHERE c.claim_group = '' AND c.priority = :priority AND c.status = 'pending'
       AND c.run_after <= NOW()
       AND NOT ((c.tenant || '') = ANY(ARRAY(SELECT tenant FROM room WHERE n <= 0)))
     ORDER BY c.fair_key LIMIT 1),
    (SELECT c.fair_key FROM chunks c WHERE c.status = 'pending' AND c.priority = :priority
     ORDER BY c.fair_key LIMIT 1),
    (SELECT MAX(t.pass) FROM tenant_passes t WHERE t.priority = :priority),
    0) AS at;

-- tenant_reserve --
-- Reserve :span of virtual time for a tenant's next chunks at one priority, from its pass or the virtual time :at (fair_virtual_time), whichever is later; returns where the span starts.
INSERT INTO tenant_passes AS p (tenant, priority, pass)
VALUES (:tenant::text, :priority::integer, :at::float8 + :span::float8)
ON CONFLICT (tenant, priority) DO UPDATE
SET pass = GREATEST(p.pass, EXCLUDED.pass - :span::float8) + :span::float8
RETURNING p.pass - :span::float8 AS start;

-- tenant_advance --
-- Move on by :span the pass that this transaction reserved from already (tenant_reserve: its row is locked since), for an enqueue's next batch: the places of one enqueue follow each other, as if reserved at once; returns where the span starts.
UPDATE tenant_passes SET pass = pass + :span::float8
WHERE tenant = :tenant::text AND priority = :priority::integer
RETURNING pass - :span::float8 AS start;

-- tenant_upsert --
-- Declare a tenant or change its weight and quotas.
INSERT INTO tenants (id, weight, max_in_flight, max_queued, created_at, updated_at)
VALUES (:id::text, :weight::float8, :max_in_flight::integer, :max_queued::integer, NOW(), NOW())
ON CONFLICT (id) DO UPDATE
SET weight = EXCLUDED.weight, max_in_flight = EXCLUDED.max_in_flight,
    max_queued = EXCLUDED.max_queued, updated_at = NOW()
RETURNING *;

-- tenants_list --
-- Every tenant declared or owning a queue, with its chunks waiting and in flight.
SELECT ids.id, t.weight, t.max_in_flight, t.max_queued,
       (SELECT COUNT(*) FROM queues q JOIN chunks c ON c.queue_id = q.id
        WHERE q.tenant = ids.id AND c.status = 'pending') AS pending,
       (SELECT COUNT(*) FROM chunks c WHERE c.tenant = ids.id AND c.status = 'processing')
           AS in_flight
FROM (SELECT id FROM tenants UNION SELECT tenant FROM queues) ids
LEFT JOIN tenants t ON t.id = ids.id
ORDER BY ids.id;

-- pg_tenant_role_grant --
-- Bind a role to a tenant and grant it the tenant's rows (row-level security, 0017); the role must exist.
SELECT chunksync_grant_tenant_role(:role::name, :tenant::text) AS tenant;

-- pg_tenant_token_add --
-- A token for one tenant's dashboard and API, stored as its SHA-256.
INSERT INTO tenant_tokens (digest, tenant, created_at) VALUES (:digest, :tenant, NOW());

-- pg_tenant_token_find --
-- The tenant a token opens, by its SHA-256.
SELECT tenant FROM tenant_tokens WHERE digest = :digest;

-- pg_tenant_tokens_revoke --
-- Every token of one tenant, revoked.
DELETE FROM tenant_tokens WHERE tenant = :tenant;

-- pg_tenant_tokens_count --
-- How many tenant tokens exist (the dashboard warns when reads without a token are open).
SELECT COUNT(*) AS n FROM tenant_tokens;
