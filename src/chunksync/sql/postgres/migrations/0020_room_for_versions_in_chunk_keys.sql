-- 0020_room_for_versions_in_chunk_keys --
-- expand --
-- A claim and a finish are not HOT updates (a chunk's status is indexed), so each writes a new
-- entry beside the old one in the primary key and in (queue_id, seq), whose keys never change.
-- Built at the default fillfactor (90), a leaf page of a just-enqueued batch has no room for
-- the claim's entries: its inserts hit full pages and ran bottom-up deletion or split them
-- (with the other index inserts, 45% of the claim's time in the server: perf, docs/
-- benchmarks.md). Leaf pages filled to half when they are written leave room for the claim's
-- entry of every chunk: the claim 35.9 -> 32.8 and 36.4 -> 33.4 us a chunk of the server's CPU
-- (benchmarks/paired_statements, both ways round), the finish and the attempt rows unchanged.
-- The price is room: these two indexes take about twice the pages for the chunks enqueued from
-- now on. A fillfactor applies to the pages split from then on, not to those already full.
-- Online: SHARE UPDATE EXCLUSIVE on each index for a moment (writes go on), and the code
-- before this works with the database as it is.
ALTER INDEX chunks_pkey SET (fillfactor = 50);
ALTER INDEX chunks_queue_id_seq_key SET (fillfactor = 50);
