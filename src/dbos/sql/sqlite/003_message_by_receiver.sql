-- Version 3: Message in one B-tree keyed by (receiver_id, seq), WITHOUT ROWID. Version 1 kept
-- the rows by seq and found a receiver's through a second B-tree, the index (receiver_id, seq),
-- so every send and every take wrote a page of each to the WAL. seq is now the arrival order per
-- receiver (the send numbers it after the receiver's last queued message); the rows already
-- queued keep theirs, which are in order per receiver too.
DROP VIEW Mailbox;
CREATE TABLE Message_v3 (
  receiver_id INTEGER NOT NULL,
  seq         INTEGER NOT NULL,
  sender_id   INTEGER NOT NULL,
  message_id  INTEGER NOT NULL,
  data        BLOB NOT NULL,
  sent_us     INTEGER NOT NULL,
  PRIMARY KEY (receiver_id, seq)
) WITHOUT ROWID;
INSERT INTO Message_v3 (receiver_id, seq, sender_id, message_id, data, sent_us)
SELECT receiver_id, seq, sender_id, message_id, data, sent_us FROM Message;
DROP TABLE Message;
ALTER TABLE Message_v3 RENAME TO Message;
CREATE VIEW Mailbox AS
  SELECT receiver_id, count(*) AS messages, sum(length(data)) AS bytes, min(sent_us) AS oldest_us
  FROM Message GROUP BY receiver_id;
