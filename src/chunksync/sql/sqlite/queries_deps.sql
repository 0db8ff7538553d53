-- Dependencies as shared state (chunksync.deps.store). SQLite runs every write transaction
-- under BEGIN IMMEDIATE, so reading a row and writing it back in one transaction is atomic.

-- deps_ensure --
-- Create a dependency's row with the defaults (full budget, flowing) unless it exists.
INSERT INTO dependencies (name, updated_at) VALUES (:name, NOW())
ON CONFLICT (name) DO NOTHING;

-- deps_lock --
-- One dependency's row and the database clock, for a read-modify-write in this transaction.
SELECT d.*, NOW() AS now FROM dependencies d WHERE d.name = :name;

-- deps_get --
-- One dependency's row.
SELECT * FROM dependencies WHERE name = :name;

-- deps_save --
-- Write back a dependency's state (and count its waits and probes).
UPDATE dependencies
SET tokens = :tokens, capacity = :capacity, flow = :flow, next_probe_at = :next_probe_at,
    probe_interval_s = :probe_interval_s, gated_since = :gated_since, tat = :tat,
    probes = probes + :probes, cap_waits = cap_waits + :cap_waits,
    rate_waits = rate_waits + :rate_waits, gate_waits = gate_waits + :gate_waits,
    updated_at = NOW()
WHERE name = :name;

-- deps_set_limits --
-- Declare a dependency's limits (NULL: no limit of that kind).
UPDATE dependencies
SET connections = :connections, rate_units = :rate_units, rate_period_s = :rate_period_s,
    burst = :burst, updated_at = NOW()
WHERE name = :name;

-- deps_list --
-- Every dependency with its slots in use (chunks in flight plus extra slots) and queue counts; SQLite keeps no claim groups, so no chunks of one are ever moving to another.
SELECT d.*,
       (SELECT COUNT(*) FROM chunks c
        WHERE c.status = 'processing' AND c.status <> 'completed'
          AND c.queue_id IN (SELECT q.id FROM queues q WHERE q.dependency = d.name)) AS in_flight,
       (SELECT COUNT(*) FROM dependency_slots s JOIN chunks c
          ON c.id = s.chunk_id AND c.lease_token = s.lease_token AND c.status = 'processing'
        WHERE s.dependency = d.name) AS extra_slots,
       (SELECT COUNT(*) FROM dependency_permits p
        WHERE p.dependency = d.name AND (p.expires_at > NOW() OR EXISTS (
            SELECT 1 FROM chunks c WHERE c.id = p.chunk_id AND c.lease_token = p.lease_token
              AND c.status = 'processing'))) AS permits,
       (SELECT COUNT(*) FROM queues q
        WHERE q.dependency = d.name AND q.status = 'active') AS active_queues,
       NULL AS regroup_since
FROM dependencies d
ORDER BY d.name;

-- deps_special --
-- The dependencies a claim must treat apart (limited, gated, or with a budget below full) that have an active queue, one row each.
-- Until 2026-12-07 a row for each active queue, which the claim then named: read by every worker
-- process every 0.2 s, 236 ms at 50,000 active queues of one capped dependency.
-- `runnable`: whether a chunk of its active queues is runnable now; a worker claims from the
-- others only after its next read.
SELECT d.*, NOW() AS now,
       EXISTS (SELECT 1 FROM queues q JOIN chunks c ON c.queue_id = q.id
               WHERE q.dependency = d.name AND q.status = 'active' AND c.status = 'pending'
                 AND c.status <> 'completed' AND c.run_after <= NOW()) AS runnable
FROM dependencies d
WHERE (d.connections IS NOT NULL OR d.rate_units IS NOT NULL OR d.flow <> 'ok'
       OR d.tokens IS NOT NULL)
  AND EXISTS (SELECT 1 FROM queues q WHERE q.dependency = d.name AND q.status = 'active');

-- deps_in_use --
-- The slots of one dependency in use: its live connection permits plus the extra slots of running chunks.
SELECT
    -- include dependency_in_use --
    AS n;

