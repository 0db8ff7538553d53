-- PostgreSQL-only queries (the pg_ prefix): the Python health API reads the SQL health
-- interface (schema_health.sql) through them, so there is one implementation on PostgreSQL.
-- SQLite answers the same questions in chunksync.health; tests compare the two.

-- pg_queue_health_summary --
-- get_queue_health_summary() for one queue.
SELECT * FROM get_queue_health_summary(:queue_id::uuid, :window_s::float8);

-- pg_queues_health_summary --
-- get_queue_health_summary() for many queues in one statement, in the order given: a
-- statement a queue was 0.51 ms each, 0.05 in one (50,000 queues: `health --json` 25 s).
SELECT s.* FROM unnest(:queue_ids::uuid[]) WITH ORDINALITY AS q(id, n),
     LATERAL get_queue_health_summary(q.id, :window_s::float8) AS s
ORDER BY q.n;

-- pg_system_health_metrics --
-- get_system_health_metrics() with the given thresholds.
SELECT * FROM get_system_health_metrics(:worker_timeout_s::float8, :error_rate_degraded::float8,
    :error_rate_critical::float8, :min_attempts::int, :backlog_age_degraded_s::float8,
    :stuck_degraded::int, :stressed::text[]);

-- pg_assess_health --
-- chunksync_assess_health() on given figures (for the test that compares it with Python's).
SELECT * FROM chunksync_assess_health(:workers_alive::bigint, :backlog::bigint,
    :oldest_pending_age_s::float8, :attempts_5m::bigint, :error_rate_5m::float8, :stuck::bigint,
    :auth_failures_60m::bigint, :error_rate_degraded::float8, :error_rate_critical::float8,
    :min_attempts::int, :backlog_age_degraded_s::float8, :stuck_degraded::int,
    :stressed::text[]);

-- pg_retry_decision --
-- chunksync_retry_decision() (for the test that compares it with RetryPolicy.decide).
SELECT * FROM chunksync_retry_decision(:category, :attempts::int, :max_attempts::int,
    :retry_after_s::float8, :stressed::boolean, :stress_retries::int, :deferrals::int,
    :policy::jsonb, :probe::boolean);

-- pg_should_retry_chunk --
-- should_retry_chunk_enhanced() for one chunk.
SELECT * FROM should_retry_chunk_enhanced(:chunk_id::uuid, :category, :stressed::boolean,
    :retry_after_s::float8, :policy::jsonb);

-- pg_cleanup_health --
-- cleanup_old_health_monitoring(): delete attempt rows older than :days days, in batches.
SELECT cleanup_old_health_monitoring(make_interval(secs => :days::float8 * 86400),
                                     :batch::int) AS deleted;

-- pg_hourly_summary --
-- The chunked_sync_health_summary view over the last :window_s seconds.
SELECT date_part('epoch', hour) AS hour, attempts, successes, failures, failures_by_category,
       avg_processing_s, p95_processing_s, items_per_s
FROM chunked_sync_health_summary
WHERE hour >= to_timestamp(chunksync_now() - :window_s::float8)
ORDER BY hour;
