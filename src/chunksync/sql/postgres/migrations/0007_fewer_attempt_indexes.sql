-- 0007_fewer_attempt_indexes --
-- Every attempt row writes every index of attempts, seven of them: index inserts (chunks' and
-- attempts') were a fifth of the machine's time in a drain of no-op chunks (perf). Two go:
-- - attempts_queue_outcome (queue_id, outcome, finished_at, ...) is folded into
--   attempts_queue_finished, which now carries the same columns (INCLUDE): one index serves a
--   queue's time windows and its whole summary without the table;
-- - attempts_finished becomes a BRIN index: rows arrive in finished_at order.
-- Measured on 1,000,000 attempts: a queue summary 20 -> 21 ms (100 queues), 0.79 -> 0.87 s (one
-- queue holding them all); a drain of no-op chunks ~4% faster.
-- On a large table this builds one B-tree while writes to attempts wait.

DROP INDEX attempts_queue_outcome;
DROP INDEX attempts_queue_finished;
CREATE INDEX attempts_queue_finished ON attempts (queue_id, finished_at)
    INCLUDE (outcome, category, processing_s, items_processed, retry_delay_s, efficiency);
DROP INDEX attempts_finished;
CREATE INDEX attempts_finished ON attempts USING brin (finished_at);
