-- Dependencies as shared state (chunksync.deps.store). A read-modify-write of a dependency's
-- row locks it first (deps_lock: FOR UPDATE), so two workers never act on one stale copy.

-- deps_ensure --
-- Create a dependency's row with the defaults (full budget, flowing) unless it exists.
INSERT INTO dependencies (name, updated_at) VALUES (:name, NOW())
ON CONFLICT (name) DO NOTHING;

-- deps_lock --
-- One dependency's row and the database clock, locked for a read-modify-write in this transaction.
SELECT d.*, NOW() AS now FROM dependencies d WHERE d.name = :name FOR UPDATE;

-- deps_get --
-- One dependency's row.
SELECT * FROM dependencies WHERE name = :name;

-- deps_save --
-- Write back a dependency's state (and count its waits and probes).
UPDATE dependencies
SET tokens = :tokens::float8, capacity = :capacity::float8, flow = :flow,
    next_probe_at = :next_probe_at::float8, probe_interval_s = :probe_interval_s::float8,
    gated_since = :gated_since::float8, tat = :tat::float8,
    probes = probes + :probes, cap_waits = cap_waits + :cap_waits,
    rate_waits = rate_waits + :rate_waits, gate_waits = gate_waits + :gate_waits,
    updated_at = NOW()
WHERE name = :name;

-- deps_set_limits --
-- Declare a dependency's limits (NULL: no limit of that kind).
UPDATE dependencies
SET connections = :connections::integer, rate_units = :rate_units::float8,
    rate_period_s = :rate_period_s::float8, burst = :burst::integer, updated_at = NOW()
WHERE name = :name;

-- deps_list --
-- Every dependency with its slots in use (chunks in flight plus extra slots) and queue counts, and since when its chunks are moving to another claim group (migration 0025), if they are.
SELECT d.*,
       (SELECT COUNT(*) FROM chunks c
        WHERE c.status = 'processing'
          AND c.queue_id = ANY(ARRAY(SELECT q.id FROM queues q
                                     WHERE q.dependency = d.name))) AS in_flight,
       (SELECT COUNT(*) FROM dependency_slots s JOIN chunks c
          ON c.id = s.chunk_id AND c.lease_token = s.lease_token AND c.status = 'processing'
        WHERE s.dependency = d.name) AS extra_slots,
       (SELECT COUNT(*) FROM dependency_permits p
        WHERE p.dependency = d.name AND (p.expires_at > NOW() OR EXISTS (
            SELECT 1 FROM chunks c WHERE c.id = p.chunk_id AND c.lease_token = p.lease_token
              AND c.status = 'processing'))) AS permits,
       (SELECT COUNT(*) FROM queues q
        WHERE q.dependency = d.name AND q.status = 'active') AS active_queues,
       (SELECT r.since FROM claim_regroups r WHERE r.dependency = d.name) AS regroup_since
FROM dependencies d
ORDER BY d.name;

