-- Schedules (chunksync.schedules): a tick is run by whoever moves `next_at` on from the value
-- it read (schedule_claim), so the fleet runs each tick once.

-- schedule_add --
-- A new schedule; nothing when the name is taken (the caller says so).
INSERT INTO schedules (name, cron, command, app, next_at, created_at)
VALUES (:name, :cron, :command, :app, :next_at::float8, NOW())
ON CONFLICT (name) DO NOTHING;

-- schedule_get --
-- One schedule, with the database clock.
SELECT s.*, NOW() AS now FROM schedules s WHERE s.name = :name;

-- schedule_list --
-- Every schedule by name, with the database clock.
SELECT s.*, NOW() AS now FROM schedules s ORDER BY s.name;

-- schedule_remove --
-- Remove a schedule.
DELETE FROM schedules WHERE name = :name;

-- schedules_due --
-- The schedules whose next tick has come, with the database clock.
SELECT s.*, NOW() AS now FROM schedules s WHERE s.next_at <= NOW() ORDER BY s.next_at;

-- schedule_claim --
-- Take a due tick: move next_at on from the value read; one row changed means this caller runs it.
UPDATE schedules SET next_at = :next_at::float8, last_at = NOW(), runs = runs + 1, last_status = 'started'
WHERE name = :name AND next_at = :was::float8 AND next_at <= NOW();

-- schedule_set_next --
-- Move a schedule's next tick (to now: run it at the leader's next look).
UPDATE schedules SET next_at = :next_at::float8 WHERE name = :name;

-- schedule_result --
-- How a run of a schedule ended.
UPDATE schedules SET last_status = :status WHERE name = :name;
