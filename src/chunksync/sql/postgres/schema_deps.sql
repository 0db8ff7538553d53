-- Dependencies as shared state (chunksync.deps): one row per dependency a queue's source names,
-- with its declared limits and its gate, retry budget and rate limit, shared by every worker.

ALTER TABLE queues ADD COLUMN dependency text;  -- what the queue's source leans on; added by 0008
CREATE INDEX queues_dependency ON queues (dependency, status);

CREATE TABLE dependencies (
    name             text PRIMARY KEY,
    connections      integer CHECK (connections IS NULL OR connections >= 1),
    rate_units       double precision CHECK (rate_units IS NULL OR rate_units > 0),
    rate_period_s    double precision CHECK (rate_period_s IS NULL OR rate_period_s > 0),
    burst            integer CHECK (burst IS NULL OR burst >= 1),
    tokens           double precision,  -- the retry budget's tokens; NULL: full
    capacity         double precision,  -- the budget's capacity when tokens were last written
    flow             text NOT NULL DEFAULT 'ok' CHECK (flow IN ('ok', 'probing', 'stopped')),
    next_probe_at    double precision,
    probe_interval_s double precision NOT NULL DEFAULT 0,
    gated_since      double precision,
    tat              double precision NOT NULL DEFAULT 0,  -- the rate limit's arrival time
    probes           bigint NOT NULL DEFAULT 0,  -- counters, for the metrics
    cap_waits        bigint NOT NULL DEFAULT 0,
    rate_waits       bigint NOT NULL DEFAULT 0,
    gate_waits       bigint NOT NULL DEFAULT 0,
    updated_at       double precision NOT NULL
);

-- Extra slots a handler takes with ctx.slot(): valid while its chunk runs under the same lease.
CREATE TABLE dependency_slots (
    id          uuid PRIMARY KEY,
    dependency  text NOT NULL,
    chunk_id    uuid NOT NULL,
    lease_token uuid NOT NULL,
    taken_at    double precision NOT NULL
);
CREATE INDEX dependency_slots_dependency ON dependency_slots (dependency);
