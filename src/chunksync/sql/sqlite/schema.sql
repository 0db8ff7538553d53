-- chunksync schema for SQLite: the truth. Migrations must produce the same database (tested).
-- Times are seconds since the epoch (REAL), from the database's clock.

CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
);

-- 0001_initial --

CREATE TABLE queues (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL DEFAULT 'default',
    name         TEXT NOT NULL,
    source       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'paused', 'completed', 'failed', 'cancelled')),
    priority     INTEGER NOT NULL DEFAULT 0,
    policy       TEXT NOT NULL DEFAULT 'default',
    max_attempts INTEGER NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    sla_s        REAL  -- backlog age an alert allows (seconds); added by 0003
);
CREATE INDEX queues_tenant_status ON queues (tenant, status);

CREATE TABLE chunks (
    id               TEXT PRIMARY KEY,
    queue_id         TEXT NOT NULL REFERENCES queues (id) ON DELETE CASCADE,
    tenant           TEXT NOT NULL DEFAULT 'default',
    seq              INTEGER NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'completed', 'dead', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 5,
    run_after        REAL NOT NULL,
    lease_token      TEXT,
    lease_expires_at REAL,
    worker_id        TEXT,
    last_category    TEXT,
    last_error       TEXT,
    dead_reason      TEXT,
    items_processed  INTEGER NOT NULL DEFAULT 0,
    checkpoint       TEXT,
    crash_count      INTEGER NOT NULL DEFAULT 0,
    stress_retries   INTEGER NOT NULL DEFAULT 0,
    deferrals        INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    finished_at      REAL,
    UNIQUE (queue_id, seq)
);
-- Claiming only ever looks at pending chunks: the index stays small however long the history.
CREATE INDEX chunks_runnable ON chunks (priority DESC, created_at, seq) WHERE status = 'pending';
CREATE INDEX chunks_processing ON chunks (lease_expires_at) WHERE status = 'processing';
-- A queue's chunks by status, the completed left out (migration 0017): a finish writes no entry
-- here, and a queue's completed chunks are its count less the others (queues.n_chunks).
CREATE INDEX chunks_queue_open ON chunks (queue_id, status) WHERE status <> 'completed';
CREATE INDEX chunks_finished ON chunks (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE attempts (
    id              INTEGER PRIMARY KEY,
    chunk_id        TEXT NOT NULL,
    queue_id        TEXT NOT NULL,
    tenant          TEXT NOT NULL,
    worker_id       TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    started_at      REAL NOT NULL,
    finished_at     REAL NOT NULL,
    processing_s    REAL NOT NULL,
    chunk_size      INTEGER NOT NULL DEFAULT 0,
    items_processed INTEGER NOT NULL DEFAULT 0,
    items_per_s     REAL,
    efficiency      REAL,
    outcome         TEXT NOT NULL,
    category        TEXT,
    rule            TEXT,
    message         TEXT,
    retry_delay_s   REAL,
    rss_bytes       INTEGER
);
CREATE INDEX attempts_chunk ON attempts (chunk_id);
CREATE INDEX attempts_finished ON attempts (finished_at);

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       REAL NOT NULL,
    action   TEXT NOT NULL,
    actor    TEXT NOT NULL,
    reason   TEXT NOT NULL,
    chunk_id TEXT,
    queue_id TEXT,
    details  TEXT
);
CREATE INDEX audit_log_chunk ON audit_log (chunk_id);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE workers (
    id                TEXT PRIMARY KEY,
    host              TEXT NOT NULL,
    pid               INTEGER NOT NULL,
    status            TEXT NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'stopping', 'stopped', 'lost')),
    concurrency       INTEGER NOT NULL,
    started_at        REAL NOT NULL,
    last_heartbeat_at REAL NOT NULL,
    stopped_at        REAL
);
CREATE INDEX workers_status ON workers (status, last_heartbeat_at);
