-- 0012: schedules (chunksync.schedules): a chunksync command run on a cron expression by the
-- maintenance leader. `next_at` is the next tick; whoever moves it on (a compare-and-set on
-- the row) runs that tick, so the fleet runs each tick once.

CREATE TABLE schedules (
    name        text PRIMARY KEY,
    cron        text NOT NULL,
    command     text NOT NULL,   -- JSON: the chunksync arguments, as given after `--`
    app         text,            -- the --app the command runs with, if one was in effect
    next_at     double precision NOT NULL,  -- epoch seconds of the next tick (UTC)
    last_at     double precision,
    last_status text,
    runs        integer NOT NULL DEFAULT 0,
    created_at  double precision NOT NULL
);
CREATE INDEX schedules_next ON schedules (next_at);