-- deps_special --
-- The dependencies a claim must treat apart (limited, gated, or with a budget below full) that have an active queue, one row each.
-- Until 2026-12-07 a row for each active queue, which the claim then named: read by every worker
-- process every 0.2 s, 236 ms at 50,000 active queues of one capped dependency.
-- `runnable`: whether a chunk of its active queues is runnable now, read in its claim group
-- (a gated dependency without limits: true, its probe's claim reads the plain order); a worker
-- claims from the others only after its next read (an account's chunks in a provider's backoff
-- cost each worker a claim each at every read of this list until 2026-12-07).
SELECT d.*, NOW() AS now,
       CASE WHEN d.connections IS NULL AND d.rate_units IS NULL THEN true
            ELSE EXISTS (SELECT 1 FROM chunks c
                         WHERE c.claim_group = d.name AND c.status = 'pending'
                           AND c.run_after <= NOW()
                           AND COALESCE((SELECT true FROM queues q
                                         WHERE q.id = c.queue_id AND q.status = 'active'
                                           AND q.dependency = d.name), false)) END AS runnable
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
       -- A gated dependency without limits (group ''): true, its claim reads the plain order.
       CASE WHEN chunksync_claim_group(:name::text) = '' THEN true
            ELSE EXISTS (SELECT 1 FROM chunks c
                         WHERE c.claim_group = :name::text
                           AND c.status = 'pending' AND c.run_after <= NOW()
                           AND (:queue_id::uuid IS NULL OR c.queue_id = :queue_id::uuid)
                           AND COALESCE((SELECT true FROM queues q
                                         WHERE q.id = c.queue_id AND q.status = 'active'
                                           AND q.kind = ANY(:kinds::text[])
                                           AND q.dependency = :name::text), false)) END
       AS runnable;

-- deps_slots_sweep --
-- Forget the extra slots of chunks that no longer run under the lease that took them.
DELETE FROM dependency_slots s
WHERE s.dependency = :name AND NOT EXISTS (
    SELECT 1 FROM chunks c
    WHERE c.id = s.chunk_id AND c.lease_token = s.lease_token AND c.status = 'processing');

-- deps_slot_take --
-- An extra slot for a running chunk, fenced by its lease token (0 rows: the lease is lost).
INSERT INTO dependency_slots (id, dependency, chunk_id, lease_token, taken_at)
SELECT :id::uuid, :name, c.id, c.lease_token, NOW() FROM chunks c
WHERE c.id = :chunk_id::uuid AND c.lease_token = :token::uuid AND c.status = 'processing';

-- deps_slot_release --
-- Give an extra slot back.
DELETE FROM dependency_slots WHERE id = :id::uuid;

-- deps_queue_set --
-- Name the dependency of a queue (queues made before dependencies were rows have none).
UPDATE queues SET dependency = :dependency WHERE id = :id::uuid AND dependency IS NULL;

-- deps_queues_unnamed --
-- Active queues whose dependency is not named yet.
SELECT id::text AS id, source, kind FROM queues WHERE dependency IS NULL AND status = 'active';

-- claim_chunks_of --
-- Lease up to :limit runnable chunks of the active queues of the dependency :dependency (only of the queue :queue_id when given), like claim_chunks: by priority, then each chunk's place in the fair order (fair_key), a tenant at its in-flight quota skipped and one below it given only its room (the caller then gives back what a claim at the same moment made too many: tenants.keep_quotas).
-- Read through chunks_claim_fair in the dependency's claim group alone (migration 0025; the
-- caller holds the dependency's row, so its limits, and so its chunks' group, do not change
-- meanwhile): a limited dependency's claim reads past no other dependency's backlog. A gated
-- dependency without limits has group '': its claim (a probe) reads the plain claim's order.
WITH
-- include tenant_room --
, picked AS (
    SELECT c.id, c.tenant, c.priority, c.fair_key FROM chunks c
    WHERE c.claim_group = chunksync_claim_group(:dependency::text)
      AND c.status = 'pending' AND c.run_after <= NOW()
      AND (:queue_id::uuid IS NULL OR c.queue_id = :queue_id::uuid)
      -- Its queue looked up by its key (a scalar subquery, which the planner cannot hash): an
      -- array of the dependency's active queues, as until 2026-12-07, cost ~0.6 us each a claim.
      AND COALESCE((SELECT true FROM queues q
                    WHERE q.id = c.queue_id AND q.status = 'active'
                      AND q.kind = ANY(:kinds::text[]) AND q.dependency = :dependency::text),
                   false)
      AND NOT ((c.tenant || '') = ANY(ARRAY(SELECT tenant FROM room WHERE n <= 0)))
    ORDER BY c.priority DESC, c.fair_key
    LIMIT :limit
    FOR UPDATE OF c SKIP LOCKED
),
ranked AS (
    SELECT o.id, r.n AS room,
           row_number() OVER (PARTITION BY o.tenant ORDER BY o.priority DESC, o.fair_key) AS nth
    FROM picked o LEFT JOIN room r ON r.tenant = o.tenant
)
UPDATE chunks c
SET status = 'processing', attempts = c.attempts + 1, lease_token = :token::uuid,
    lease_expires_at = NOW() + :lease_s::float8, worker_id = :worker_id, updated_at = NOW()
WHERE c.id = ANY(ARRAY(SELECT id FROM ranked WHERE room IS NULL OR nth <= room))
-- Each column of a Chunk and its place in the fair order, read in binary form
-- (Session.fetch_table): the uuids and JSON as text, which psycopg reads in C (a uuid's 16
-- bytes would take a Python loader).
RETURNING c.id::text AS id, c.queue_id::text AS queue_id, c.tenant, c.seq,
          c.payload::text AS payload, c.status, c.priority, c.attempts, c.max_attempts,
          c.run_after, c.lease_token::text AS lease_token, c.lease_expires_at, c.worker_id,
          c.last_category, c.last_error, c.dead_reason, c.items_processed,
          c.checkpoint::text AS checkpoint, c.crash_count, c.stress_retries, c.deferrals,
          c.created_at, c.updated_at, c.fair_key;

