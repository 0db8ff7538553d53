-- 0004_health_interface --
-- The SQL health interface of the system chunksync grew from, on chunksync's tables, so that
-- applications (Supabase RPC) and operators (psql) can call it directly:
--   log_chunk_health_metrics(...), get_queue_health_summary(queue_id),
--   get_system_health_metrics(), should_retry_chunk_enhanced(chunk_id, category, ...),
--   cleanup_old_health_monitoring(retention), and the view chunked_sync_health_summary.
-- On PostgreSQL the Python API calls these functions (one implementation); SQLite answers the
-- same questions from Python, and tests prove both give the same figures and decisions.

CREATE FUNCTION chunksync_now() RETURNS double precision
LANGUAGE sql STABLE AS $$ SELECT date_part('epoch', statement_timestamp()) $$;

-- Record one attempt; returns its id. Times are the database's: it ends now.
CREATE FUNCTION log_chunk_health_metrics(
    p_chunk_id uuid, p_queue_id uuid, p_tenant text, p_worker_id text, p_attempt integer,
    p_processing_s double precision, p_outcome text,
    p_chunk_size integer DEFAULT 0, p_items_processed integer DEFAULT 0,
    p_items_per_s double precision DEFAULT NULL, p_efficiency double precision DEFAULT NULL,
    p_category text DEFAULT NULL, p_rule text DEFAULT NULL, p_message text DEFAULT NULL,
    p_retry_delay_s double precision DEFAULT NULL, p_rss_bytes bigint DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    IF p_outcome NOT IN ('completed', 'retried', 'deferred', 'held', 'dead', 'stuck',
                         'lost_lease', 'cancelled') THEN
        RAISE EXCEPTION 'unknown attempt outcome %', p_outcome USING ERRCODE = '22023';
    END IF;
    IF p_category IS NOT NULL AND p_category NOT IN ('timeout', 'rate_limit', 'network',
            'temporary', 'auth', 'permission', 'not_found', 'data_conflict',
            'processing_error', 'unknown') THEN
        RAISE EXCEPTION 'unknown error category %', p_category USING ERRCODE = '22023';
    END IF;
    INSERT INTO attempts (chunk_id, queue_id, tenant, worker_id, attempt, started_at,
                          finished_at, processing_s, chunk_size, items_processed, items_per_s,
                          efficiency, outcome, category, rule, message, retry_delay_s, rss_bytes)
    VALUES (p_chunk_id, p_queue_id, p_tenant, p_worker_id, p_attempt,
            chunksync_now() - p_processing_s, chunksync_now(), p_processing_s, p_chunk_size,
            p_items_processed, p_items_per_s, p_efficiency, p_outcome, p_category, p_rule,
            p_message, p_retry_delay_s, p_rss_bytes)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

-- Progress, success rate, retries and failures by category, timing, throughput, backlog age,
-- stuck and dead counts of one queue: the fields of chunksync.health.QueueSummary.
CREATE FUNCTION get_queue_health_summary(p_queue_id uuid, p_window_s double precision DEFAULT 300)
RETURNS TABLE (
    queue_id uuid, name text, status text, totals jsonb, progress double precision,
    attempts bigint, completed_attempts bigint, failed_attempts bigint,
    success_rate double precision, retries bigint, deferrals bigint, held bigint,
    dead_attempts bigint, stuck_recovered bigint, failures_by_category jsonb,
    avg_processing_s double precision, p95_processing_s double precision,
    items_per_s double precision, avg_efficiency double precision,
    total_retry_delay_s double precision, throughput_chunks_per_s double precision,
    oldest_pending_age_s double precision, stuck bigint, dead bigint, recoveries bigint,
    eta_s double precision
)
LANGUAGE sql STABLE AS $$
WITH q AS (SELECT * FROM queues WHERE id = p_queue_id),
t AS (
    SELECT count(*) FILTER (WHERE c.status = 'pending') AS n_pending,
           count(*) FILTER (WHERE c.status = 'processing') AS n_processing,
           count(*) FILTER (WHERE c.status = 'completed') AS n_completed,
           count(*) FILTER (WHERE c.status = 'dead') AS n_dead,
           count(*) FILTER (WHERE c.status = 'cancelled') AS n_cancelled,
           count(*) FILTER (WHERE c.status = 'processing' AND c.lease_expires_at < chunksync_now())
               AS n_stuck,
           min(c.created_at) FILTER (WHERE c.status = 'pending') AS oldest_pending
    FROM chunks c WHERE c.queue_id = p_queue_id
),
a AS (
    SELECT count(*) AS n,
           count(*) FILTER (WHERE outcome = 'completed') AS n_completed,
           count(*) FILTER (WHERE outcome IN ('retried', 'deferred', 'dead', 'stuck')) AS n_failed,
           count(*) FILTER (WHERE outcome = 'retried') AS n_retried,
           count(*) FILTER (WHERE outcome = 'deferred') AS n_deferred,
           count(*) FILTER (WHERE outcome = 'held') AS n_held,
           count(*) FILTER (WHERE outcome = 'dead') AS n_dead,
           count(*) FILTER (WHERE outcome = 'stuck') AS n_stuck,
           count(*) FILTER (WHERE outcome NOT IN ('stuck', 'held')) AS n_timed,
           sum(processing_s) FILTER (WHERE outcome NOT IN ('stuck', 'held')) AS timed_s,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY processing_s)
               FILTER (WHERE outcome NOT IN ('stuck', 'held')) AS p95,
           sum(processing_s) FILTER (WHERE outcome = 'completed') AS completed_s,
           sum(items_processed) FILTER (WHERE outcome = 'completed') AS completed_items,
           avg(efficiency) FILTER (WHERE outcome = 'completed') AS efficiency,
           COALESCE(sum(retry_delay_s), 0) AS delay_total,
           count(*) FILTER (WHERE outcome = 'completed' AND finished_at >= chunksync_now() - p_window_s)
               AS recent,
           min(started_at) AS first_started
    FROM attempts WHERE attempts.queue_id = p_queue_id
),
f AS (
    SELECT COALESCE(jsonb_object_agg(category, n), '{}'::jsonb) AS by_category
    FROM (SELECT category, count(*) AS n FROM attempts
          WHERE attempts.queue_id = p_queue_id AND category IS NOT NULL
            AND outcome IN ('retried', 'deferred', 'dead', 'stuck')
          GROUP BY category) x
),
r AS (
    SELECT count(*) AS n FROM audit_log l
    WHERE l.queue_id = p_queue_id AND l.action = 'recover_stuck'
),
w AS (
    SELECT CASE WHEN a.first_started IS NULL THEN NULL
                ELSE least(p_window_s, chunksync_now() - a.first_started) END AS span
    FROM a
),
tp AS (
    SELECT CASE WHEN w.span > 0 AND a.recent > 0 THEN a.recent / w.span END AS rate FROM a, w
)
SELECT q.id, q.name, q.status,
       jsonb_build_object('pending', t.n_pending, 'processing', t.n_processing,
                          'completed', t.n_completed, 'dead', t.n_dead,
                          'cancelled', t.n_cancelled),
       CASE WHEN t.n_pending + t.n_processing + t.n_completed + t.n_dead + t.n_cancelled = 0
            THEN 1.0
            ELSE (t.n_completed + t.n_dead + t.n_cancelled)::float8
                 / (t.n_pending + t.n_processing + t.n_completed + t.n_dead + t.n_cancelled) END,
       a.n, a.n_completed, a.n_failed,
       CASE WHEN a.n > 0 THEN a.n_completed::float8 / a.n END,
       a.n_retried, a.n_deferred, a.n_held, a.n_dead, a.n_stuck, f.by_category,
       CASE WHEN a.n_timed > 0 THEN a.timed_s / a.n_timed END,
       a.p95,
       CASE WHEN a.completed_s > 0 THEN a.completed_items / a.completed_s END,
       a.efficiency, a.delay_total, tp.rate,
       chunksync_now() - t.oldest_pending, t.n_stuck, t.n_dead, r.n,
       CASE WHEN t.n_pending + t.n_processing = 0 THEN 0.0
            WHEN tp.rate IS NOT NULL THEN (t.n_pending + t.n_processing) / tp.rate END
