-- 0022_queue_chunk_totals --
-- expand --
-- How many chunks each queue holds, kept on its row (queues.n_chunks) by the statements that
-- add or remove chunks: a queue's completed chunks are then its total less the others, and the
-- index of chunks by queue and status can leave the completed ones out (0023), so that a
-- finish writes one index entry fewer. The count moves once a statement (an AFTER ... FOR EACH
-- STATEMENT trigger reads the statement's rows, grouped by queue), not once a chunk: chunksync
-- inserts a batch of 1,000 chunks in one statement, and retention deletes in batches. A claim
-- and a finish do not touch it: a queue's row is written when chunks come and go, not when they
-- run.
-- NULL is "not counted yet": a queue older than this migration, until 0023 counts its chunks
-- (NULL plus a batch stays NULL). A queue created from now on starts at 0, by the code before
-- this as by the code after it, and the triggers count every writer's chunks alike.
-- Online: catalog changes, each holding its table's lock for a moment.
ALTER TABLE queues ADD COLUMN n_chunks bigint;
ALTER TABLE queues ALTER COLUMN n_chunks SET DEFAULT 0;

-- Add the statement's chunks to their queues' counts, or take them away. The queues' rows are
-- locked in one order first, so two statements over the same queues wait instead of deadlocking.
CREATE FUNCTION chunksync_count_chunks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM queues WHERE id IN (SELECT queue_id FROM changed) ORDER BY id
    FOR NO KEY UPDATE;
    UPDATE queues q
    SET n_chunks = q.n_chunks + CASE TG_OP WHEN 'INSERT' THEN d.n ELSE -d.n END
    FROM (SELECT queue_id, count(*) AS n FROM changed GROUP BY queue_id) d
    WHERE q.id = d.queue_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER chunks_count_inserted
AFTER INSERT ON chunks REFERENCING NEW TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION chunksync_count_chunks();

CREATE TRIGGER chunks_count_deleted
AFTER DELETE ON chunks REFERENCING OLD TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION chunksync_count_chunks();

-- One queue's chunks counted, its row locked first: a statement adding chunks to it has then
-- either committed (and is counted) or waits for this transaction's end (and adds its own to
-- this count). It counts in a snapshot taken after the lock (a VOLATILE function's statements
-- each take their own). For 0023's count of the queues older than 0022, and for a recount.
CREATE FUNCTION chunksync_count_queue_chunks(p_queue_id uuid) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM queues WHERE id = p_queue_id FOR NO KEY UPDATE;
    RETURN (SELECT count(*) FROM chunks WHERE queue_id = p_queue_id);
END
$$;
