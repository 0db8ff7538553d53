-- chunk_ids_in_range --
-- Ids of chunks between two ids (a typed prefix padded with 0s and fs): uses the primary key.
SELECT id::text AS id FROM chunks WHERE id BETWEEN :lo::uuid AND :hi::uuid ORDER BY id LIMIT :limit;
