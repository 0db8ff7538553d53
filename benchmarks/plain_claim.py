"""The claim of chunksync before tenants' fair share (priority, then age), kept for
bench_fairness to measure against: the figures "without fairness" run this statement."""

from __future__ import annotations

PLAIN_CLAIM = {
    "postgres": """
WITH picked AS (
    SELECT c.id FROM chunks c
    WHERE c.status = 'pending' AND c.run_after <= NOW()
      AND c.queue_id = ANY(ARRAY(
          SELECT q.id FROM queues q
          WHERE q.status = 'active' AND q.kind = ANY(:kinds::text[])
            AND (q.dependency IS NULL OR q.dependency NOT IN (
                SELECT d.name FROM dependencies d
                WHERE d.connections IS NOT NULL OR d.rate_units IS NOT NULL
                   OR d.flow <> 'ok'))))
      AND NOT (c.queue_id = ANY(:exclude::uuid[]))
      AND (:queue_id::uuid IS NULL OR c.queue_id = :queue_id::uuid)
    ORDER BY c.priority DESC, c.created_at, c.seq
    LIMIT :limit
    FOR UPDATE OF c SKIP LOCKED)
UPDATE chunks c
SET status = 'processing', attempts = c.attempts + 1, lease_token = :token::uuid,
    lease_expires_at = NOW() + :lease_s::float8, worker_id = :worker_id, updated_at = NOW()
WHERE c.id = ANY(ARRAY(SELECT id FROM picked))
RETURNING c.*;
""",
    "sqlite": """
UPDATE chunks
SET status = 'processing', attempts = attempts + 1, lease_token = :token,
    lease_expires_at = NOW() + :lease_s, worker_id = :worker_id, updated_at = NOW()
WHERE id IN (
    SELECT c.id FROM chunks c JOIN queues q ON q.id = c.queue_id
    WHERE c.status = 'pending' AND c.run_after <= NOW() AND q.status = 'active'
      AND q.kind IN (SELECT value FROM json_each(:kinds))
      AND c.queue_id NOT IN (SELECT value FROM json_each(:exclude))
      AND (:queue_id IS NULL OR c.queue_id = :queue_id)
      AND (q.dependency IS NULL OR q.dependency NOT IN (
          SELECT d.name FROM dependencies d
          WHERE d.connections IS NOT NULL OR d.rate_units IS NOT NULL OR d.flow <> 'ok'))
    ORDER BY c.priority DESC, c.created_at, c.seq
    LIMIT :limit)
RETURNING *;
""",
}
