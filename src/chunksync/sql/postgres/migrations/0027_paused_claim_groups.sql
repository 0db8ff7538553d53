-- 0027_paused_claim_groups --
-- expand --
-- A paused queue's chunks in a claim group of their own ('paused:' and the queue's id), which
-- no claim reads: each claim read past a paused queue's backlog when it lay ahead in the fair
-- order, one chunk at a time, and the cost grew as the other tenants' work went on (100,000
-- paused chunks: a small tenant's claim from ~14 to ~40-80 ms, bench_pg_claim_cost's
-- claim_behind_ms_paused). A chunk's group is now its queue's: the paused group while the queue
-- is paused, else its dependency's (0025).
-- Pausing or resuming a queue (set_queue_status) sets its regroup_seq, the place its chunks'
-- walk to their new group starts from; the walk (chunksync.deps.regroup.move_queue) goes in
-- seq order, a batch a transaction, each advancing regroup_seq, and clears it at the queue's
-- end. A status change meanwhile starts the walk again. Whoever walks (the command that paused
-- or resumed, the maintenance leader) goes on from where the last batch ended.
-- The code before this pauses and resumes without setting regroup_seq: a queue it resumes keeps
-- its chunks in the paused group until a maintenance leader of this code finds them there
-- (a read of chunks_claim_fair's paused groups, one probe a group) and walks them back; a queue
-- it pauses keeps its chunks where they are (claims read past them, as before).
-- Online: a column without a default and two functions, each a moment's catalog change.
ALTER TABLE queues ADD COLUMN IF NOT EXISTS regroup_seq integer;
-- The claim group of a queue's chunks, by its status, id and dependency.
CREATE OR REPLACE FUNCTION chunksync_queue_claim_group(p_status text, p_queue uuid,
                                                       p_dependency text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_status = 'paused' THEN 'paused:' || p_queue::text
                ELSE chunksync_claim_group(p_dependency) END
$$;
-- 0025's check of an insert's claim groups, by the queue's status too: a chunk inserted into a
-- paused queue, or while it is paused, goes to the paused group.
CREATE OR REPLACE FUNCTION chunksync_group_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE chunks c SET claim_group = g.claim_group
    FROM changed n
    JOIN (SELECT q.id, chunksync_queue_claim_group(q.status, q.id, q.dependency) AS claim_group
          FROM queues q
          WHERE q.id IN (SELECT queue_id FROM changed)) g ON g.id = n.queue_id
    WHERE n.claim_group <> g.claim_group AND c.id = n.id;
    RETURN NULL;
END
$$;
