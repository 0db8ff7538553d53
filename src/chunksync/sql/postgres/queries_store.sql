-- Named queries of the message store (PostgreSQL). Parameters are named (:name), cast where their type matters.

-- store_upsert_message --
-- Insert one synced message, or refresh it: a retried chunk never creates a duplicate.
INSERT INTO mail_messages (account, folder, uidvalidity, uid, size, sha256, raw, internaldate,
                           flags, labels, gm_msgid, modseq, source_key, envelope, message_id,
                           from_addr, to_addr, cc_addr, subject, date_header, in_reply_to, refs,
                           defects, stored_at, updated_at)
VALUES (:account, :folder, :uidvalidity, :uid, :size, :sha256, :raw, :internaldate, :flags,
        :labels, :gm_msgid, :modseq, :source_key, :envelope, :message_id, :from_addr, :to_addr,
        :cc_addr, :subject, :date_header, :in_reply_to, :refs, :defects, NOW(), NOW())
ON CONFLICT (account, folder, uidvalidity, uid) DO UPDATE SET
    size = excluded.size, sha256 = excluded.sha256, raw = excluded.raw,
    internaldate = excluded.internaldate, flags = excluded.flags, labels = excluded.labels,
    gm_msgid = excluded.gm_msgid, modseq = excluded.modseq, source_key = excluded.source_key,
    envelope = excluded.envelope, message_id = excluded.message_id,
    from_addr = excluded.from_addr, to_addr = excluded.to_addr, cc_addr = excluded.cc_addr,
    subject = excluded.subject, date_header = excluded.date_header,
    in_reply_to = excluded.in_reply_to, refs = excluded.refs, defects = excluded.defects,
    deleted_at = NULL, updated_at = NOW();

-- store_update_flags --
-- New flags (and labels, modseq) of one stored message.
UPDATE mail_messages
SET flags = :flags, labels = COALESCE(:labels::text, labels),
    modseq = COALESCE(:modseq::bigint, modseq),
    updated_at = NOW()
WHERE account = :account AND folder = :folder AND uidvalidity = :uidvalidity AND uid = :uid;

-- store_delete_message --
-- Forget one message the source no longer has.
DELETE FROM mail_messages
WHERE account = :account AND folder = :folder AND uidvalidity = :uidvalidity AND uid = :uid;

-- store_delete_other_uidvalidity --
-- Forget the messages of a folder kept under any UIDVALIDITY but the current one.
DELETE FROM mail_messages
WHERE account = :account AND folder = :folder AND uidvalidity <> :uidvalidity;

-- store_rekey_message --
-- Move one stored message to its new key after a UIDVALIDITY change (no re-download).
UPDATE mail_messages SET uidvalidity = :new_uidvalidity, uid = :new_uid, updated_at = NOW()
WHERE account = :account AND folder = :folder AND uidvalidity = :uidvalidity AND uid = :uid;

-- store_rekey_candidates --
-- Stored messages under an old UIDVALIDITY, for matching by Message-ID and size.
SELECT uid, message_id, size FROM mail_messages
WHERE account = :account AND folder = :folder AND uidvalidity = :uidvalidity
  AND message_id IS NOT NULL AND deleted_at IS NULL;

-- store_uid_window --
-- UIDs (with size and flags) stored in a UID window of a folder, in order.
SELECT uid, size, flags, source_key, message_id FROM mail_messages
WHERE account = :account AND folder = :folder AND uidvalidity = :uidvalidity
  AND uid BETWEEN :first AND :last AND deleted_at IS NULL
ORDER BY uid;

-- store_count --
-- Messages and bytes stored for a folder under one UIDVALIDITY (those still on the server).
SELECT COUNT(*) AS messages, COALESCE(SUM(size), 0) AS bytes FROM mail_messages
WHERE account = :account AND folder = :folder AND uidvalidity = :uidvalidity
  AND deleted_at IS NULL;

