-- Switchyard schema, version 1 (SQLite). Same tables, columns and meaning as
-- migrations/postgres/0001_init.sql; only the types differ:
-- * ids are sqlx's Uuid encoding, a 16-byte BLOB (compares bytewise, so
--   UUIDv7 ids sort by time);
-- * timestamps are TEXT in one fixed-width UTC form
--   (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, written by the store), so text order is
--   time order;
-- * JSON is TEXT.
-- Tables are STRICT so a value of the wrong type is refused instead of stored.
-- Status columns hold exactly the `as_str()` forms of server/src/domain/status.rs.

-- What a client submits. The document lives in `documents` so a job row stays small.
CREATE TABLE jobs (
    id              BLOB    PRIMARY KEY NOT NULL,
    status          TEXT    NOT NULL
        CHECK (status IN ('waiting', 'queued', 'running', 'completed', 'failed', 'cancelled')),
    status_reason   TEXT,
    pipeline        TEXT    NOT NULL,
    prompt          TEXT    NOT NULL,
    context         TEXT    NOT NULL,
    priority        INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
    idempotency_key TEXT,
    request_hash    TEXT    NOT NULL,
    created_by      TEXT    NOT NULL,
    max_attempts    INTEGER NOT NULL CHECK (max_attempts >= 1),
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    version         INTEGER NOT NULL DEFAULT 1
) STRICT;

-- An idempotency key is scoped to its creator; NULL keys never collide.
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (created_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The uploaded document of a job, written once, read on demand.
CREATE TABLE documents (
    job_id       BLOB    PRIMARY KEY NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    file_name    TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL CHECK (size >= 0),
    sha256       TEXT    NOT NULL,
    bytes        BLOB    NOT NULL
) STRICT;

-- Labels of a job (a set); (label, job_id) serves "jobs with label X, newest first".
CREATE TABLE job_labels (
    job_id BLOB NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    label  TEXT NOT NULL,
    PRIMARY KEY (job_id, label)
) STRICT, WITHOUT ROWID;
CREATE INDEX job_labels_label ON job_labels (label, job_id);

-- "job_id waits for depends_on to complete"; the depends_on index finds the
-- jobs to release when a job completes.
CREATE TABLE job_dependencies (
    job_id     BLOB NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    depends_on BLOB NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, depends_on)
) STRICT, WITHOUT ROWID;
CREATE INDEX job_dependencies_depends_on ON job_dependencies (depends_on);

-- One unit of work for one capability. agent_id has no foreign key: agents may
-- be purged while their task history stays.
CREATE TABLE tasks (
    id           BLOB    PRIMARY KEY NOT NULL,
    job_id       BLOB    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    stage        INTEGER NOT NULL CHECK (stage >= 0),
    capability   TEXT    NOT NULL,
    status       TEXT    NOT NULL
        CHECK (status IN ('pending', 'assigned', 'running', 'succeeded', 'failed', 'cancelled')),
    item_id      BLOB    REFERENCES items (id) ON DELETE SET NULL,
    priority     INTEGER NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    agent_id     BLOB,
    lease_until  TEXT,
    next_run_at  TEXT    NOT NULL,
    output       TEXT,
    error        TEXT,
    usage        TEXT,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    version      INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX tasks_job_id ON tasks (job_id);

-- What a stage emits (a requirement in the reference pipeline); (job_id, id)
-- serves the per-job listing in creation order and the per-job counts.
CREATE TABLE items (
    id               BLOB    PRIMARY KEY NOT NULL,
    job_id           BLOB    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    source_task_id   BLOB    REFERENCES tasks (id) ON DELETE SET NULL,
    stage            INTEGER NOT NULL CHECK (stage >= 0),
    status           TEXT    NOT NULL
        CHECK (status IN ('pending', 'validating', 'integrated', 'rejected', 'failed')),
    data             TEXT    NOT NULL,
    rejection_reason TEXT,
    last_error       TEXT,
    retry_count      INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
) STRICT;
CREATE INDEX items_job_id ON items (job_id, id);

-- Registered agents; last_heartbeat_at is flushed in batches, not per heartbeat.
CREATE TABLE agents (
    id                BLOB    PRIMARY KEY NOT NULL,
    name              TEXT    NOT NULL UNIQUE,
    version           TEXT    NOT NULL,
    labels            TEXT    NOT NULL DEFAULT '[]',
    session_state     TEXT    NOT NULL,
    health            TEXT    NOT NULL,
    trust_score       REAL    NOT NULL DEFAULT 1.0,
    in_flight         INTEGER NOT NULL DEFAULT 0,
    last_heartbeat_at TEXT,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
) STRICT;

-- What an agent declared it can do, replaced on every `hello`.
CREATE TABLE capabilities (
    agent_id        BLOB    NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    input_schema    TEXT    NOT NULL,
    output_schema   TEXT    NOT NULL,
    pricing         TEXT,
    max_concurrency INTEGER NOT NULL CHECK (max_concurrency >= 1),
    PRIMARY KEY (agent_id, name)
) STRICT;

-- The durable event log: append-only. AUTOINCREMENT guarantees a seq is never
-- reused, even after old events are deleted, so stream cursors stay valid.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     BLOB,
    type       TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at TEXT    NOT NULL
) STRICT;
CREATE INDEX events_job_id_seq ON events (job_id, seq);
