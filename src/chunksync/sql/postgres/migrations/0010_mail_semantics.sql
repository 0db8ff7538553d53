-- 0010: mail semantics: messages kept after the server deleted them (deleted_at), the URI
-- that names an account (origin), and Message-ID matching across an account's folders.

ALTER TABLE mail_messages ADD COLUMN deleted_at DOUBLE PRECISION;
ALTER TABLE mail_folders ADD COLUMN origin TEXT;
DROP INDEX mail_messages_message_id;
CREATE INDEX mail_messages_message_id ON mail_messages (account, message_id, size);
CREATE INDEX mail_messages_deleted ON mail_messages (account, message_id, size)
    WHERE deleted_at IS NOT NULL;
