-- 0016_queue_chunk_totals --
-- expand --
-- How many chunks each queue holds, kept on its row (queues.n_chunks) by triggers on the
-- chunks' inserts and deletes, whoever writes them: a queue's completed chunks are its count
-- less the others, so a queue's counts no longer read its completed chunks (most of a long
-- queue's history). As on PostgreSQL (its 0022), where the index by queue and status leaves
-- the completed chunks out as well. The queues of before are counted here, in this migration's
-- transaction. The code before this works with the database as it is: it ignores the column,
-- and its inserts and deletes fire the triggers.
ALTER TABLE queues ADD COLUMN n_chunks INTEGER NOT NULL DEFAULT 0;  -- added by 0016
UPDATE queues SET n_chunks = (SELECT COUNT(*) FROM chunks c WHERE c.queue_id = queues.id);
CREATE TRIGGER chunks_count_inserted AFTER INSERT ON chunks
BEGIN
    UPDATE queues SET n_chunks = n_chunks + 1 WHERE id = NEW.queue_id;
END;
CREATE TRIGGER chunks_count_deleted AFTER DELETE ON chunks
BEGIN
    UPDATE queues SET n_chunks = n_chunks - 1 WHERE id = OLD.queue_id;
END;
