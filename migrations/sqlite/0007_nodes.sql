-- Switchyard schema, version 7 (SQLite): same meaning as
-- migrations/postgres/0007_nodes.sql (an SQLite hub is always one node).
CREATE TABLE nodes (
    id           BLOB PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    url          TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    stopped_at   TEXT
) STRICT;

CREATE TABLE leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     BLOB NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