-- deps_ready --
-- Before a claim of one dependency, without a lock or a write: its slots in use (as deps_in_use) and whether a chunk of its active queues of these kinds is runnable now (as claim_chunks_of finds them, tenants' quotas aside).
-- An account whose chunks all wait (a provider's backoff) costs a worker this read, not a claim's
-- transaction of some ten statements, at each read of the list of limited dependencies.
SELECT
    -- include dependency_in_use --
    AS n,
       EXISTS (SELECT 1 FROM chunks c JOIN queues q ON q.id = c.queue_id
               WHERE c.status = 'pending' AND c.status <> 'completed' AND c.run_after <= NOW()
                 AND q.status = 'active' AND q.kind IN (SELECT value FROM json_each(:kinds))
                 AND q.dependency = :name AND (:queue_id IS NULL OR c.queue_id = :queue_id))
       AS runnable;

-- deps_slots_sweep --
-- Forget the extra slots of chunks that no longer run under the lease that took them.
DELETE FROM dependency_slots
WHERE dependency = :name AND NOT EXISTS (
    SELECT 1 FROM chunks c
    WHERE c.id = dependency_slots.chunk_id AND c.lease_token = dependency_slots.lease_token
      AND c.status = 'processing');

-- deps_slot_take --
-- An extra slot for a running chunk, fenced by its lease token (0 rows: the lease is lost).
INSERT INTO dependency_slots (id, dependency, chunk_id, lease_token, taken_at)
SELECT :id, :name, c.id, c.lease_token, NOW() FROM chunks c
WHERE c.id = :chunk_id AND c.lease_token = :token AND c.status = 'processing';

-- deps_slot_release --
-- Give an extra slot back.
DELETE FROM dependency_slots WHERE id = :id;

-- deps_queue_set --
-- Name the dependency of a queue (queues made before dependencies were rows have none).
UPDATE queues SET dependency = :dependency WHERE id = :id AND dependency IS NULL;

-- deps_queues_unnamed --
-- Active queues whose dependency is not named yet.
SELECT id, source, kind FROM queues WHERE dependency IS NULL AND status = 'active';

-- claim_chunks_of --
-- Lease up to :limit runnable chunks of the active queues of the dependency :dependency (only of the queue :queue_id when given), like claim_chunks: by priority, then each chunk's place in the fair order (fair_key), a tenant at its in-flight quota skipped and one below it given only its room (the caller then gives back what a claim at the same moment made too many: tenants.keep_quotas).
UPDATE chunks
SET status = 'processing', attempts = attempts + 1, lease_token = :token,
    lease_expires_at = NOW() + :lease_s, worker_id = :worker_id, updated_at = NOW()
WHERE id IN (
    WITH
-- include tenant_room --
    , picked AS (
        SELECT c.id, c.tenant, c.priority, c.fair_key FROM chunks c JOIN queues q ON q.id = c.queue_id
        WHERE c.status = 'pending' AND c.status <> 'completed' AND c.run_after <= NOW() AND q.status = 'active'
          AND q.kind IN (SELECT value FROM json_each(:kinds))
          AND q.dependency = :dependency AND (:queue_id IS NULL OR c.queue_id = :queue_id)
          AND c.tenant NOT IN (SELECT tenant FROM room WHERE n <= 0)
        ORDER BY c.priority DESC, c.fair_key
        LIMIT :limit
    ),
    ranked AS (
        SELECT o.id, r.n AS room,
               row_number() OVER (PARTITION BY o.tenant ORDER BY o.priority DESC, o.fair_key) AS nth
        FROM picked o LEFT JOIN room r ON r.tenant = o.tenant
    )
    SELECT id FROM ranked WHERE room IS NULL OR nth <= room)
RETURNING *;

-- deps_relaxed_commit --
-- This transaction's commit need not wait for the disk (it only counts a wait); SQLite in WAL mode with synchronous=NORMAL never waits for it.
SELECT 1;

-- deps_permits_sweep --
-- Forget the permits of one dependency that are no longer live (expired, their last claim's chunk done or recovered).
DELETE FROM dependency_permits
WHERE dependency = :name AND expires_at <= NOW() AND NOT EXISTS (
    SELECT 1 FROM chunks c
    WHERE c.id = dependency_permits.chunk_id AND c.lease_token = dependency_permits.lease_token
      AND c.status = 'processing');

-- deps_permit_held --
-- A permit still held (a sweep has not taken it), with its lane's arrival time.
SELECT id, tat FROM dependency_permits WHERE id = :id AND dependency = :name;

-- deps_permit_take --
-- A connection permit of a capped dependency for one slot thread.
INSERT INTO dependency_permits (id, dependency, worker_id, expires_at)
VALUES (:id, :name, :worker_id, NOW() + :lease_s);

-- deps_permit_renew --
-- A claim under a permit: it stays live for the lease, and while that claim's last chunk runs.
UPDATE dependency_permits
SET chunk_id = :chunk_id, lease_token = :token, expires_at = NOW() + :lease_s,
    tat = :tat
WHERE id = :id;

-- deps_permit_release --
-- Give a connection permit back.
DELETE FROM dependency_permits WHERE id = :id;
