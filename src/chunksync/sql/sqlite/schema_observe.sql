-- Health you can see (issue 5): the alert state and the indexes of the health summaries.
-- The per-queue SLA (queues.sla_s) is in schema.sql; migration 0003 adds all of it.

CREATE TABLE alerts (
    key         TEXT PRIMARY KEY,
    rule        TEXT NOT NULL,
    subject     TEXT,
    severity    TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
    message     TEXT NOT NULL,
    fired_at    REAL NOT NULL,
    updated_at  REAL NOT NULL,
    resolved_at REAL
);
CREATE INDEX alerts_state ON alerts (state, updated_at);
-- Covers a queue summary: its outcome totals and its recent completions, without the table.
CREATE INDEX attempts_queue_outcome ON attempts
    (queue_id, outcome, finished_at, category, processing_s, items_processed, retry_delay_s,
     efficiency);
CREATE INDEX attempts_worker ON attempts (worker_id, finished_at);
CREATE INDEX chunks_dead ON chunks (queue_id) WHERE status = 'dead';
