-- The dashboard's chunk search (chunksync.search): a free text, matched in any case against the
-- id, the payload, the last error and the dead reason, and the filters, each optional.
-- A text match reads every chunk the filters leave: fine for an operator's search, not a hot path.

-- chunks_search --
-- A page of the chunks matching the text and filters, in queue order: the queues' ids first (a tenant's through queues_tenant_status), then each one's chunks through (queue_id, seq), so that a tenant's first page does not step over every chunk of the queues that sort before its own (5.4 -> 0.7 ms beside 300,000 of another tenant's chunks, benchmarks/bench_readers.py).
SELECT * FROM chunks
WHERE queue_id IN (SELECT id FROM queues WHERE :tenant IS NULL OR tenant = :tenant)
  AND (:queue_id IS NULL OR queue_id = :queue_id)
  AND (:status IS NULL OR status = :status)
  AND (:category IS NULL OR last_category = :category)
  AND (:tenant IS NULL OR tenant = :tenant)
  AND (:pattern IS NULL OR id LIKE :pattern ESCAPE '\' OR payload LIKE :pattern ESCAPE '\'
       OR last_error LIKE :pattern ESCAPE '\' OR dead_reason LIKE :pattern ESCAPE '\')
ORDER BY queue_id, seq
LIMIT :limit OFFSET :offset;

-- chunks_search_count --
-- How many chunks match the text and filters. Without a text or a category, all chunks or the completed ones from the queues' counts (a chunk's tenant is its queue's): all of a queue's chunks are its count, its completed ones its count less the others (chunks_queue_open), as on PostgreSQL; as one filter of every chunk it read them all. Any other status reads its chunks through that index or chunks_dead.
SELECT CASE
    WHEN :pattern IS NULL AND :category IS NULL AND (:status IS NULL OR :status = 'completed')
    THEN (
        SELECT COALESCE(SUM(q.n_chunks - CASE WHEN :status IS NULL THEN 0 ELSE (
                   SELECT COUNT(*) FROM chunks c
                   WHERE c.queue_id = q.id AND c.status <> 'completed') END), 0)
        FROM queues q
        WHERE (:queue_id IS NULL OR q.id = :queue_id) AND (:tenant IS NULL OR q.tenant = :tenant))
    ELSE (
        SELECT COUNT(*) FROM chunks
        WHERE (:queue_id IS NULL OR queue_id = :queue_id)
          AND (:status IS NULL OR status = :status)
          AND (:category IS NULL OR last_category = :category)
          AND (:tenant IS NULL OR tenant = :tenant)
          AND (:pattern IS NULL OR id LIKE :pattern ESCAPE '\' OR payload LIKE :pattern ESCAPE '\'
               OR last_error LIKE :pattern ESCAPE '\' OR dead_reason LIKE :pattern ESCAPE '\'))
END AS n;
