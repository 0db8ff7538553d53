-- 0008: schedules (chunksync.schedules): a chunksync command run on a cron expression by the
-- maintenance leader. `next_at` is the next tick; whoever moves it on (a compare-and-set on
-- the row) runs that tick, so the fleet runs each tick once.

CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    cron        TEXT NOT NULL,
    command     TEXT NOT NULL,  -- JSON: the chunksync arguments, as given after `--`
    app         TEXT,           -- the --app the command runs with, if one was in effect
    next_at     REAL NOT NULL,  -- epoch seconds of the next tick (UTC)
    last_at     REAL,
    last_status TEXT,
    runs        INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL
);
CREATE INDEX schedules_next ON schedules (next_at);
