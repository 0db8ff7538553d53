-- 0013_fewer_attempt_indexes --
-- expand --
-- Two indexes of attempts that no statement reads: in the plan of every named query
-- (EXPLAIN QUERY PLAN; tests/contract/test_sqlite_indexes.py keeps it so), a queue's attempts
-- are read through attempts_queue_outcome, which also leads with queue_id and covers what
-- they ask. Every attempt row wrote both for nothing: the worker's SQL in a tight loop
-- (benchmarks/sqlite_ceiling.py) spent ~3 us less per chunk without them, of ~45.
-- The code before this works with the database as it is: no statement names either index.
DROP INDEX attempts_queue_finished;
DROP INDEX attempts_queue_started;
