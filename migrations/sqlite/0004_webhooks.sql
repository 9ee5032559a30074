-- Switchyard schema, version 4 (SQLite): webhooks. Same tables, columns and
-- meaning as migrations/postgres/0004_webhooks.sql; ids are 16-byte BLOBs,
-- timestamps fixed-width UTC TEXT, JSON TEXT, booleans INTEGER 0/1.

CREATE TABLE webhooks (
    id                         BLOB    PRIMARY KEY NOT NULL,
    url                        TEXT    NOT NULL,
    event_types                TEXT    NOT NULL CHECK (json_type(event_types) = 'array'),
    label                      TEXT,
    description                TEXT,
    enabled                    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    disabled_reason            TEXT,
    secret                     TEXT    NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at TEXT,
    since_seq                  INTEGER NOT NULL,
    replay_generation          INTEGER NOT NULL DEFAULT 0,
    failing_since              TEXT,
    created_by                 TEXT    NOT NULL,
    created_at                 TEXT    NOT NULL,
    updated_at                 TEXT    NOT NULL
) STRICT;

CREATE TABLE webhook_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
) STRICT;
INSERT INTO webhook_cursor (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM events;

CREATE TABLE webhook_deliveries (
    id              BLOB    PRIMARY KEY NOT NULL,
    webhook_id      BLOB    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_seq       INTEGER NOT NULL,
    generation      INTEGER NOT NULL CHECK (generation >= 0),
    event_type      TEXT    NOT NULL,
    job_id          BLOB,
    request_id      TEXT,
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT    NOT NULL,
    delivered_at    TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    UNIQUE (webhook_id, event_seq, generation)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_listing ON webhook_deliveries (webhook_id, id);

CREATE TABLE webhook_attempts (
    delivery_id BLOB    NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    started_at  TEXT    NOT NULL,
    status_code INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
) STRICT;
