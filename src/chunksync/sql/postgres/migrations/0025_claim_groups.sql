-- 0025_claim_groups --
-- expand --
-- Each chunk's claim group: its dependency's name when that dependency is limited (a cap on its
-- connections or a rate), else ''. A limited dependency's chunks are claimed by claim_chunks_of
-- under its row's lock, everything else by claim_chunks; each claim read the one fair order of
-- every pending chunk and passed over the other's, one by one: a plain claim behind a rate-limited
-- dependency's backlog of 100,000 chunks went from 20 to 45-82 ms as it drained its own
-- (bench_pg_claim_cost, claim_behind_ms_excluded), and a limited dependency's claim read past the
-- rest of the fleet's backlog. Keyed by group (0026's index), each claim reads its own group's
-- chunks in the same fair order and no other's.
-- A dependency's limits come and go (chunksync deps set): the chunks of its queues not finished
-- yet then move to its new group, its queues' rows locked first (the pg_deps_regroup queries).
-- An insert takes its queue's row lock too (0022's chunks_count_inserted), and under it a trigger
-- of its own checks the group its chunks were given: so a chunk inserted while the limits change,
-- or by the code before this (which gives every chunk ''), ends in the group its dependency
-- calls for.
-- The move itself runs after the change's transaction, in batches (chunksync.deps.regroup):
-- claim_regroups holds each change whose chunks are not all moved yet, and how far its mover got.
-- The code before this works with the database as it is: its claims read chunks_fair as before.
-- Online: catalog changes (a column with a constant default, a new table), each holding its
-- table's lock for a moment.
ALTER TABLE chunks ADD COLUMN claim_group text NOT NULL DEFAULT '';

-- A change of a dependency's limits whose chunks are still moving to their new group: the
-- change (token, since), the process moving them and when it last moved some (mover, beat_at;
-- another takes over a mover silent for a minute), and the last chunk its walk read (queue_id, seq:
-- the walk goes queue by queue in id order, each queue's chunks in seq order).
CREATE TABLE claim_regroups (
    dependency text PRIMARY KEY,
    token      uuid NOT NULL,
    since      double precision NOT NULL,
    mover      text NOT NULL,
    beat_at    double precision NOT NULL,
    queue_id   uuid,
    seq        integer
);

-- The claim group of a queue's chunks, by its dependency's name.
CREATE FUNCTION chunksync_claim_group(p_dependency text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT COALESCE((SELECT d.name FROM dependencies d
                     WHERE d.name = p_dependency
                       AND (d.connections IS NOT NULL OR d.rate_units IS NOT NULL)), '')
$$;

-- The check of an insert's claim groups, under its queues' locks: a second statement trigger on
-- insert, which fires after chunks_count_inserted (triggers of one event fire in the order of
-- their names), and so after 0022's count has locked the statement's queues' rows. A VOLATILE
-- function's statements each take their own snapshot: this one sees a change of limits that
-- committed while the lock was waited for.
CREATE FUNCTION chunksync_group_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE chunks c SET claim_group = g.claim_group
    FROM changed n
    JOIN (SELECT q.id, chunksync_claim_group(q.dependency) AS claim_group FROM queues q
          WHERE q.id IN (SELECT queue_id FROM changed)) g ON g.id = n.queue_id
    WHERE n.claim_group <> g.claim_group AND c.id = n.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER chunks_group_inserted
AFTER INSERT ON chunks REFERENCING NEW TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION chunksync_group_inserted();
