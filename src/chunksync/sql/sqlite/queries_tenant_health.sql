-- Named queries of one tenant's health and of the per-tenant metrics (docs/tenants.md).
-- Tenant-scoped reads go through indexes that start with the tenant (queues_tenant_status,
-- chunks_tenant_status); `NOW()` is the database clock in seconds since the epoch.

-- tenant_health --
-- One tenant right now: its active queues, backlog, oldest pending chunk, in flight, quotas.
SELECT
    (SELECT COUNT(*) FROM queues WHERE tenant = :tenant) AS queues,
    (SELECT COUNT(*) FROM queues WHERE tenant = :tenant AND status = 'active') AS active_queues,
    (SELECT COUNT(*) FROM chunks c JOIN queues q ON q.id = c.queue_id
        WHERE c.tenant = :tenant AND c.status = 'pending' AND q.status = 'active') AS backlog,
    NOW() - (SELECT MIN(c.created_at) FROM chunks c JOIN queues q ON q.id = c.queue_id
        WHERE c.tenant = :tenant AND c.status = 'pending' AND q.status = 'active')
        AS oldest_pending_age_s,
    (SELECT COUNT(*) FROM chunks WHERE tenant = :tenant AND status = 'processing') AS in_flight,
    (SELECT COUNT(*) FROM chunks WHERE tenant = :tenant AND status = 'processing'
        AND lease_expires_at < NOW()) AS stuck,
    (SELECT COUNT(*) FROM chunks WHERE tenant = :tenant AND status = 'dead') AS dead,
    (SELECT COUNT(*) FROM tenants WHERE id = :tenant) AS declared,
    (SELECT max_in_flight FROM tenants WHERE id = :tenant) AS max_in_flight,
    (SELECT max_queued FROM tenants WHERE id = :tenant) AS max_queued,
    (SELECT COUNT(*) FROM audit_log WHERE action = 'recover_stuck' AND at >= NOW() - :window_s
        AND queue_id IN (SELECT id FROM queues WHERE tenant = :tenant)) AS recoveries;

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
-- Every tenant's chunks by status, with the age of its oldest pending chunk.
SELECT tenant, status, COUNT(*) AS n,
       NOW() - MIN(CASE WHEN status = 'pending' THEN created_at END) AS oldest_pending_age_s
FROM chunks
GROUP BY tenant, status;

-- metrics_tenant_quotas --
-- The tenants that have an in-flight quota, with it.
SELECT id, max_in_flight FROM tenants WHERE max_in_flight IS NOT NULL;

-- list_queues_tenant --
-- One tenant's queues (optionally only one status) with their chunk totals, newest first.
SELECT q.*,
       (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'pending') AS n_pending,
       (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'processing') AS n_processing,
       (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'completed') AS n_completed,
       (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'dead') AS n_dead,
       (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'cancelled') AS n_cancelled
FROM queues q
WHERE q.tenant = :tenant AND (:status IS NULL OR q.status = :status)
ORDER BY q.created_at DESC, q.name;

-- list_chunks_tenant --
-- One tenant's chunks filtered by queue, status and last error category, in queue order.
SELECT * FROM chunks
WHERE tenant = :tenant
  AND (:queue_id IS NULL OR queue_id = :queue_id)
  AND (:status IS NULL OR status = :status)
  AND (:category IS NULL OR last_category = :category)
ORDER BY queue_id, seq
LIMIT :limit;
