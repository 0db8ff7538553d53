-- 0028_queues_regrouping_index --
-- expand --
-- outside a transaction --
-- The queues whose chunks are on their way to another claim group (0027's regroup_seq), which
-- the maintenance leader reads every turn: a few rows of a table that holds every queue a fleet
-- ever made (a sync a mailbox's folder). Safe to run again from its first statement.
DROP INDEX CONCURRENTLY IF EXISTS queues_regrouping;
CREATE INDEX CONCURRENTLY queues_regrouping ON queues (id) WHERE regroup_seq IS NOT NULL;
