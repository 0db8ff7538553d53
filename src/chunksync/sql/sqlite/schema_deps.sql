-- Dependencies as shared state (chunksync.deps): one row per dependency a queue's source names,
-- with its declared limits and its gate, retry budget and rate limit, shared by every worker.

ALTER TABLE queues ADD COLUMN dependency TEXT;  -- what the queue's source leans on; added by 0004
CREATE INDEX queues_dependency ON queues (dependency, status);

CREATE TABLE dependencies (
    name             TEXT PRIMARY KEY,
    connections      INTEGER CHECK (connections IS NULL OR connections >= 1),
    rate_units       REAL CHECK (rate_units IS NULL OR rate_units > 0),
    rate_period_s    REAL CHECK (rate_period_s IS NULL OR rate_period_s > 0),
    burst            INTEGER CHECK (burst IS NULL OR burst >= 1),
    tokens           REAL,  -- the retry budget's tokens; NULL: full
    capacity         REAL,  -- the budget's capacity when tokens were last written
    flow             TEXT NOT NULL DEFAULT 'ok' CHECK (flow IN ('ok', 'probing', 'stopped')),
    next_probe_at    REAL,
    probe_interval_s REAL NOT NULL DEFAULT 0,
    gated_since      REAL,
    tat              REAL NOT NULL DEFAULT 0,  -- the rate limit's theoretical arrival time
    probes           INTEGER NOT NULL DEFAULT 0,  -- counters, for the metrics
    cap_waits        INTEGER NOT NULL DEFAULT 0,
    rate_waits       INTEGER NOT NULL DEFAULT 0,
    gate_waits       INTEGER NOT NULL DEFAULT 0,
    updated_at       REAL NOT NULL
);

-- Extra slots a handler takes with ctx.slot(): valid while its chunk runs under the same lease.
CREATE TABLE dependency_slots (
    id          TEXT PRIMARY KEY,
    dependency  TEXT NOT NULL,
    chunk_id    TEXT NOT NULL,
    lease_token TEXT NOT NULL,
    taken_at    REAL NOT NULL
);
CREATE INDEX dependency_slots_dependency ON dependency_slots (dependency);
