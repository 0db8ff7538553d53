-- Named queries of one tenant's health and of the per-tenant metrics (docs/tenants.md).
-- Tenant-scoped reads go through indexes that start with the tenant: its queues
-- (queues_tenant_status), then each queue's chunks (chunks_queue_open, chunks_dead), and its
-- chunks in flight (chunks_tenant_in_flight, migration 0015); a chunk's tenant is its queue's.
-- `NOW()` is the database clock in seconds since the epoch.

-- tenant_health --
-- One tenant right now: its active queues, backlog and oldest pending chunk (one read of its active queues' pending chunks), in flight, quotas.
SELECT
    (SELECT COUNT(*) FROM queues WHERE tenant = :tenant) AS queues,
    (SELECT COUNT(*) FROM queues WHERE tenant = :tenant AND status = 'active') AS active_queues,
    b.backlog AS backlog,
    NOW() - b.oldest AS oldest_pending_age_s,
    (SELECT COUNT(*) FROM chunks WHERE tenant = :tenant AND status = 'processing') AS in_flight,
    (SELECT COUNT(*) FROM chunks WHERE tenant = :tenant AND status = 'processing'
        AND lease_expires_at < NOW()) AS stuck,
    (SELECT COUNT(*) FROM queues q JOIN chunks c ON c.queue_id = q.id
        WHERE q.tenant = :tenant AND c.status = 'dead' AND c.status <> 'completed') AS dead,
    (SELECT COUNT(*) FROM tenants WHERE id = :tenant) AS declared,
    (SELECT max_in_flight FROM tenants WHERE id = :tenant) AS max_in_flight,
    (SELECT max_queued FROM tenants WHERE id = :tenant) AS max_queued,
    (SELECT COUNT(*) FROM audit_log WHERE action = 'recover_stuck' AND at >= NOW() - :window_s
        AND queue_id IN (SELECT id FROM queues WHERE tenant = :tenant)) AS recoveries
FROM (SELECT COUNT(*) AS backlog, MIN(c.created_at) AS oldest
      FROM queues q JOIN chunks c ON c.queue_id = q.id
      WHERE q.tenant = :tenant AND q.status = 'active' AND c.status = 'pending'
        AND c.status <> 'completed') b;

-- tenant_health_window --
-- One tenant's attempts and failures finished in the last :window_s seconds, by category.
SELECT category, outcome, SUM(n) AS n FROM (
    SELECT NULLIF(category, '') AS category, outcome, n FROM attempt_rollups_live
    WHERE width_s = 60 AND bucket >= CAST((NOW() - :window_s) / 60 AS INTEGER) * 60 + 60
      AND tenant = :tenant
    UNION ALL
    SELECT category, outcome, 1 FROM attempts
    WHERE finished_at >= NOW() - :window_s
      AND finished_at < CAST((NOW() - :window_s) / 60 AS INTEGER) * 60 + 60
      AND tenant = :tenant
)
GROUP BY category, outcome
HAVING SUM(n) > 0;

-- metrics_tenants --
-- Every tenant's chunks by status, with the age of its oldest pending chunk: each queue's counts but the completed from chunks_queue_open alone, its completed chunks its count less those, the pending chunks' rows for their age, summed by the queues' tenant.
WITH o AS (SELECT queue_id, status, COUNT(*) AS n FROM chunks WHERE status <> 'completed'
           GROUP BY queue_id, status)
SELECT q.tenant AS tenant, s.status AS status, SUM(s.n) AS n,
       NOW() - MIN(s.oldest) AS oldest_pending_age_s
FROM (SELECT queue_id, status, n, NULL AS oldest FROM o
      UNION ALL
      SELECT q.id, 'completed', q.n_chunks - COALESCE(t.n, 0), NULL FROM queues q
      LEFT JOIN (SELECT queue_id, SUM(n) AS n FROM o GROUP BY queue_id) t ON t.queue_id = q.id
      WHERE q.n_chunks > COALESCE(t.n, 0)
      UNION ALL
      SELECT queue_id, 'pending', 0, MIN(created_at) FROM chunks
      WHERE status = 'pending' AND status <> 'completed'
      GROUP BY queue_id) s
JOIN queues q ON q.id = s.queue_id
GROUP BY q.tenant, s.status;

-- metrics_tenant_quotas --
-- The tenants that have an in-flight quota, with it.
SELECT id, max_in_flight FROM tenants WHERE max_in_flight IS NOT NULL;

-- list_queues_tenant --
-- One tenant's queues (optionally only one status) with their chunk totals, newest first.
SELECT t.*, t.n_chunks - t.n_pending - t.n_processing - t.n_dead - t.n_cancelled AS n_completed
FROM (SELECT q.*,
       -- include queue_totals --
      FROM queues q
      WHERE q.tenant = :tenant AND (:status IS NULL OR q.status = :status)) t
ORDER BY t.created_at DESC, t.name;

-- list_chunks_tenant --
-- One tenant's chunks filtered by queue, status and last error category, in queue order.
SELECT * FROM chunks
WHERE queue_id IN (SELECT id FROM queues WHERE tenant = :tenant) AND tenant = :tenant
  AND (:queue_id IS NULL OR queue_id = :queue_id)
  AND (:status IS NULL OR status = :status)
  AND (:category IS NULL OR last_category = :category)
ORDER BY queue_id, seq
LIMIT :limit;