FROM q, t, a, f, r, tp
$$;

-- The health state and every reason for it (critical beats degraded): the same rules and
-- sentences as chunksync.health.assess (tested on a grid of inputs).
CREATE FUNCTION chunksync_assess_health(
    p_workers_alive bigint, p_backlog bigint, p_oldest_pending_age_s double precision,
    p_attempts_5m bigint, p_error_rate_5m double precision, p_stuck bigint,
    p_auth_failures_60m bigint,
    p_error_rate_degraded double precision DEFAULT 0.10,
    p_error_rate_critical double precision DEFAULT 0.50,
    p_min_attempts integer DEFAULT 20,
    p_backlog_age_degraded_s double precision DEFAULT 3600,
    p_stuck_degraded integer DEFAULT 1,
    p_stressed_dependencies text[] DEFAULT '{}',
    OUT state text, OUT reasons text[]
)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    critical text[] := '{}';
    degraded text[] := '{}';
    pct text;
    rate_flagged boolean := p_error_rate_5m IS NOT NULL AND p_attempts_5m >= p_min_attempts
                            AND p_error_rate_5m >= p_error_rate_degraded;
BEGIN
    IF p_backlog > 0 AND p_workers_alive = 0 THEN
        critical := critical || format('no live workers while %s chunks wait', p_backlog);
    END IF;
    IF p_error_rate_5m IS NOT NULL AND p_attempts_5m >= p_min_attempts THEN
        pct := format('%s%% of %s attempts failed in the last 5 minutes',
                      round((p_error_rate_5m * 100)::numeric, 0), p_attempts_5m);
        IF p_error_rate_5m >= p_error_rate_critical THEN
            critical := critical || pct;
        ELSIF p_error_rate_5m >= p_error_rate_degraded THEN
            degraded := degraded || pct;
        END IF;
    END IF;
    IF p_oldest_pending_age_s IS NOT NULL AND p_oldest_pending_age_s > p_backlog_age_degraded_s THEN
        degraded := degraded || format('the oldest pending chunk has waited %s s',
                                       round(p_oldest_pending_age_s::numeric, 0));
    END IF;
    IF p_stuck >= p_stuck_degraded THEN
        degraded := degraded || format('%s chunk(s) stuck past their lease', p_stuck);
    END IF;
    IF p_auth_failures_60m > 0 THEN
        degraded := degraded || format('%s authentication failure(s) in the last hour',
                                       p_auth_failures_60m);
    END IF;
    -- A stressed dependency degrades, unless the system-wide error rate already says so.
    IF cardinality(p_stressed_dependencies) > 0 AND NOT rate_flagged THEN
        degraded := degraded || ('dependency stressed: '
                                 || array_to_string(p_stressed_dependencies, ', '));
    END IF;
    IF cardinality(critical) > 0 THEN
        state := 'critical';
        reasons := critical || degraded;
    ELSIF cardinality(degraded) > 0 THEN
        state := 'degraded';
        reasons := degraded;
    ELSE
        state := 'healthy';
        reasons := '{}';
    END IF;
