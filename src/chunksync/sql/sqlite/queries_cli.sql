-- Queries of the everyday CLI: chunk ids by prefix, queues by uniqueness key.

-- chunk_ids_in_range --
-- Ids of chunks between two ids (a typed prefix padded with 0s and fs): uses the primary key.
SELECT id FROM chunks WHERE id BETWEEN :lo AND :hi ORDER BY id LIMIT :limit;

-- insert_queue_unique --
-- Create one sync queue unless an unfinished queue of the tenant holds its key (no row then).
INSERT INTO queues (id, tenant, name, source, kind, status, priority, policy, max_attempts,
                    unique_key, created_at, updated_at)
VALUES (:id, :tenant, :name, :source, :kind, 'active', :priority, :policy, :max_attempts,
        :unique_key, NOW(), NOW())
ON CONFLICT (tenant, unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('active', 'paused', 'failed')
DO NOTHING
RETURNING *;

-- queue_holding_key --
-- The unfinished queue of a tenant that holds a uniqueness key.
SELECT id FROM queues
WHERE tenant = :tenant AND unique_key = :unique_key AND status IN ('active', 'paused', 'failed');
