-- The message store (issue 4): synced mail in the same database as the queue.
-- A message is keyed by (account, folder, uidvalidity, uid); its raw RFC 822 bytes are kept
-- byte-exact with their SHA-256, beside the parsed headers, flags, labels and parse defects.

CREATE TABLE mail_messages (
    account      TEXT NOT NULL,
    folder       TEXT NOT NULL,
    uidvalidity  INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    raw          BLOB NOT NULL,
    internaldate REAL,
    flags        TEXT NOT NULL DEFAULT '',
    labels       TEXT,
    gm_msgid     TEXT,
    modseq       INTEGER,
    source_key   TEXT,
    envelope     TEXT,
    message_id   TEXT,
    from_addr    TEXT,
    to_addr      TEXT,
    cc_addr      TEXT,
    subject      TEXT,
    date_header  TEXT,
    in_reply_to  TEXT,
    refs         TEXT,
    defects      TEXT,
    stored_at    REAL NOT NULL,
    updated_at   REAL NOT NULL,
    deleted_at   REAL,  -- when the server no longer had it (kept under --deletions keep)
    PRIMARY KEY (account, folder, uidvalidity, uid)
);
-- Recognising a move between folders matches stored messages by Message-ID and size across the
-- account's folders. Message-IDs are random, so an index of them took one leaf of its B-tree
-- per stored message, read and written again by every sync's transaction (a third of a sync's
-- time). Instead each stored message's key goes first to mail_message_ids_new, in the order
-- messages arrive (no index: an append), and from there in sorted order into mail_message_ids
-- (chunksync.store.store: before a lookup, and every MERGE_ROWS keys). The triggers keep the
-- sorted keys those of the messages stored (a key still in the log when its message changed or
-- went is left out of the merge, or matches nothing: a lookup checks each key against its
-- message).
CREATE TABLE mail_message_ids (
    account      TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    size         INTEGER NOT NULL,
    folder       TEXT NOT NULL,
    uidvalidity  INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    PRIMARY KEY (account, message_id, size, folder, uidvalidity, uid)
) WITHOUT ROWID;
CREATE TABLE mail_message_ids_new (
    account      TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    size         INTEGER NOT NULL,
    folder       TEXT NOT NULL,
    uidvalidity  INTEGER NOT NULL,
    uid          INTEGER NOT NULL
);
CREATE TRIGGER mail_messages_key_stored AFTER INSERT ON mail_messages
WHEN NEW.message_id IS NOT NULL
BEGIN
    INSERT INTO mail_message_ids_new
    VALUES (NEW.account, NEW.message_id, NEW.size, NEW.folder, NEW.uidvalidity, NEW.uid);
END;
CREATE TRIGGER mail_messages_key_changed
AFTER UPDATE OF account, folder, uidvalidity, uid, message_id, size ON mail_messages
WHEN OLD.account IS NOT NEW.account OR OLD.folder IS NOT NEW.folder
  OR OLD.uidvalidity IS NOT NEW.uidvalidity OR OLD.uid IS NOT NEW.uid
  OR OLD.message_id IS NOT NEW.message_id OR OLD.size IS NOT NEW.size
BEGIN
    DELETE FROM mail_message_ids
    WHERE account = OLD.account AND message_id = OLD.message_id AND size = OLD.size
      AND folder = OLD.folder AND uidvalidity = OLD.uidvalidity AND uid = OLD.uid;
    INSERT INTO mail_message_ids_new
    SELECT NEW.account, NEW.message_id, NEW.size, NEW.folder, NEW.uidvalidity, NEW.uid
    WHERE NEW.message_id IS NOT NULL;
END;
CREATE TRIGGER mail_messages_key_gone AFTER DELETE ON mail_messages
WHEN OLD.message_id IS NOT NULL
BEGIN
    DELETE FROM mail_message_ids
    WHERE account = OLD.account AND message_id = OLD.message_id AND size = OLD.size
      AND folder = OLD.folder AND uidvalidity = OLD.uidvalidity AND uid = OLD.uid;
END;
-- The kept, deleted-on-server messages alone: looked up for each message a sync stores, so a
-- message moved to another folder is recognised, at no cost to writing live ones.
CREATE INDEX mail_messages_deleted ON mail_messages (account, message_id, size)
    WHERE deleted_at IS NOT NULL;

CREATE TABLE mail_folders (
    account       TEXT NOT NULL,
    folder        TEXT NOT NULL,
    uidvalidity   INTEGER NOT NULL,
    uidnext       INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER,
    messages      INTEGER NOT NULL DEFAULT 0,
    rekeys        INTEGER NOT NULL DEFAULT 0,
    rekeyed_at    REAL,
    synced_at     REAL NOT NULL,
    origin        TEXT,  -- the URI the user synced (never a password), naming the account
    PRIMARY KEY (account, folder)
);