END
$$;

-- Workers alive and lost, active queues, backlog, error rate over 5 and 60 minutes, top failure
-- categories, recoveries, and the health state with its reasons. p_stressed_dependencies: the
-- dependencies a caller knows to be stressed (chunksync passes what its retry budgets and the
-- per-dependency error rates say), which degrade the state.
CREATE FUNCTION get_system_health_metrics(
    p_worker_timeout_s double precision DEFAULT 60,
    p_error_rate_degraded double precision DEFAULT 0.10,
    p_error_rate_critical double precision DEFAULT 0.50,
    p_min_attempts integer DEFAULT 20,
    p_backlog_age_degraded_s double precision DEFAULT 3600,
    p_stuck_degraded integer DEFAULT 1,
    p_stressed_dependencies text[] DEFAULT '{}'
)
RETURNS TABLE (
    state text, reasons text[], workers_alive bigint, workers_lost bigint,
    active_queues bigint, backlog bigint, oldest_pending_age_s double precision,
    error_rate_5m double precision, error_rate_60m double precision, attempts_5m bigint,
    attempts_60m bigint, top_failure_categories jsonb, recoveries_60m bigint, stuck bigint,
    dead bigint
)
LANGUAGE sql STABLE AS $$
WITH now AS (SELECT chunksync_now() AS t),
wk AS (
    SELECT count(*) FILTER (WHERE status IN ('running', 'stopping')
                              AND last_heartbeat_at >= now.t - p_worker_timeout_s) AS alive,
           count(*) FILTER (WHERE status = 'lost' OR (status IN ('running', 'stopping')
                              AND last_heartbeat_at < now.t - p_worker_timeout_s)) AS lost
    FROM workers, now
),
bl AS (
    SELECT count(*) AS n, now.t - min(c.created_at) AS oldest
    FROM chunks c JOIN queues q ON q.id = c.queue_id, now
    WHERE c.status = 'pending' AND q.status = 'active'
    GROUP BY now.t
),
at AS (
    SELECT count(*) FILTER (WHERE finished_at >= now.t - 300) AS n5,
           count(*) FILTER (WHERE finished_at >= now.t - 300
                              AND outcome IN ('retried', 'deferred', 'dead', 'stuck')) AS f5,
           count(*) AS n60,
           count(*) FILTER (WHERE outcome IN ('retried', 'deferred', 'dead', 'stuck')) AS f60,
           count(*) FILTER (WHERE category = 'auth'
                              AND outcome IN ('retried', 'deferred', 'dead', 'stuck')) AS auth60
    FROM attempts, now WHERE finished_at >= now.t - 3600
),
top AS (
    SELECT COALESCE(jsonb_agg(jsonb_build_array(category, n) ORDER BY n DESC, category), '[]')
           AS categories
    FROM (SELECT category, count(*) AS n FROM attempts, now
          WHERE finished_at >= now.t - 3600 AND category IS NOT NULL
            AND outcome IN ('retried', 'deferred', 'dead', 'stuck')
          GROUP BY category ORDER BY n DESC, category LIMIT 5) x
),
misc AS (
    SELECT (SELECT count(*) FROM queues WHERE status = 'active') AS active_queues,
           (SELECT count(*) FROM chunks, now WHERE status = 'processing'
                AND lease_expires_at < now.t) AS stuck,
           (SELECT count(*) FROM chunks WHERE status = 'dead') AS dead,
           (SELECT count(*) FROM audit_log, now WHERE action = 'recover_stuck'
                AND at >= now.t - 3600) AS recoveries
),
fig AS (
    SELECT wk.alive, wk.lost, misc.active_queues, COALESCE(bl.n, 0) AS backlog, bl.oldest,
           CASE WHEN at.n5 > 0 THEN at.f5::float8 / at.n5 END AS rate5,
           CASE WHEN at.n60 > 0 THEN at.f60::float8 / at.n60 END AS rate60,
           at.n5, at.n60, top.categories, misc.recoveries, misc.stuck, misc.dead, at.auth60
    FROM wk CROSS JOIN misc CROSS JOIN at CROSS JOIN top LEFT JOIN bl ON true
)
SELECT h.state, h.reasons, fig.alive, fig.lost, fig.active_queues, fig.backlog, fig.oldest,
       fig.rate5, fig.rate60, fig.n5, fig.n60, fig.categories, fig.recoveries, fig.stuck,
       fig.dead
