-- chunksync schema for PostgreSQL: the truth. Migrations must produce the same database (tested).
-- Times are seconds since the epoch (double precision) from the database's clock, as on SQLite,
-- so that every query returns the same value kinds on both backends. Ids are uuids.

CREATE TABLE IF NOT EXISTS schema_version (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at double precision NOT NULL
);

-- 0001_initial --

-- A user-typed id that is not a uuid matches nothing instead of failing the query.
CREATE FUNCTION chunksync_try_uuid(value text) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
                THEN value::uuid END
$$;

CREATE TABLE queues (
    id           uuid PRIMARY KEY,
    tenant       text NOT NULL DEFAULT 'default',
    name         text NOT NULL,
    source       text NOT NULL,
    kind         text NOT NULL,
    status       text NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'paused', 'completed', 'failed', 'cancelled')),
    priority     integer NOT NULL DEFAULT 0,
    policy       text NOT NULL DEFAULT 'default',
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL,
    sla_s        double precision  -- backlog age an alert allows (seconds); added by 0003
);
CREATE INDEX queues_tenant_status ON queues (tenant, status);
CREATE INDEX queues_name ON queues (name, tenant);

-- Its two keys' leaf pages are half filled when written: room for a claim's entry of every
-- chunk beside its first (migration 0020).
CREATE TABLE chunks (
    id               uuid PRIMARY KEY WITH (fillfactor = 50),
    queue_id         uuid NOT NULL REFERENCES queues (id) ON DELETE CASCADE,
    tenant           text NOT NULL DEFAULT 'default',
    seq              integer NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'completed', 'dead', 'cancelled')),
    priority         integer NOT NULL DEFAULT 0,
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 5,
    run_after        double precision NOT NULL,
    lease_token      uuid,
    lease_expires_at double precision,
    worker_id        text,
    last_category    text,
    last_error       text,
    dead_reason      text,
    items_processed  integer NOT NULL DEFAULT 0,
    checkpoint       jsonb,
    crash_count      integer NOT NULL DEFAULT 0,
    stress_retries   integer NOT NULL DEFAULT 0,
    deferrals        integer NOT NULL DEFAULT 0,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL,
    finished_at      double precision,
    UNIQUE (queue_id, seq) WITH (fillfactor = 50)
);
-- Claiming only ever looks at pending chunks: the index stays small however long the history.
CREATE INDEX chunks_runnable ON chunks (priority DESC, created_at, seq) WHERE status = 'pending';
-- The chunks in flight: chunks_in_flight, with the tenants (schema_tenants.sql).
-- A queue's chunks by status, but the completed ones: a queue's completed chunks are its count
-- (queues.n_chunks, schema_counts.sql) less the others, and a finish writes no entry here (0023).
CREATE INDEX chunks_queue_open ON chunks (queue_id, status, tenant) WHERE status <> 'completed';
CREATE INDEX chunks_finished ON chunks (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chunk_id        uuid NOT NULL,
    queue_id        uuid NOT NULL,
    tenant          text NOT NULL,
    worker_id       text NOT NULL,
    attempt         integer NOT NULL,
    started_at      double precision NOT NULL,
    finished_at     double precision NOT NULL,
    processing_s    double precision NOT NULL,
    chunk_size      integer NOT NULL DEFAULT 0,
    items_processed integer NOT NULL DEFAULT 0,
    items_per_s     double precision,
    efficiency      double precision,
    outcome         text NOT NULL,
    category        text,
    rule            text,
    message         text,
    retry_delay_s   double precision,
    rss_bytes       bigint
);
-- Every attempt writes each of these indexes: as few as the summaries need (migration 0007).
-- A queue's time windows, and its whole summary without the table (outcome totals, timings).
CREATE INDEX attempts_queue_finished ON attempts (queue_id, finished_at)
    INCLUDE (outcome, category, processing_s, items_processed, retry_delay_s, efficiency);
CREATE INDEX attempts_chunk ON attempts (chunk_id);
-- System-wide windows and retention. Rows arrive in finished_at order, so a BRIN index (a few
-- pages, next to nothing to maintain) finds the last minutes or the expired days as well.
CREATE INDEX attempts_finished ON attempts USING brin (finished_at);

CREATE TABLE audit_log (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       double precision NOT NULL,
    action   text NOT NULL,
    actor    text NOT NULL,
    reason   text NOT NULL,
    chunk_id uuid,
    queue_id uuid,
    details  jsonb
);
CREATE INDEX audit_log_chunk ON audit_log (chunk_id);
CREATE INDEX audit_log_queue ON audit_log (queue_id);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE workers (
    id                text PRIMARY KEY,
    host              text NOT NULL,
    pid               integer NOT NULL,
    status            text NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'stopping', 'stopped', 'lost')),
    concurrency       integer NOT NULL,
    started_at        double precision NOT NULL,
    last_heartbeat_at double precision NOT NULL,
    stopped_at        double precision
);
CREATE INDEX workers_status ON workers (status, last_heartbeat_at);

-- Wake-ups: a chunk that becomes runnable now (inserted, retried without delay, released,
-- recovered, revived) or a queue that becomes active notifies the channel workers LISTEN on.
-- One notification per transaction (PostgreSQL folds identical ones), polling stays the fallback.
CREATE FUNCTION chunksync_notify_work() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'chunks' THEN
        IF NEW.run_after > date_part('epoch', statement_timestamp()) THEN
            RETURN NULL;  -- a retry after a delay: polling finds it when it is due
        END IF;
    END IF;
    PERFORM pg_notify('chunksync_work', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER chunks_notify_work
AFTER INSERT OR UPDATE OF status ON chunks
FOR EACH ROW WHEN (NEW.status = 'pending')
EXECUTE FUNCTION chunksync_notify_work();

CREATE TRIGGER queues_notify_work
AFTER UPDATE OF status ON queues
FOR EACH ROW WHEN (NEW.status = 'active' AND OLD.status <> 'active')
EXECUTE FUNCTION chunksync_notify_work();

-- The SQL health interface (log_chunk_health_metrics, get_queue_health_summary, ...) is
-- functions and a view only: it is written once, in its migrations, and a new database runs them
-- as written. 0004 creates it; 0006 gives log_chunk_health_metrics its final, compact batch form
-- and replaces 0005's first batch form whole, so 0005 is not needed here.
-- include migrations/0004_health_interface.sql --
-- include migrations/0006_compact_attempts.sql --