-- store_count_messages --
-- Messages stored for a folder under one UIDVALIDITY (those still on the server), without their bytes (a sync's plan; SQLite counts them its own way).
SELECT COUNT(*) AS messages FROM mail_messages
WHERE account = :account AND folder = :folder AND uidvalidity = :uidvalidity
  AND deleted_at IS NULL;

-- store_get_message --
-- One stored message, raw bytes included.
SELECT * FROM mail_messages
WHERE account = :account AND folder = :folder AND uidvalidity = :uidvalidity AND uid = :uid;

-- store_page --
-- The next page of stored messages of an account (all when :account is NULL), keyset order.
SELECT * FROM mail_messages
WHERE (:account::text IS NULL OR account = :account) AND (:folder::text IS NULL OR folder = :folder)
  AND (account, folder, uidvalidity, uid) > (:after_account::text, :after_folder::text,
                                             :after_uidvalidity::bigint, :after_uid::bigint)
  AND (:include_deleted::boolean OR deleted_at IS NULL)
ORDER BY account, folder, uidvalidity, uid
LIMIT :limit;

-- store_get_folder --
-- The sync state of one folder.
SELECT * FROM mail_folders WHERE account = :account AND folder = :folder;

-- store_list_folders --
-- The sync state of every folder (of one account when one is given).
SELECT * FROM mail_folders WHERE :account::text IS NULL OR account = :account
ORDER BY account, folder;

-- store_save_folder --
-- Record a folder's sync state (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, message count).
INSERT INTO mail_folders (account, folder, uidvalidity, uidnext, highestmodseq, messages,
                          synced_at, origin)
VALUES (:account, :folder, :uidvalidity, :uidnext, :highestmodseq, :messages, NOW(), :origin::text)
ON CONFLICT (account, folder) DO UPDATE SET
    uidvalidity = excluded.uidvalidity, uidnext = excluded.uidnext,
    highestmodseq = excluded.highestmodseq, messages = excluded.messages,
    synced_at = NOW(), origin = COALESCE(excluded.origin, mail_folders.origin);

-- store_count_rekey --
-- Count one UIDVALIDITY re-key of a folder (the cap reads rekeys and rekeyed_at).
UPDATE mail_folders SET rekeys = CASE WHEN rekeyed_at IS NULL OR rekeyed_at < NOW() - :window_s::float8
                                      THEN 1 ELSE rekeys + 1 END,
                        rekeyed_at = NOW()
WHERE account = :account AND folder = :folder;

-- store_mark_other_uidvalidity --
-- Mark the messages of a folder kept under any UIDVALIDITY but the current one deleted on the server.
UPDATE mail_messages SET deleted_at = NOW()
WHERE account = :account AND folder = :folder AND uidvalidity <> :uidvalidity
  AND deleted_at IS NULL;

-- store_mark_deleted --
-- Keep one message the server no longer has, marked with the time it went.
UPDATE mail_messages SET deleted_at = NOW()
WHERE account = :account AND folder = :folder AND uidvalidity = :uidvalidity AND uid = :uid
  AND deleted_at IS NULL;

-- store_delete_moved --
-- Forget one message gone from its folder when a live copy (same Message-ID, size and bytes)
-- sits in another folder of the account: it moved, it was not deleted.
DELETE FROM mail_messages
WHERE account = :account AND folder = :folder AND uidvalidity = :uidvalidity AND uid = :uid
  AND message_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM mail_messages AS o
              WHERE o.account = mail_messages.account AND o.message_id = mail_messages.message_id
                AND o.size = mail_messages.size AND o.sha256 = mail_messages.sha256
                AND o.folder <> mail_messages.folder AND o.deleted_at IS NULL);

-- store_any_kept --
-- Whether an account keeps any message the server deleted (one probe of the small partial
-- index): a sync's batch looks for moved copies of its messages only then.
SELECT 1 AS kept FROM mail_messages
WHERE account = :account AND deleted_at IS NOT NULL
LIMIT 1;

-- store_delete_moved_copies --
-- A message just stored that is a kept, deleted-on-server copy elsewhere in the account (same
-- Message-ID, size and bytes): the copy moved here, so the kept one is forgotten.
DELETE FROM mail_messages
WHERE account = :account AND message_id = :message_id AND size = :size AND sha256 = :sha256
  AND deleted_at IS NOT NULL;

-- store_rename_folder_messages --
-- Follow a folder renamed on the server: its messages keep their bytes, under the new name.
UPDATE mail_messages SET folder = :new_folder, updated_at = NOW()
WHERE account = :account AND folder = :folder;

-- store_rename_folder --
-- Follow a folder renamed on the server: its sync state, under the new name.
UPDATE mail_folders SET folder = :new_folder WHERE account = :account AND folder = :folder;

-- store_folder_summaries --
-- Each folder the store holds (of one account when given): messages still on the server, kept
-- after the server deleted them, their bytes, and the last sync.
SELECT f.account, f.folder, f.origin, f.uidvalidity, f.messages AS on_server, f.synced_at,
       COALESCE(SUM(CASE WHEN m.deleted_at IS NULL THEN 1 ELSE 0 END), 0) AS stored,
       COALESCE(SUM(CASE WHEN m.deleted_at IS NULL THEN 0 ELSE 1 END), 0) AS deleted,
       COALESCE(SUM(m.size), 0) AS bytes
FROM mail_folders AS f
LEFT JOIN mail_messages AS m ON m.account = f.account AND m.folder = f.folder
WHERE :account::text IS NULL OR f.account = :account
GROUP BY f.account, f.folder, f.origin, f.uidvalidity, f.messages, f.synced_at
ORDER BY f.account, f.folder;

-- store_deleted_window --
-- The kept, deleted-on-server messages of a UID window, by digest (replaced by a download).
SELECT uid, sha256 FROM mail_messages
WHERE account = :account AND folder = :folder AND uidvalidity = :uidvalidity
  AND uid BETWEEN :first AND :last AND deleted_at IS NOT NULL;

-- store_forget_kept --
-- A repair that mirrors: forget a folder's messages kept after the server deleted them.
DELETE FROM mail_messages
WHERE account = :account AND folder = :folder AND deleted_at IS NOT NULL;
