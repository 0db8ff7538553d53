-- Dashboard sessions and the sign-in rate limit (chunksync.web.sessions). Times are the
-- database clock's, so every dashboard process on the database agrees on them.

-- session_add --
-- A new session; its limits counted from now.
INSERT INTO dashboard_sessions (id, scope, created_at, last_seen_at, expires_at)
VALUES (:id, :scope, NOW(), NOW(), NOW() + :max_s::float8);

-- session_get --
-- A live session (within both limits), with how long since it was last seen.
SELECT id, scope, created_at, expires_at, NOW() - last_seen_at AS idle_s, NOW() AS now
FROM dashboard_sessions
WHERE id = :id AND expires_at > NOW() AND last_seen_at > NOW() - :idle_s::float8;

-- session_touch --
-- A session used now: its idle limit starts again.
UPDATE dashboard_sessions SET last_seen_at = NOW() WHERE id = :id;

-- session_remove --
-- End a session (sign-out).
DELETE FROM dashboard_sessions WHERE id = :id;

-- sessions_prune --
-- Forget the sessions past either limit.
DELETE FROM dashboard_sessions WHERE expires_at <= NOW() OR last_seen_at <= NOW() - :idle_s::float8;

-- signin_failures_recent --
-- An address's failed sign-ins within the window, newest first, with the database clock.
SELECT at, NOW() AS now FROM dashboard_signin_failures
WHERE address = :address AND at > NOW() - :window_s::float8
ORDER BY at DESC LIMIT :limit::integer;

-- signin_failure_add --
-- One failed sign-in of an address.
INSERT INTO dashboard_signin_failures (address, at) VALUES (:address, NOW());

-- signin_failures_prune --
-- Forget failed sign-ins older than the window (every address's).
DELETE FROM dashboard_signin_failures WHERE at <= NOW() - :window_s::float8;

-- signin_failures_clear --
-- An address signed in: its failures are forgiven.
DELETE FROM dashboard_signin_failures WHERE address = :address;
