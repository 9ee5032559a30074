-- Switchyard schema, version 3 (SQLite): events carry the request that
-- caused them, and retention can find old events cheaply. Same meaning as
-- migrations/postgres/0003_event_request_id.sql.

ALTER TABLE events ADD COLUMN request_id TEXT;

CREATE INDEX events_created_at ON events (created_at, seq);
