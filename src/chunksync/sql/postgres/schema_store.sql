-- The message store (issue 4): synced mail in the same database as the queue.
-- A message is keyed by (account, folder, uidvalidity, uid); its raw RFC 822 bytes are kept
-- byte-exact with their SHA-256, beside the parsed headers, flags, labels and parse defects.

CREATE TABLE mail_messages (
    account      TEXT NOT NULL,
    folder       TEXT NOT NULL,
    uidvalidity  BIGINT NOT NULL,
    uid          BIGINT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    raw          BYTEA NOT NULL,
    internaldate DOUBLE PRECISION,
    flags        TEXT NOT NULL DEFAULT '',
    labels       TEXT,
    gm_msgid     TEXT,
    modseq       BIGINT,
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
    stored_at    DOUBLE PRECISION NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL,
    deleted_at   DOUBLE PRECISION,  -- when the server no longer had it (kept under --deletions keep)
    PRIMARY KEY (account, folder, uidvalidity, uid)
);
-- Re-keying (a UIDVALIDITY change, a renumbered folder) and recognising a move between folders
-- match stored messages by Message-ID and size, across the account's folders.
CREATE INDEX mail_messages_message_id ON mail_messages (account, message_id, size);
-- The kept, deleted-on-server messages alone: looked up for each message a sync stores, so a
-- message moved to another folder is recognised, at no cost to writing live ones.
CREATE INDEX mail_messages_deleted ON mail_messages (account, message_id, size)
    WHERE deleted_at IS NOT NULL;

CREATE TABLE mail_folders (
    account       TEXT NOT NULL,
    folder        TEXT NOT NULL,
    uidvalidity   BIGINT NOT NULL,
    uidnext       BIGINT NOT NULL DEFAULT 1,
    highestmodseq BIGINT,
    messages      BIGINT NOT NULL DEFAULT 0,
    rekeys        BIGINT NOT NULL DEFAULT 0,
    rekeyed_at    DOUBLE PRECISION,
    synced_at     DOUBLE PRECISION NOT NULL,
    origin        TEXT,  -- the URI the user synced (never a password), naming the account
    PRIMARY KEY (account, folder)
);
