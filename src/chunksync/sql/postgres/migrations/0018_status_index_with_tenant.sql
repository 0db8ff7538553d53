-- 0018_status_index_with_tenant --
-- expand --
-- outside a transaction --
-- The first online migration: built with CREATE INDEX CONCURRENTLY while workers of the
-- release before it (schema 17) go on claiming and finishing (tests/chaos/test_rolling_upgrade.py).
-- Under row security (0017) a count of a queue's chunks by status must read each row's tenant
-- for the policy, which the (queue_id, status) index did not hold: the planner read the heap
-- (a queue of 250,000 chunks among 1,000,000: 74 ms under the owner, 53 as a superuser). With
-- the tenant in the index it is an index-only scan (26 and 21 ms). The new index replaces the
-- old one, so a chunk's transitions touch no more index entries than before.
-- Safe to run again from its first statement: an interrupted build leaves an invalid index,
-- which the first statement drops.
DROP INDEX CONCURRENTLY IF EXISTS chunks_queue_status_tenant;
CREATE INDEX CONCURRENTLY chunks_queue_status_tenant ON chunks (queue_id, status, tenant);
DROP INDEX CONCURRENTLY IF EXISTS chunks_queue_status;
