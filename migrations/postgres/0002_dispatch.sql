-- Switchyard schema, version 2 (Postgres): dispatch.
--
-- * tasks.failures counts failed attempts (declines do not count); retries
--   stop at max_attempts. Adding a column with a constant default is a
--   catalog-only change (no table rewrite).
-- * agents: the session state and reported health are text holding exactly
--   the `as_str()` forms of AgentSessionState (server/src/domain/status.rs) and
--   AgentHealth (agent-sdk/src/protocol.rs); the CHECKs repeat those lists.
-- * agents.labels is a JSON object (name -> value), not an array.
--
-- Deliberately NOT added: an index on tasks (status), not even a partial one
-- for the unfinished states. Postgres can only do a HOT update when no indexed
-- column changes, and the columns of a partial index's predicate count as
-- indexed: every status change of a task (pending -> assigned -> running ->
-- succeeded, four per task) would become a full update writing new entries
-- into every index of the table, the churn DESIGN.md warns about. The only
-- reader that would use it, `open_tasks`, runs once at start-up, where a
-- sequential scan of `tasks` is acceptable.

ALTER TABLE tasks ADD COLUMN failures integer NOT NULL DEFAULT 0 CHECK (failures >= 0);

ALTER TABLE agents ADD CONSTRAINT agents_session_state_check
    CHECK (session_state IN ('connected', 'draining', 'disconnected', 'offline'));
ALTER TABLE agents ADD CONSTRAINT agents_health_check
    CHECK (health IN ('active', 'degraded'));

-- Version 1 defaulted labels to an array; no build ever wrote one, but a row
-- relying on the default would hold '[]'.
UPDATE agents SET labels = '{}'::jsonb WHERE jsonb_typeof(labels) <> 'object';
ALTER TABLE agents ALTER COLUMN labels SET DEFAULT '{}'::jsonb;
ALTER TABLE agents ADD CONSTRAINT agents_labels_check CHECK (jsonb_typeof(labels) = 'object');
