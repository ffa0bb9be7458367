-- Version 3: the connections that LISTEN for receivers, one row per process's notification
-- connection (or per receiver's connection with dbos.pg_wakeups = connection). A send makes a
-- NOTIFY only while a listener other than its own Database handle is here: the handle wakes its
-- own receivers after its commits, and PostgreSQL serializes the commits of every notifying
-- transaction on one lock. Unlogged: a row means nothing once its connection is gone, and a row
-- left behind only costs a NOTIFY nobody needed until the next listener to join removes it.
CREATE UNLOGGED TABLE dbos_listener (
  origin      text PRIMARY KEY,
  backend_pid integer NOT NULL,
  joined_us   bigint NOT NULL
);
