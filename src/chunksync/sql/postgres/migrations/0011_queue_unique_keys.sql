-- 0011: uniqueness keys for queues. Enqueueing with a key that an unfinished queue (active,
-- paused, or failed and so retryable) of the same tenant holds returns that queue: the partial
-- unique index below is the arbiter (INSERT ... ON CONFLICT DO NOTHING), so two enqueuers
-- racing cannot both create one, and a key is free again once its queue completes or is
-- cancelled.

ALTER TABLE queues ADD COLUMN unique_key text;  -- added by 0011
CREATE UNIQUE INDEX queues_unique_key ON queues (tenant, unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('active', 'paused', 'failed');
