-- 0017_row_level_security --
-- Row-level security, forced (the tables' owner obeys it too), on every table that holds a
-- tenant's data (docs/tenants.md, "Isolation"). What a session sees is keyed by the setting
-- `chunksync.tenant`, which chunksync makes on each connection ('*' for a worker or an
-- operator) or in each transaction (`set_config('chunksync.tenant', 'B', true)`, for one
-- tenant's request on a shared pool: it ends with the transaction). Without the setting a
-- session sees no row: a connection chunksync did not configure fails closed.
--   * The owner of the tables (the role that ran this migration, or a member of it: workers,
--     the CLI, the dashboard) sees every tenant under '*', and one tenant under its name.
--   * Any other role sees only the tenant it is bound to in `tenant_roles`
--     (`chunksync tenants grant ROLE --tenant B`), and only while its setting names that
--     tenant: a tenant's role cannot widen its view by changing the setting.
-- Each policy reads the scope once per statement (an InitPlan: `(SELECT ...)`), so a row costs
-- a comparison with a parameter, not a lookup of the setting (a claim: ~1.1x the time without
-- row security at 1,000,000 pending chunks; a queue's counts 3x before this form).
-- Not an expand migration: code older than it makes no setting, so under a role that is not a
-- superuser (superusers bypass row security) it would see nothing.

CREATE TABLE tenant_roles (
    role_name  text PRIMARY KEY,
    tenant     text NOT NULL CHECK (tenant <> '*'),
    created_at double precision NOT NULL
);

-- The tenants a role sees now: '*' (all) or one tenant's id; NULL (none) without a setting,
-- or for a tenant's role whose setting is not its own tenant. Runs with the owner's rights,
-- in which `current_user` is the owner: tenant roles need no grant on tenant_roles and cannot
-- list the other tenants' roles.
CREATE FUNCTION chunksync_scope(p_role name) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
    SELECT CASE
        WHEN pg_has_role(p_role, current_user, 'USAGE') THEN s.v
        ELSE (SELECT r.tenant FROM tenant_roles r WHERE r.role_name = p_role AND r.tenant = s.v)
    END
    FROM (SELECT current_setting('chunksync.tenant', true) AS v) s
$$;

-- Tokens that open the dashboard and its API to one tenant (`chunksync tenants token T`): the
-- SHA-256 of each, never the token itself.
CREATE TABLE tenant_tokens (
    digest     text PRIMARY KEY,
    tenant     text NOT NULL CHECK (tenant <> '*'),
    created_at double precision NOT NULL
);
CREATE INDEX tenant_tokens_tenant ON tenant_tokens (tenant);

-- Bind a role to a tenant and grant it what a tenant's role may do: read its tenant's rows,
-- and update or delete its own chunks and queues (row security keeps every other tenant's
-- rows out of reach: such a statement affects 0 rows).
CREATE FUNCTION chunksync_grant_tenant_role(p_role name, p_tenant text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tenant_roles (role_name, tenant, created_at)
    VALUES (p_role, p_tenant, NOW())
    ON CONFLICT (role_name) DO UPDATE SET tenant = excluded.tenant;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), p_role);
    EXECUTE format('GRANT SELECT ON queues, chunks, attempts, attempt_rollups, '
                   'attempt_latency_rollups, audit_log, tenants, alerts, mail_messages, '
                   'mail_folders, dependencies TO %I', p_role);
    EXECUTE format('GRANT UPDATE, DELETE ON queues, chunks TO %I', p_role);
    RETURN p_tenant;
END
$$;

-- Tables with a tenant's column: every tenant under '*', else the scope's own rows.
ALTER TABLE queues ENABLE ROW LEVEL SECURITY;
ALTER TABLE queues FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON queues
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR tenant = (SELECT chunksync_scope(current_user)));

ALTER TABLE chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON chunks
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR tenant = (SELECT chunksync_scope(current_user)));

ALTER TABLE attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON attempts
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR tenant = (SELECT chunksync_scope(current_user)));

ALTER TABLE attempt_rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE attempt_rollups FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON attempt_rollups
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR tenant = (SELECT chunksync_scope(current_user)));

ALTER TABLE tenant_passes ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_passes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenant_passes
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR tenant = (SELECT chunksync_scope(current_user)));

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenants
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR id = (SELECT chunksync_scope(current_user)));

-- The audit of a queue or chunk belongs to the queue's tenant: seen where the queue is.
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON audit_log
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR EXISTS (SELECT 1 FROM queues q WHERE q.id = audit_log.queue_id));

-- An alert about a queue (its subject starts with the queue's id) is the queue's tenant's;
-- the others (the system's, a dependency's) are seen under '*' only.
ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON alerts
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR EXISTS (SELECT 1 FROM queues q
                      WHERE q.id = chunksync_try_uuid(split_part(alerts.subject, ':', 1))));

-- A dependency is seen by the tenants whose queues lean on it: its name may hold an account.
ALTER TABLE dependencies ENABLE ROW LEVEL SECURITY;
ALTER TABLE dependencies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON dependencies
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR EXISTS (SELECT 1 FROM queues q WHERE q.dependency = dependencies.name));

-- The message store gains its tenant: the tenant the writing transaction names (a worker
-- writes a chunk's messages as the chunk's tenant); rows stored before are the default
-- tenant's. Keys stay (account, folder, ...): an account already stored by one tenant is
-- refused to another by these policies, never shared.
CREATE FUNCTION chunksync_writing_tenant() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(NULLIF(current_setting('chunksync.tenant', true), '*'), 'default')
$$;
ALTER TABLE mail_messages ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE mail_messages ALTER COLUMN tenant SET DEFAULT chunksync_writing_tenant();
ALTER TABLE mail_folders ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE mail_folders ALTER COLUMN tenant SET DEFAULT chunksync_writing_tenant();
ALTER TABLE mail_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE mail_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON mail_messages
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR tenant = (SELECT chunksync_scope(current_user)));
ALTER TABLE mail_folders ENABLE ROW LEVEL SECURITY;
ALTER TABLE mail_folders FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON mail_folders
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR tenant = (SELECT chunksync_scope(current_user)));

-- A queue's latency histograms are its tenant's: seen where the queue is.
ALTER TABLE attempt_latency_rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE attempt_latency_rollups FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON attempt_latency_rollups
    USING ((SELECT chunksync_scope(current_user) = '*')
           OR EXISTS (SELECT 1 FROM queues q WHERE q.id = attempt_latency_rollups.queue_id));