FROM fig, chunksync_assess_health(fig.alive, fig.backlog, fig.oldest, fig.n5, fig.rate5,
                                  fig.stuck, fig.auth60, p_error_rate_degraded,
                                  p_error_rate_critical, p_min_attempts,
                                  p_backlog_age_degraded_s, p_stuck_degraded,
                                  p_stressed_dependencies) h
$$;

-- The default retry policy as JSON: the shape of chunksync.retry.policy_to_mapping(), which
-- is also the TOML shape. A test proves it decides like chunksync's DEFAULT_POLICY.
CREATE FUNCTION chunksync_default_policy() RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT '{
  "name": "default", "jitter": 0.2, "max_attempts": 5,
  "categories": {
    "rate_limit": {"retry": true, "schedule": "exponential", "base_s": 5, "factor": 3, "steps": [], "max_s": 3600, "limit": 2},
    "network": {"retry": true, "schedule": "exponential", "base_s": 2, "factor": 2, "steps": [], "max_s": 3600, "limit": 3},
    "temporary": {"retry": true, "schedule": "exponential", "base_s": 2, "factor": 2, "steps": [], "max_s": 3600, "limit": 3},
    "timeout": {"retry": true, "schedule": "linear", "base_s": 3, "factor": 2, "steps": [], "max_s": 3600, "limit": 3},
    "auth": {"retry": true, "schedule": "steps", "base_s": 1, "factor": 2, "steps": [2, 5], "max_s": 3600, "limit": 1},
    "permission": {"retry": false, "schedule": "exponential", "base_s": 1, "factor": 2, "steps": [], "max_s": 3600, "limit": null},
    "not_found": {"retry": false, "schedule": "exponential", "base_s": 1, "factor": 2, "steps": [], "max_s": 3600, "limit": null},
    "data_conflict": {"retry": false, "schedule": "exponential", "base_s": 1, "factor": 2, "steps": [], "max_s": 3600, "limit": null},
    "processing_error": {"retry": true, "schedule": "exponential", "base_s": 1, "factor": 2, "steps": [], "max_s": 3600, "limit": null},
    "unknown": {"retry": true, "schedule": "exponential", "base_s": 1, "factor": 2, "steps": [], "max_s": 3600, "limit": null}
  },
  "stress": {"max_retries": 1, "delay_factor": 2.0, "defer_s": 30, "max_defer_s": 600, "max_deferrals": 3,
             "max_probe_deferrals": 5}
}'::jsonb $$;

