-- Parts several queries share word for word, each written once: a query names one on a line of
-- its own, `-- include <name> --`, where its text goes (chunksync.sql). Blocks as in queries.sql.

-- queue_totals --
-- A queue's open chunk totals by status, as columns of a select list over its row `q` (its completed chunks, its count of chunks less these, the query computes from them). Each says `status <> 'completed'` so that SQLite reads the partial index chunks_queue_open.
(SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'pending'
                                           AND c.status <> 'completed') AS n_pending,
(SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'processing'
                                           AND c.status <> 'completed') AS n_processing,
(SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'dead'
                                           AND c.status <> 'completed') AS n_dead,
(SELECT COUNT(*) FROM chunks c WHERE c.queue_id = q.id AND c.status = 'cancelled'
                                           AND c.status <> 'completed') AS n_cancelled
