-- Version 4: a payload of at least dbos.sqlite.spill_bytes lives in the payload log beside the
-- database file (<file>-payloads/, src/dbos/payload_log.h) instead of in overflow pages that
-- every send, take and checkpoint would write again. Its row keeps `data` empty and `spill`, a
-- reference that the SQL function dbos_payload(spill) reads back (sluice's connections have it).
-- MessageData shows every message with its bytes; Mailbox counts the bytes of both kinds.
ALTER TABLE Message ADD COLUMN spill BLOB;
DROP VIEW Mailbox;
CREATE VIEW Mailbox AS
  SELECT receiver_id, count(*) AS messages,
         sum(length(data) + coalesce(dbos_spill_length(spill), 0)) AS bytes,
         min(sent_us) AS oldest_us
  FROM Message GROUP BY receiver_id;
DROP VIEW IF EXISTS MessageData;
CREATE VIEW MessageData AS
  SELECT receiver_id, seq, sender_id, message_id,
         iif(spill IS NULL, data, dbos_payload(spill)) AS data, sent_us
  FROM Message;
