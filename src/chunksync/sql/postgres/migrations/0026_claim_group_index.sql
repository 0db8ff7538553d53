-- 0026_claim_group_index --
-- expand --
-- outside a transaction --
-- The chunks of dependencies limited before 0025 (but the completed ones: a dead chunk may be
-- revived) move to their groups, a thousand a transaction
-- (a backfill in batches); then the index that each claim reads its own group through, in the
-- fair order (claim_group, then as chunks_fair). chunks_fair stays: the fair order's head at a
-- priority (tenant_reserve) is read across every group, and the code before 0025 claims through
-- it. An entry more for each chunk enqueued or retried, none for a claim or a finish (a claimed
-- chunk is no longer pending: no partial index of pending chunks gets its new version).
-- Safe to run again from its first statement: the backfill skips the chunks already moved, and
-- an interrupted build leaves an invalid index, which the build's first statement drops.
-- in batches --
UPDATE chunks SET claim_group = g.claim_group
FROM (SELECT c.id, d.name AS claim_group
      FROM queues q JOIN dependencies d ON d.name = q.dependency
           AND (d.connections IS NOT NULL OR d.rate_units IS NOT NULL)
      JOIN chunks c ON c.queue_id = q.id AND c.status <> 'completed'
           AND c.claim_group <> d.name
      LIMIT 1000) g
WHERE chunks.id = g.id;
DROP INDEX CONCURRENTLY IF EXISTS chunks_claim_fair;
CREATE INDEX CONCURRENTLY chunks_claim_fair ON chunks (claim_group, priority DESC, fair_key) WHERE status = 'pending';
