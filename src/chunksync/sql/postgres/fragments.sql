-- Parts several queries share word for word, each written once: a query names one on a line of
-- its own, `-- include <name> --`, where its text goes (chunksync.sql). Blocks as in queries.sql.

-- queue_totals --
-- A queue's chunk totals by status, as a lateral join on its row `q` (alias `t`): its completed chunks are its count of chunks (queues.n_chunks, migration 0022) less the others, which chunks_queue_open holds.
CROSS JOIN LATERAL (
    SELECT COUNT(*) FILTER (WHERE c.status = 'pending') AS n_pending,
           COUNT(*) FILTER (WHERE c.status = 'processing') AS n_processing,
           q.n_chunks - COUNT(*) AS n_completed,
           COUNT(*) FILTER (WHERE c.status = 'dead') AS n_dead,
           COUNT(*) FILTER (WHERE c.status = 'cancelled') AS n_cancelled
    FROM chunks c WHERE c.queue_id = q.id AND c.status <> 'completed') t
