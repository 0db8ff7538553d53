-- Named queries of the migration runner (backends/migrate.py): which version the schema is at.

-- schema_tables --
-- Which of the named tables (a list parameter) exist.
SELECT name FROM sqlite_master
WHERE type = 'table' AND name IN (SELECT value FROM json_each(:names));

-- schema_version --
-- The highest migration recorded (schema_version exists).
SELECT MAX(version) AS version FROM schema_version;

-- record_schema_version --
-- Record one applied migration (run with execute_many).
INSERT INTO schema_version (version, name, applied_at) VALUES (:version, :name, NOW());

-- schema_latest --
-- The highest migration recorded, with its name (which says whether older code still works with it).
SELECT version, name FROM schema_version ORDER BY version DESC LIMIT 1;