-- A schedule's delay before retry n (chunksync.retry.Schedule.delay).
CREATE FUNCTION chunksync_schedule_delay(p_rule jsonb, p_attempt integer)
RETURNS double precision
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n integer := greatest(1, p_attempt);
    kind text := COALESCE(p_rule->>'schedule', 'exponential');
    base double precision := COALESCE((p_rule->>'base_s')::float8, 1.0);
    factor double precision := greatest(COALESCE((p_rule->>'factor')::float8, 2.0), 1.0);
    max_s double precision := COALESCE((p_rule->>'max_s')::float8, 3600.0);
    steps jsonb := COALESCE(p_rule->'steps', '[]'::jsonb);
    value double precision;
BEGIN
    IF max_s <= 0 THEN
        RETURN 0.0;
    END IF;
    IF kind = 'steps' THEN
        IF jsonb_array_length(steps) = 0 THEN
            value := base;
        ELSE
            value := (steps->>(least(n, jsonb_array_length(steps)) - 1))::float8;
        END IF;
    ELSIF kind = 'linear' THEN
        value := base * n;
    ELSE
        IF base <= 0 THEN
            RETURN 0.0;
        END IF;
        IF ln(base) + (n - 1) * ln(factor) >= ln(max_s) THEN
            RETURN max_s;
        END IF;
        value := base * power(factor, n - 1);
    END IF;
    RETURN least(greatest(value, 0.0), max_s);
