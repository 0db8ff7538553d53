-- 0010: connection permits of capped dependencies (chunksync.deps.store).

-- A slot thread holds a permit of a capped dependency while it runs that dependency's chunks
-- back to back, like a connection of a pool. A permit counts against the cap while it is not
-- past expires_at (pushed on by each claim under it) or while the last chunk of its latest
-- claim still runs under that claim's lease; a killed worker's permits return with its leases.
-- A rate-limited dependency's permit is also a lane of its rate: cap permits, each with its
-- share (rate / cap), its own GCRA arrival time `tat`, so that its slot paces its own calls.
CREATE TABLE dependency_permits (
    id          TEXT PRIMARY KEY,
    dependency  TEXT NOT NULL,
    worker_id   TEXT NOT NULL,
    chunk_id    TEXT,  -- the last chunk of the latest claim made under the permit
    lease_token TEXT,  -- ... and that claim's lease
    expires_at  REAL NOT NULL,
    tat         REAL NOT NULL DEFAULT 0  -- the lane's arrival time
);
CREATE INDEX dependency_permits_dependency ON dependency_permits (dependency);
