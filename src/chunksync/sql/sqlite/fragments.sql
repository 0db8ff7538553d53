-- Parts several queries share word for word, each written once: a query names one on a line of
-- its own, `-- include <name> --`, where its text goes (chunksync.sql). Blocks as in queries.sql.

-- queue_totals --
-- A queue's open chunk totals by status, as columns of a select list over its row `q` (its completed chunks, its count of chunks less these, the query computes from them). Each says `status <> 'completed'` so that SQLite reads the partial index chunks_queue_open.
(SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'pending'
                                           AND c.status <> 'completed') AS n_pending,
(SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'processing'
                                           AND c.status <> 'completed') AS n_processing,
(SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'dead'
                                           AND c.status <> 'completed') AS n_dead,
(SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'cancelled'
                                           AND c.status <> 'completed') AS n_cancelled

-- tenant_room --
-- A claim's CTE `room` (tenant, n): each tenant with an in-flight quota and the room it has left, n <= 0 at its quota. Each capped tenant's chunks in flight are counted through the partial index chunks_tenant_in_flight, a probe each (~0.15 us); a grouped count was no quicker here (5,000 capped tenants: 0.7 and 0.5 ms with none in flight, 1.2 and 1.5 ms with 500).
room(tenant, n) AS (
    SELECT t.id, t.max_in_flight - (
        SELECT COUNT(*) FROM chunks p WHERE p.tenant = t.id AND p.status = 'processing')
    FROM tenants t WHERE t.max_in_flight IS NOT NULL
)

-- dependency_in_use --
-- One dependency's (:name) slots in use, as an expression: its live connection permits plus the extra slots of running chunks.
(SELECT COUNT(*) FROM dependency_permits p
        WHERE p.dependency = :name AND (p.expires_at > NOW() OR EXISTS (
            SELECT 1 FROM chunks c WHERE c.id = p.chunk_id AND c.lease_token = p.lease_token
              AND c.status = 'processing')))
     + (SELECT COUNT(*) FROM dependency_slots s JOIN chunks c
          ON c.id = s.chunk_id AND c.lease_token = s.lease_token AND c.status = 'processing'
        WHERE s.dependency = :name)
