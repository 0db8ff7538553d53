-- The dashboard's chunk search (chunksync.search): a free text, matched in any case against the
-- id, the payload, the last error and the dead reason, and the filters, each optional.
-- A text match reads every chunk the filters leave: fine for an operator's search, not a hot path.

-- chunks_search --
-- A page of the chunks matching the text and filters, in queue order.
SELECT * FROM chunks
WHERE (:queue_id::text IS NULL OR queue_id = chunksync_try_uuid(:queue_id::text))
  AND (:status::text IS NULL OR status = :status::text)
  AND (:category::text IS NULL OR last_category = :category::text)
  AND (:tenant::text IS NULL OR tenant = :tenant::text)
  AND (:pattern::text IS NULL OR id::text ILIKE :pattern::text ESCAPE '\'
       OR payload::text ILIKE :pattern::text ESCAPE '\'
       OR last_error ILIKE :pattern::text ESCAPE '\' OR dead_reason ILIKE :pattern::text ESCAPE '\')
ORDER BY queue_id, seq
LIMIT :limit OFFSET :offset;

-- chunks_search_count --
-- How many chunks match the text and filters.
SELECT COUNT(*) AS n FROM chunks
WHERE (:queue_id::text IS NULL OR queue_id = chunksync_try_uuid(:queue_id::text))
  AND (:status::text IS NULL OR status = :status::text)
  AND (:category::text IS NULL OR last_category = :category::text)
  AND (:tenant::text IS NULL OR tenant = :tenant::text)
  AND (:pattern::text IS NULL OR id::text ILIKE :pattern::text ESCAPE '\'
       OR payload::text ILIKE :pattern::text ESCAPE '\'
       OR last_error ILIKE :pattern::text ESCAPE '\' OR dead_reason ILIKE :pattern::text ESCAPE '\');
