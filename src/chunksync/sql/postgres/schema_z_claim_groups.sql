-- Each chunk's claim group, and the index each claim reads its own group through (migrations
-- 0025 and 0026): a limited dependency's chunks apart from the rest, so that neither claim reads
-- past the other's backlog; a paused queue's chunks apart from both (0027, 0028). 0026's backfill
-- has nothing to move in a new database.
-- include migrations/0025_claim_groups.sql --
-- include migrations/0027_paused_claim_groups.sql --
CREATE INDEX queues_regrouping ON queues (id) WHERE regroup_seq IS NOT NULL;
CREATE INDEX chunks_claim_fair ON chunks (claim_group, priority DESC, fair_key)
    WHERE status = 'pending';