-- deps_relaxed_commit --
-- This transaction's commit need not wait for the disk (it only counts a wait).
SET LOCAL synchronous_commit TO OFF;

-- deps_permits_sweep --
-- Forget the permits of one dependency that are no longer live (expired, their last claim's chunk done or recovered).
DELETE FROM dependency_permits
WHERE dependency = :name AND expires_at <= NOW() AND NOT EXISTS (
    SELECT 1 FROM chunks c
    WHERE c.id = dependency_permits.chunk_id AND c.lease_token = dependency_permits.lease_token
      AND c.status = 'processing');

-- deps_permit_held --
-- A permit still held (a sweep has not taken it), with its lane's arrival time.
SELECT id, tat FROM dependency_permits WHERE id = :id::uuid AND dependency = :name;

-- deps_permit_take --
-- A connection permit of a capped dependency for one slot thread.
INSERT INTO dependency_permits (id, dependency, worker_id, expires_at)
VALUES (:id::uuid, :name, :worker_id, NOW() + :lease_s::float8);

-- deps_permit_renew --
-- A claim under a permit: it stays live for the lease, and while that claim's last chunk runs.
UPDATE dependency_permits
SET chunk_id = :chunk_id::uuid, lease_token = :token::uuid, expires_at = NOW() + :lease_s::float8,
    tat = :tat::float8
WHERE id = :id::uuid;

-- deps_permit_release --
-- Give a connection permit back.
DELETE FROM dependency_permits WHERE id = :id::uuid;

-- pg_deps_regroup_lock --
-- The rows of a dependency's queues, locked in one order when its chunks are to change claim group (migration 0025): a statement adding chunks to them has then committed, and the mover sees its chunks, or waits and gives its own the new group (0025's trigger).
SELECT id FROM queues WHERE dependency = :name ORDER BY id FOR NO KEY UPDATE;

-- pg_deps_regroup_mark --
-- A change of a dependency's limits whose chunks must move to another claim group: a new token (a later change replaces an earlier one's), its mover this process, from the first queue.
INSERT INTO claim_regroups (dependency, token, since, mover, beat_at)
VALUES (:name, :token::uuid, NOW(), :mover, NOW())
ON CONFLICT (dependency) DO UPDATE
SET token = excluded.token, since = excluded.since, mover = excluded.mover,
    beat_at = excluded.beat_at, queue_id = NULL, seq = NULL;

-- pg_deps_regroup_take --
-- A dependency's regroup for `mover` to go on with: its own, or one whose mover has moved nothing for :stale_s (its process ended); with where it got to.
UPDATE claim_regroups
SET mover = :mover, beat_at = NOW()
WHERE dependency = :name AND (mover = :mover OR beat_at < NOW() - :stale_s::float8)
RETURNING token::text AS token, queue_id::text AS queue_id, seq;

-- pg_deps_regroup_due --
-- The dependencies whose regroup `mover` may go on with: its own, or one left by a silent mover.
SELECT dependency FROM claim_regroups
WHERE mover = :mover OR beat_at < NOW() - :stale_s::float8
ORDER BY since;

-- pg_deps_regroup_beat --
-- How far the mover of a dependency's regroup got, and whether it goes on (:free: it stops here, and any mover may take it over at once); 0 rows: a later change replaced it, or another mover took it over.
UPDATE claim_regroups
SET beat_at = CASE WHEN :free::boolean THEN 0 ELSE NOW() END, queue_id = :queue_id::uuid,
    seq = :seq
WHERE dependency = :name AND token = :token::uuid AND mover = :mover;

-- pg_deps_regroup_free --
-- A regroup this process marked but does not walk on (it sees one tenant's chunks alone, or its command was interrupted): any mover may take it over at once.
UPDATE claim_regroups SET beat_at = 0 WHERE dependency = :name AND mover = :mover;

-- pg_deps_regroup_done --
-- A regroup whose every chunk moved (none, if a later change replaced it).
DELETE FROM claim_regroups WHERE dependency = :name AND token = :token::uuid;

-- pg_deps_regroup_queues --
-- The ids of a dependency's queues that hold a chunk not completed (whatever the queue's status: a dead chunk of a finished queue may be revived), in the order a regroup walks them: a fleet's history of finished queues (a sync a mailbox, thousands) is not walked.
SELECT q.id::text AS id FROM queues q
WHERE q.dependency = :name
  AND EXISTS (SELECT 1 FROM chunks c WHERE c.queue_id = q.id AND c.status <> 'completed')
ORDER BY q.id;

