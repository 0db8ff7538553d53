-- 0015: dashboard sign-in sessions and failed sign-ins (chunksync.web.sessions).

-- A browser's session: `id` is the SHA-256 (hex) of the random token in its cookie, never the
-- token itself, so a copy of this table signs nobody in. A session ends at `expires_at` (the
-- absolute limit) or when unused for the idle limit since `last_seen_at`, whichever is first.
CREATE TABLE dashboard_sessions (
    id           text PRIMARY KEY,
    scope        text NOT NULL,  -- what the session may do ('operator')
    created_at   double precision NOT NULL,
    last_seen_at double precision NOT NULL,
    expires_at   double precision NOT NULL
);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);

-- One row per failed sign-in, kept for the rate limit's window, shared by every dashboard
-- process on the database: an address with too many in the window is refused for a while.
CREATE TABLE dashboard_signin_failures (
    address text NOT NULL,
    at      double precision NOT NULL
);
CREATE INDEX dashboard_signin_failures_address ON dashboard_signin_failures (address, at);
