-- 0014: connection permits of capped dependencies (chunksync.deps.store), and the default
-- policy's auth rule retrying a 401 while attempts <= 2 (was 1).

-- A slot thread holds a permit of a capped dependency while it runs that dependency's chunks
-- back to back, like a connection of a pool. A permit counts against the cap while it is not
-- past expires_at (pushed on by each claim under it) or while the last chunk of its latest
-- claim still runs under that claim's lease; a killed worker's permits return with its leases.
-- A rate-limited dependency's permit is also a lane of its rate: cap permits, each with its
-- share (rate / cap), its own GCRA arrival time `tat`, so that its slot paces its own calls.
CREATE TABLE dependency_permits (
    id          uuid PRIMARY KEY,
    dependency  text NOT NULL,
    worker_id   text NOT NULL,
    chunk_id    uuid,  -- the last chunk of the latest claim made under the permit
    lease_token uuid,  -- ... and that claim's lease
    expires_at  double precision NOT NULL,
    tat         double precision NOT NULL DEFAULT 0  -- the lane's arrival time
);
CREATE INDEX dependency_permits_dependency ON dependency_permits (dependency);

CREATE OR REPLACE FUNCTION chunksync_default_policy() RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT '{
  "name": "default", "jitter": 0.2, "max_attempts": 5,
  "categories": {
    "rate_limit": {"retry": true, "schedule": "exponential", "base_s": 5, "factor": 3, "steps": [], "max_s": 3600, "limit": 2},
    "network": {"retry": true, "schedule": "exponential", "base_s": 2, "factor": 2, "steps": [], "max_s": 3600, "limit": 3},
    "temporary": {"retry": true, "schedule": "exponential", "base_s": 2, "factor": 2, "steps": [], "max_s": 3600, "limit": 3},
    "timeout": {"retry": true, "schedule": "linear", "base_s": 3, "factor": 2, "steps": [], "max_s": 3600, "limit": 3},
    "auth": {"retry": true, "schedule": "steps", "base_s": 1, "factor": 2, "steps": [2, 5], "max_s": 3600, "limit": 2},
    "permission": {"retry": false, "schedule": "exponential", "base_s": 1, "factor": 2, "steps": [], "max_s": 3600, "limit": null},
    "not_found": {"retry": false, "schedule": "exponential", "base_s": 1, "factor": 2, "steps": [], "max_s": 3600, "limit": null},
    "data_conflict": {"retry": false, "schedule": "exponential", "base_s": 1, "factor": 2, "steps": [], "max_s": 3600, "limit": null},
    "processing_error": {"retry": true, "schedule": "exponential", "base_s": 1, "factor": 2, "steps": [], "max_s": 3600, "limit": null},
    "unknown": {"retry": true, "schedule": "exponential", "base_s": 1, "factor": 2, "steps": [], "max_s": 3600, "limit": null}
  },
  "stress": {"max_retries": 1, "delay_factor": 2.0, "defer_s": 30, "max_defer_s": 600, "max_deferrals": 3,
             "max_probe_deferrals": 5}
}'::jsonb $$;
