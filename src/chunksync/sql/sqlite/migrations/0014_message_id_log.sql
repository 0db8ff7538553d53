-- 0014_message_id_log --
-- expand --
-- The Message-ID index of mail_messages, (account, message_id, size), becomes a log and a
-- sorted table (schema_store.sql says why): with random Message-IDs, as a real mailbox's are,
-- the index took a leaf of its own per stored message, and a 100,000-message sync spent a
-- third of its time on it. The code before this works with the database as it is: the
-- triggers keep the keys whoever stores a message, and its move lookup (the only statement
-- that read the index) finds the same copies, by reading the account's messages.
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
INSERT INTO mail_message_ids
SELECT account, message_id, size, folder, uidvalidity, uid FROM mail_messages
WHERE message_id IS NOT NULL
ORDER BY account, message_id, size, folder, uidvalidity, uid;
DROP INDEX mail_messages_message_id;