END
$$;

-- The retry decision after attempt number p_attempts failed with p_category: the rules of
-- chunksync.retry.RetryPolicy.decide, without jitter (tested on every category and attempt);
-- p_probe: the attempt was the stress gate's probe.
CREATE FUNCTION chunksync_retry_decision(
    p_category text, p_attempts integer, p_max_attempts integer,
    p_retry_after_s double precision DEFAULT NULL, p_stressed boolean DEFAULT false,
    p_stress_retries integer DEFAULT 0, p_deferrals integer DEFAULT 0,
    p_policy jsonb DEFAULT NULL, p_probe boolean DEFAULT false,
    OUT action text, OUT delay_s double precision, OUT reason text, OUT stress_retry boolean
)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    policy jsonb := COALESCE(p_policy, chunksync_default_policy());
    rule jsonb := COALESCE(policy->'categories'->p_category,
                           chunksync_default_policy()->'categories'->p_category);
    stress jsonb := COALESCE(policy->'stress', '{}'::jsonb);
    max_attempts integer := COALESCE(p_max_attempts, (policy->>'max_attempts')::int, 5);
    lim integer := (rule->>'limit')::int;
    floor_s double precision := greatest(COALESCE(p_retry_after_s, 0.0), 0.0);
    delay double precision;
    defer_s double precision := COALESCE((stress->>'defer_s')::float8, 30.0);
    max_defer_s double precision := COALESCE((stress->>'max_defer_s')::float8, 600.0);
