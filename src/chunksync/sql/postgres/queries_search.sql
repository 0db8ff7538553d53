-- The dashboard's chunk search (chunksync.search): a free text, matched in any case against the
-- id, the payload, the last error and the dead reason, and the filters, each optional.
-- A text match reads every chunk the filters leave: fine for an operator's search, not a hot path.

-- chunks_search --
-- A page of the chunks matching the text and filters, in queue order: the queues in id order, each one's chunks through (queue_id, seq) from its first, at most a page's worth of each (over one ordered scan of the whole key with the tenant checked on each row, a tenant's first page took 155-190 ms beside 800,000 of another tenant's chunks).
SELECT c.* FROM queues q
CROSS JOIN LATERAL (
    SELECT * FROM chunks c
    WHERE c.queue_id = q.id
      AND (:status::text IS NULL OR c.status = :status::text)
      AND (:category::text IS NULL OR c.last_category = :category::text)
      AND (:tenant::text IS NULL OR c.tenant = :tenant::text)
      AND (:pattern::text IS NULL OR c.id::text ILIKE :pattern::text ESCAPE '\'
           OR c.payload::text ILIKE :pattern::text ESCAPE '\'
           OR c.last_error ILIKE :pattern::text ESCAPE '\'
           OR c.dead_reason ILIKE :pattern::text ESCAPE '\')
    ORDER BY c.seq
    LIMIT :limit + :offset) c
WHERE (:queue_id::text IS NULL OR q.id = chunksync_try_uuid(:queue_id::text))
  AND (:tenant::text IS NULL OR q.tenant = :tenant::text)
ORDER BY q.id, c.seq
LIMIT :limit OFFSET :offset;

-- chunks_search_count --
-- How many chunks match the text and filters. Without a text or a category, all chunks or the completed ones from the queues' counts (a chunk's tenant is its queue's): all of a queue's chunks are its count, its completed ones its count less the others (chunks_queue_open); as one filter of every chunk, a tenant's count took 60-90 ms beside 800,000 of another tenant's chunks once that index held no completed chunk. Any other status reads its chunks through that index or chunks_dead.
SELECT CASE
    WHEN :pattern::text IS NULL AND :category::text IS NULL
         AND (:status::text IS NULL OR :status::text = 'completed') THEN (
        SELECT COALESCE(SUM(CASE WHEN :status::text IS NULL THEN q.n_chunks
                                 ELSE q.n_chunks - o.n_open END), 0)
        FROM queues q
        -- A queue's open chunks, counted only for the completed filter: with no status the
        -- first line of this WHERE is false, the planner's one-time filter, and no chunk is read.
        CROSS JOIN LATERAL (
            SELECT COUNT(*) AS n_open FROM chunks c
            WHERE :status::text IS NOT NULL AND c.queue_id = q.id AND c.status <> 'completed') o
        WHERE (:queue_id::text IS NULL OR q.id = chunksync_try_uuid(:queue_id::text))
          AND (:tenant::text IS NULL OR q.tenant = :tenant::text))
    ELSE (
        SELECT COUNT(*) FROM chunks
        WHERE (:queue_id::text IS NULL OR queue_id = chunksync_try_uuid(:queue_id::text))
          AND (:status::text IS NULL OR status = :status::text)
          AND (:category::text IS NULL OR last_category = :category::text)
          AND (:tenant::text IS NULL OR tenant = :tenant::text)
          AND (:pattern::text IS NULL OR id::text ILIKE :pattern::text ESCAPE '\'
               OR payload::text ILIKE :pattern::text ESCAPE '\'
               OR last_error ILIKE :pattern::text ESCAPE '\'
               OR dead_reason ILIKE :pattern::text ESCAPE '\'))
END::bigint AS n;
