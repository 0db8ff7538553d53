-- Parts several queries share word for word, each written once: a query names one on a line of
-- its own, `-- include <name> --`, where its text goes (chunksync.sql). Blocks as in queries.sql.

-- queue_totals --
-- A queue's chunk totals by status, as a lateral join on its row `q` (alias `t`): its completed chunks are its count of chunks (queues.n_chunks, migration 0022) less the others, which chunks_queue_open holds.
CROSS JOIN LATERAL (
    SELECT COUNT(*) FILTER (WHERE c.status = 'pending') AS n_pending,
           COUNT(*) FILTER (WHERE c.status = 'processing') AS n_processing,
           q.n_chunks - COUNT(*) AS n_completed,
           COUNT(*) FILTER (WHERE c.status = 'dead') AS n_dead,
           COUNT(*) FILTER (WHERE c.status = 'cancelled') AS n_cancelled
    FROM chunks c WHERE c.queue_id = q.id AND c.status <> 'completed') t

-- regroup_batch --
-- A regroup's batch, as CTEs after its `target` (after: the last seq walked; claim_group: where the queue's chunks go): `batch`, the next :limit chunks of :queue_id after it in seq order, each marked a stray when it is not completed (a dead chunk may be revived) and not in that group yet; `moved`, the strays moved, each checked again as it is updated.
batch AS MATERIALIZED (
    SELECT c.id, c.seq,
           c.status <> 'completed' AND c.claim_group <> (SELECT claim_group FROM target) AS stray
    FROM chunks c
    WHERE c.queue_id = :queue_id::uuid AND c.seq > (SELECT after FROM target)
    ORDER BY c.seq
    LIMIT :limit
),
moved AS (
    UPDATE chunks c SET claim_group = t.claim_group
    FROM target t
    WHERE c.id = ANY(ARRAY(SELECT id FROM batch WHERE stray))
      AND c.status <> 'completed' AND c.claim_group <> t.claim_group
    RETURNING 1
)

-- tenant_room --
-- A claim's CTE `room` (tenant, n): each tenant with an in-flight quota and the room it has left, n <= 0 at its quota, counted through the partial index chunks_in_flight, a probe a capped tenant.
-- One grouped count of the capped tenants' chunks in flight instead (2026-12-07) was quicker
-- with 5,000 capped tenants and few chunks in flight (3.7 -> 2.0 ms), but the planner, whose
-- statistics had seen no chunk in flight, then read every chunk in flight for one capped
-- tenant: a claim behind a tenant at its quota with 51,200 chunks in flight, 39 -> 55-78 ms.
room AS MATERIALIZED (
    SELECT t.id AS tenant, t.max_in_flight - (
        SELECT COUNT(*) FROM chunks p WHERE p.tenant = t.id AND p.status = 'processing') AS n
    FROM tenants t WHERE t.max_in_flight IS NOT NULL
)

-- runnable_queue --
-- The conditions on a queue `q` that the plain claim (claim_chunks) may claim from, as a boolean expression: active, of a kind this worker handles, not in :exclude, and its dependency not among the claim's `held` ones (limited or gated: claimed by claim_chunks_of). The claim adds :queue_id's own condition where it applies.
q.status = 'active' AND q.kind = ANY(:kinds::text[]) AND q.id <> ALL(:exclude::uuid[])
AND (q.dependency IS NULL OR q.dependency NOT IN (SELECT name FROM held))

-- dependency_in_use --
-- One dependency's (:name) slots in use, as an expression: its live connection permits plus the extra slots of running chunks.
(SELECT COUNT(*) FROM dependency_permits p
        WHERE p.dependency = :name AND (p.expires_at > NOW() OR EXISTS (
            SELECT 1 FROM chunks c WHERE c.id = p.chunk_id AND c.lease_token = p.lease_token
              AND c.status = 'processing')))
     + (SELECT COUNT(*) FROM dependency_slots s JOIN chunks c
          ON c.id = s.chunk_id AND c.lease_token = s.lease_token AND c.status = 'processing'
        WHERE s.dependency = :name)
