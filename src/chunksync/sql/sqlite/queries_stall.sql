-- Named queries of a stalled worker's return (Manager.absolve_stall): a worker that was alive but cut off from the database gives back what recovery charged its chunks meanwhile.

-- absolve_stalled_attempts --
-- The worker's chunks recovered as stuck within the last :window_s, not given back yet: their attempt rows stay stuck (the handler may have run: the history says so) and are marked recovery:stalled; returns one row per recovery.
UPDATE attempts SET rule = 'recovery:stalled', message = :message
WHERE worker_id = :worker_id AND outcome = 'stuck'
  AND COALESCE(rule, '') <> 'recovery:stalled'
  AND finished_at >= NOW() - :window_s
RETURNING chunk_id AS chunk_id, queue_id AS queue_id;

-- absolve_stalled_chunk --
-- Give one such chunk its attempt back by allowing it one more (its attempts, and so every attempt's number, stay as they are: an attempt is never renumbered) and its crash back; one that went dead for it (crash loop, out of attempts) within the window is pending again. Returns the chunk's status.
UPDATE chunks
SET max_attempts = max_attempts + 1, crash_count = MAX(0, crash_count - 1),
    status = CASE WHEN status = 'dead' THEN 'pending' ELSE status END,
    run_after = CASE WHEN status = 'dead' THEN NOW() ELSE run_after END,
    dead_reason = CASE WHEN status = 'dead' THEN NULL ELSE dead_reason END,
    finished_at = CASE WHEN status = 'dead' THEN NULL ELSE finished_at END,
    updated_at = NOW()
WHERE id = :id
  AND (status IN ('pending', 'processing')
       OR (status = 'dead' AND dead_reason IN ('crash_loop', 'stuck: out of attempts')
           AND finished_at >= NOW() - :window_s))
RETURNING status;