BEGIN
    stress_retry := false;
    IF rule IS NULL THEN
        RAISE EXCEPTION 'unknown error category %', p_category USING ERRCODE = '22023';
    END IF;
    IF NOT COALESCE((rule->>'retry')::boolean, true) THEN
        action := 'dead'; delay_s := 0.0; reason := p_category || ' is never retried';
        RETURN;
    END IF;
    -- A failed probe (the gate's one call while stressed) defers, attempt not spent.
    IF p_probe AND p_deferrals < COALESCE((stress->>'max_probe_deferrals')::int, 5) THEN
        action := 'defer';
        delay_s := greatest(least(max_defer_s, defer_s * power(2.0, least(p_deferrals, 30))),
                            floor_s);
        reason := 'probe failed: deferred, attempt not spent';
        RETURN;
    END IF;
    IF p_attempts >= max_attempts OR (lim IS NOT NULL AND p_attempts > lim) THEN
        -- A rate limit past its category's limit, with attempts left: defer, not dead.
        IF p_category = 'rate_limit' AND p_attempts < max_attempts
           AND p_deferrals < COALESCE((stress->>'max_deferrals')::int, 3) THEN
            action := 'defer';
            delay_s := greatest(least(max_defer_s, defer_s * power(2.0, least(p_deferrals, 30))),
                                floor_s);
            reason := 'rate_limit: deferred, attempt not spent';
            RETURN;
        END IF;
        action := 'dead'; delay_s := 0.0;
        reason := format('%s: out of retries after %s', p_category, p_attempts);
        RETURN;
    END IF;
    delay := greatest(greatest(chunksync_schedule_delay(rule, p_attempts), 0.0), floor_s);
    IF NOT p_stressed THEN
        action := 'retry'; delay_s := delay;
        reason := format('%s: retry %s', p_category, p_attempts);
    ELSIF p_stress_retries < COALESCE((stress->>'max_retries')::int, 1) THEN
        action := 'retry'; stress_retry := true;
        delay_s := greatest(least(delay * COALESCE((stress->>'delay_factor')::float8, 2.0),
                                  3600.0), floor_s);
        reason := 'dependency stressed: last retry, delay doubled';
    ELSIF p_deferrals < COALESCE((stress->>'max_deferrals')::int, 3) THEN
        action := 'defer';
        delay_s := greatest(least(max_defer_s, defer_s * power(2.0, least(p_deferrals, 30))),
                            floor_s);
        reason := 'dependency stressed: deferred, attempt not spent';
    ELSE
        action := 'retry'; delay_s := delay;
        reason := format('%s: retry %s (deferrals used)', p_category, p_attempts);
    END IF;
END
$$;

-- Should this chunk be retried after failing with p_category? Reads the chunk's attempts,
-- max_attempts, stress retries and deferrals; p_policy is a policy as JSON (default: chunksync's).
CREATE FUNCTION should_retry_chunk_enhanced(
    p_chunk_id uuid, p_category text, p_stressed boolean DEFAULT false,
    p_retry_after_s double precision DEFAULT NULL, p_policy jsonb DEFAULT NULL
)
RETURNS TABLE (should_retry boolean, action text, delay_s double precision, reason text)
LANGUAGE sql STABLE AS $$
    SELECT d.action <> 'dead', d.action, d.delay_s, d.reason
    FROM chunks c,
         chunksync_retry_decision(p_category, c.attempts, c.max_attempts, p_retry_after_s,
                                  p_stressed, c.stress_retries, c.deferrals, p_policy) d
    WHERE c.id = p_chunk_id
$$;

-- Delete attempt health metrics older than the retention, in batches of p_batch rows so that
-- no lock is held long; claiming never touches this table. Returns the number deleted.
CREATE FUNCTION cleanup_old_health_monitoring(
    p_retention interval DEFAULT '30 days', p_batch integer DEFAULT 5000
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    cutoff double precision := chunksync_now() - extract(epoch FROM p_retention);
    deleted bigint := 0;
    n bigint;
BEGIN
    IF p_retention < interval '0' THEN
        RAISE EXCEPTION 'retention must not be negative' USING ERRCODE = '22023';
    END IF;
    LOOP
        DELETE FROM attempts WHERE id IN (
            SELECT id FROM attempts WHERE finished_at < cutoff ORDER BY id LIMIT p_batch);
        GET DIAGNOSTICS n = ROW_COUNT;
        deleted := deleted + n;
        EXIT WHEN n < p_batch;
    END LOOP;
    RETURN deleted;
END
$$;

-- Per hour: attempts, successes, failures and failures by category, average and p95
-- processing time, items per second.
CREATE VIEW chunked_sync_health_summary AS
WITH a AS (
    SELECT floor(finished_at / 3600) * 3600 AS hour_s, outcome, category, processing_s,
           items_processed
    FROM attempts
),
cats AS (
    SELECT hour_s, jsonb_object_agg(category, n) AS failures_by_category
    FROM (SELECT hour_s, category, count(*) AS n FROM a
          WHERE category IS NOT NULL AND outcome IN ('retried', 'deferred', 'dead', 'stuck')
          GROUP BY hour_s, category) x
    GROUP BY hour_s
)
SELECT to_timestamp(a.hour_s) AS hour,
       count(*) AS attempts,
       count(*) FILTER (WHERE a.outcome = 'completed') AS successes,
       count(*) FILTER (WHERE a.outcome IN ('retried', 'deferred', 'dead', 'stuck')) AS failures,
       COALESCE(c.failures_by_category, '{}'::jsonb) AS failures_by_category,
       avg(a.processing_s) AS avg_processing_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY a.processing_s) AS p95_processing_s,
       sum(a.items_processed) / NULLIF(sum(a.processing_s), 0) AS items_per_s
FROM a LEFT JOIN cats c ON c.hour_s = a.hour_s
GROUP BY a.hour_s, c.failures_by_category
ORDER BY a.hour_s;
