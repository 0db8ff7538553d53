-- Health you can see (issue 5): the alert state and the indexes of the health summaries.
-- The per-queue SLA (queues.sla_s) is in schema.sql; migration 0003 adds all of it.

CREATE TABLE alerts (
    key         text PRIMARY KEY,
    rule        text NOT NULL,
    subject     text,
    severity    text NOT NULL,
    state       text NOT NULL CHECK (state IN ('firing', 'resolved')),
    message     text NOT NULL,
    fired_at    double precision NOT NULL,
    updated_at  double precision NOT NULL,
    resolved_at double precision
);
CREATE INDEX alerts_state ON alerts (state, updated_at);
CREATE INDEX attempts_worker ON attempts (worker_id, finished_at);
CREATE INDEX chunks_dead ON chunks (queue_id) WHERE status = 'dead';