-- pg_deps_regroup_turn --
-- One batch of a dependency's regroup at a time, whoever moves it: a batch whose statement began before a later change of the limits ends before that change's mover reads them.
SELECT pg_advisory_xact_lock(hashtextextended('chunksync.regroup:' || :name, 0)) IS NULL AS turn;

-- pg_queue_regroup_turn --
-- One batch of a queue's chunks at a time, whoever moves them (a dependency's regroup, the walk after a pause or a resume): a batch's statement then reads the queue's status and its chunks after the batch before it committed, so a batch that read the status before a resume cannot undo what the resume's walk moved.
SELECT pg_advisory_xact_lock(hashtextextended('chunksync.regroup.queue:' || :queue_id, 0)) IS NULL AS turn;

-- pg_queue_regroup --
-- The next :limit chunks of a queue whose walk to the claim group its status calls for is due (regroup_seq: from there, in seq order), moved as pg_deps_regroup moves them; regroup_seq advances past them, or is cleared at the queue's end, unless a pause or a resume meanwhile started the walk again. Returns whether a walk was due, how many chunks were read (fewer than :limit: the queue's end) and moved.
WITH target AS MATERIALIZED (
    SELECT q.regroup_seq AS after,
           chunksync_queue_claim_group(q.status, q.id, q.dependency) AS claim_group
    FROM queues q WHERE q.id = :queue_id::uuid AND q.regroup_seq IS NOT NULL
),
-- include regroup_batch --
, advanced AS (
    UPDATE queues q
    SET regroup_seq = CASE WHEN (SELECT COUNT(*) FROM batch) < :limit THEN NULL
                           ELSE (SELECT MAX(seq) FROM batch) END
    FROM target t
    WHERE q.id = :queue_id::uuid AND q.regroup_seq = t.after
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM target) AS due, (SELECT COUNT(*) FROM batch) AS read,
       (SELECT COUNT(*) FROM moved) AS moved, (SELECT COUNT(*) FROM advanced) AS advanced;

-- pg_queue_regroups_due --
-- The queues whose chunks' walk to another claim group is due (regroup_seq set), oldest change first, with the seconds since their row last changed (the pause or the resume that started it: Prometheus shows them).
SELECT id::text AS id, name, GREATEST(NOW() - updated_at, 0) AS moving_s FROM queues
WHERE regroup_seq IS NOT NULL ORDER BY updated_at LIMIT 100;

-- pg_queue_regroups_stranded --
-- Queues no longer paused whose pending chunks are still in their paused group, with no walk due: resumed by code before migration 0027, which does not start the walk. A loose scan of chunks_claim_fair's groups (one probe a group: '', the limited dependencies' and the paused queues'), then each paused group's queue by its id.
WITH RECURSIVE g(claim_group) AS (
    (SELECT claim_group FROM chunks WHERE status = 'pending' ORDER BY claim_group LIMIT 1)
    UNION ALL
    SELECT (SELECT c.claim_group FROM chunks c
            WHERE c.status = 'pending' AND c.claim_group > g.claim_group
            ORDER BY c.claim_group LIMIT 1)
    FROM g WHERE g.claim_group IS NOT NULL
)
UPDATE queues q SET regroup_seq = -2147483648
FROM g
WHERE left(g.claim_group, 7) = 'paused:' AND q.id = chunksync_try_uuid(substr(g.claim_group, 8))
  AND q.status <> 'paused' AND q.regroup_seq IS NULL
RETURNING q.id::text AS id;

-- pg_deps_regroup --
-- The next :limit chunks of a queue after :after in seq order; those not completed (a dead chunk may be revived) move to the claim group the queue calls for (migration 0027: the paused group while it is paused, else its dependency's: its name when limited, else '') as this statement reads them. Returns the last seq read, how many were read (fewer than :limit: the queue's end) and how many moved.
-- The strays are picked as the batch is read, so a completed chunk (most of a queue's history)
-- costs one read and no lookup by id: with 900,000 completed chunks ahead of 100,000 open ones,
-- a change took 6.5-7.1 s, now 3.7-5.0 s; each stray is checked again as it is updated.
WITH target AS MATERIALIZED (
    SELECT :after::integer AS after,
           chunksync_queue_claim_group(q.status, q.id, q.dependency) AS claim_group
    FROM queues q WHERE q.id = :queue_id::uuid
),
-- include regroup_batch --
SELECT (SELECT MAX(seq) FROM batch) AS last, (SELECT COUNT(*) FROM batch) AS read,
       (SELECT COUNT(*) FROM moved) AS moved;
