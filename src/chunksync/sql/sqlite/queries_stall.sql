-- Named queries of a stalled worker's return (Manager.absolve_stall): a worker that was alive but cut off from the database gives back what recovery charged its chunks meanwhile.

-- absolve_stalled_attempts --
-- The worker's chunks recovered as stuck within the last :window_s: their attempt rows become held (not a failure, attempt given back); returns each chunk once.
UPDATE attempts SET outcome = 'held', rule = 'recovery:stalled', message = :message
WHERE worker_id = :worker_id AND outcome = 'stuck' AND finished_at >= NOW() - :window_s
RETURNING chunk_id, queue_id;

-- absolve_stalled_chunk --
-- Give one such chunk its attempt and its crash back; one that went dead for it (crash loop, out of attempts) within the window is pending again. Returns the chunk if it was revived.
UPDATE chunks
SET attempts = MAX(0, attempts - 1), crash_count = MAX(0, crash_count - 1),
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
