-- 0002: the message store (mail_messages, mail_folders).

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
    PRIMARY KEY (account, folder, uidvalidity, uid)
);
-- Re-keying after a UIDVALIDITY change matches stored messages by Message-ID and size.
CREATE INDEX mail_messages_message_id ON mail_messages (account, folder, message_id, size);

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
    PRIMARY KEY (account, folder)
);
