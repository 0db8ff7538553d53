-- What an operator sees and sets of the dependency rows (chunksync.deps.operate): declarations
-- made when a row is first created, and the audit entries of the operators' changes.

-- deps_declare_new --
-- Create a dependency's row with its declared limits; a row that exists keeps what it has.
INSERT INTO dependencies (name, connections, rate_units, rate_period_s, burst, updated_at)
VALUES (:name, :connections, :rate_units, :rate_period_s, :burst, NOW())
ON CONFLICT (name) DO NOTHING;

-- deps_audit --
-- The operators' changes of dependencies (deps_set, deps_open, deps_close), newest first.
SELECT * FROM audit_log
WHERE action IN ('deps_set', 'deps_open', 'deps_close')
  AND (:name IS NULL OR json_extract(details, '$.dependency') = :name)
ORDER BY id DESC
LIMIT :limit;
