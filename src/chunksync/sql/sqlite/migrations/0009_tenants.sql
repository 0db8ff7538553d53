-- 0009: tenants share the workers by weight. Each chunk's place in the fair order (fair_key)
-- is assigned when it is enqueued, from its tenant's pass per priority, so that a claim reads
-- one index in order instead of sorting tenants at claim time (docs/tenants.md).

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    weight        REAL NOT NULL DEFAULT 1 CHECK (weight > 0),
    max_in_flight INTEGER CHECK (max_in_flight IS NULL OR max_in_flight >= 0),
    max_queued    INTEGER CHECK (max_queued IS NULL OR max_queued >= 0),
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
-- Quotas are read by every claim: only the tenants that have one.
CREATE INDEX tenants_capped ON tenants (id) WHERE max_in_flight IS NOT NULL;

-- The virtual finish time of the last chunk each tenant enqueued, per priority level.
CREATE TABLE tenant_passes (
    tenant   TEXT NOT NULL,
    priority INTEGER NOT NULL,
    pass     REAL NOT NULL,
    PRIMARY KEY (tenant, priority)
);
CREATE INDEX tenant_passes_priority ON tenant_passes (priority, pass);

ALTER TABLE chunks ADD COLUMN fair_key REAL NOT NULL DEFAULT 0;  -- added by 0010
CREATE INDEX chunks_fair ON chunks (priority DESC, fair_key) WHERE status = 'pending';
CREATE INDEX chunks_tenant_status ON chunks (tenant, status);
