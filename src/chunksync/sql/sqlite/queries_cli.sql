-- chunk_ids_in_range --
-- Ids of chunks between two ids (a typed prefix padded with 0s and fs): uses the primary key.
SELECT id FROM chunks WHERE id BETWEEN :lo AND :hi ORDER BY id LIMIT :limit;
