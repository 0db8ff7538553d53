-- The dashboard's chunk search (chunksync.search): a free text, matched in any case against the
-- id, the payload, the last error and the dead reason, and the filters, each optional.
-- A text match reads every chunk the filters leave: fine for an operator's search, not a hot path.

-- chunks_search --
-- A page of the chunks matching the text and filters, in queue order.
SELECT * FROM chunks
WHERE (:queue_id IS NULL OR queue_id = :queue_id)
  AND (:status IS NULL OR status = :status)
  AND (:category IS NULL OR last_category = :category)
  AND (:tenant IS NULL OR tenant = :tenant)
  AND (:pattern IS NULL OR id LIKE :pattern ESCAPE '\' OR payload LIKE :pattern ESCAPE '\'
       OR last_error LIKE :pattern ESCAPE '\' OR dead_reason LIKE :pattern ESCAPE '\')
ORDER BY queue_id, seq
LIMIT :limit OFFSET :offset;

-- chunks_search_count --
-- How many chunks match the text and filters.
SELECT COUNT(*) AS n FROM chunks
WHERE (:queue_id IS NULL OR queue_id = :queue_id)
  AND (:status IS NULL OR status = :status)
  AND (:category IS NULL OR last_category = :category)
  AND (:tenant IS NULL OR tenant = :tenant)
  AND (:pattern IS NULL OR id LIKE :pattern ESCAPE '\' OR payload LIKE :pattern ESCAPE '\'
       OR last_error LIKE :pattern ESCAPE '\' OR dead_reason LIKE :pattern ESCAPE '\');
