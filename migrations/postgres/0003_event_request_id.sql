-- Switchyard schema, version 3 (Postgres): events carry the request that
-- caused them, and retention can find old events cheaply.
--
-- * events.request_id: the `x-request-id` of the HTTP request whose
--   transaction appended the event (NULL for changes the hub or an agent
--   session made on its own). Lets an operator go from an event to the log
--   lines of the request that caused it.
-- * events_created_at: the retention task deletes events older than
--   `event_retention` in batches, oldest first (`WHERE created_at < $1
--   ORDER BY created_at, seq LIMIT 10000`).
--   Events are append-only and created_at never changes, so the index only
--   ever grows at its right edge and never stops an update from being HOT.
--   (A BRIN index would be smaller, but its ranges keep their old minimum
--   after the batches delete, so every later run would read those blocks.)

ALTER TABLE events ADD COLUMN request_id text;

CREATE INDEX events_created_at ON events (created_at, seq);

COMMENT ON COLUMN events.request_id IS 'x-request-id of the HTTP request that appended the event; NULL for hub- or agent-originated changes.';
