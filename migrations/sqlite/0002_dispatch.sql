-- Switchyard schema, version 2 (SQLite): dispatch. Same meaning as
-- migrations/postgres/0002_dispatch.sql.
--
-- * tasks.failures counts failed attempts (declines do not count).
-- * agents: SQLite cannot add a CHECK constraint to an existing column (or
--   change a column's default) without rebuilding the table, and rebuilding
--   `agents` would cascade-delete its `capabilities` (foreign keys are on and
--   cannot be switched off inside the migration's transaction). The same
--   rules are enforced by triggers instead: session_state and health must be
--   the `as_str()` forms of AgentSessionState / AgentHealth, and labels a JSON
--   object (the column's old default '[]' is therefore refused: the store
--   always writes labels explicitly).
-- * No index on tasks (status): see the Postgres migration; `open_tasks`
--   scans `tasks` once at start-up.

ALTER TABLE tasks ADD COLUMN failures INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0);

UPDATE agents SET labels = '{}' WHERE json_type(labels) IS NOT 'object';

CREATE TRIGGER agents_check_insert BEFORE INSERT ON agents
WHEN NEW.session_state NOT IN ('connected', 'draining', 'disconnected', 'offline')
  OR NEW.health NOT IN ('active', 'degraded')
  OR json_type(NEW.labels) IS NOT 'object'
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: agents (session_state, health or labels)');
END;

CREATE TRIGGER agents_check_update BEFORE UPDATE OF session_state, health, labels ON agents
WHEN NEW.session_state NOT IN ('connected', 'draining', 'disconnected', 'offline')
  OR NEW.health NOT IN ('active', 'degraded')
  OR json_type(NEW.labels) IS NOT 'object'
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: agents (session_state, health or labels)');
END;
