-- Switchyard schema, version 1 (Postgres).
--
-- Rules followed throughout (see DESIGN.md, "Postgres under churn"):
-- * rows that change often (jobs, tasks, items) are kept narrow and created
--   WITH (fillfactor = 80), so an update can usually stay on the same page as
--   a HOT update and leave no index entry behind;
-- * no index on a column that changes often (status, lease_until,
--   next_run_at, agent_id, ...): every such index turns a HOT update into a
--   full one. Only ids and other immutable columns are indexed;
-- * status columns are text holding exactly the `as_str()` form of the status
--   enums in server/src/domain/status.rs; the CHECKs below repeat that list so
--   a bug can never store a value the hub cannot read back.

-- What a client submits. The document lives in `documents` so a job row stays
-- small; labels and dependencies have their own tables.
CREATE TABLE jobs (
    id              uuid        PRIMARY KEY,
    status          text        NOT NULL
        CHECK (status IN ('waiting', 'queued', 'running', 'completed', 'failed', 'cancelled')),
    status_reason   text,
    pipeline        jsonb       NOT NULL,
    prompt          text        NOT NULL,
    context         jsonb       NOT NULL,
    priority        smallint    NOT NULL CHECK (priority BETWEEN 0 AND 9),
    idempotency_key text,
    request_hash    text        NOT NULL,
    created_by      text        NOT NULL,
    max_attempts    integer     NOT NULL CHECK (max_attempts >= 1),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz,
    version         bigint      NOT NULL DEFAULT 1
) WITH (fillfactor = 80);
COMMENT ON TABLE jobs IS 'Jobs submitted by clients; one row per job, kept narrow for HOT updates.';

-- An idempotency key is scoped to its creator; NULL keys never collide.
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (created_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The uploaded document of a job, written once, read on demand.
CREATE TABLE documents (
    job_id       uuid   PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    file_name    text   NOT NULL,
    content_type text   NOT NULL,
    size         bigint NOT NULL CHECK (size >= 0),
    sha256       text   NOT NULL,
    bytes        bytea  NOT NULL
);
COMMENT ON TABLE documents IS 'Job documents (bytes + metadata), kept out of jobs so job rows stay narrow.';

-- Labels of a job (a set). The (label, job_id) index serves "jobs with label X, newest first".
CREATE TABLE job_labels (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    label  text NOT NULL,
    PRIMARY KEY (job_id, label)
);
CREATE INDEX job_labels_label ON job_labels (label, job_id);
COMMENT ON TABLE job_labels IS 'Labels of a job; immutable after creation.';

-- "job_id waits for depends_on to complete". The index on depends_on finds the
-- jobs to release when a job completes.
CREATE TABLE job_dependencies (
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    depends_on uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX job_dependencies_depends_on ON job_dependencies (depends_on);
COMMENT ON TABLE job_dependencies IS 'Job-to-job dependencies; immutable after creation.';

-- One unit of work for one capability. The hottest table: updated on every
-- assignment, acceptance, lease renewal and completion, so only job_id (immutable)
-- is indexed. agent_id has no foreign key: agents may be purged while their
-- task history stays.
CREATE TABLE tasks (
    id           uuid        PRIMARY KEY,
    job_id       uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    stage        integer     NOT NULL CHECK (stage >= 0),
    capability   text        NOT NULL,
    status       text        NOT NULL
        CHECK (status IN ('pending', 'assigned', 'running', 'succeeded', 'failed', 'cancelled')),
    item_id      uuid,
    priority     smallint    NOT NULL,
    attempt      integer     NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL,
    agent_id     uuid,
    lease_until  timestamptz,
    next_run_at  timestamptz NOT NULL,
    output       jsonb,
    error        text,
    usage        jsonb,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL DEFAULT 1
) WITH (fillfactor = 80);
CREATE INDEX tasks_job_id ON tasks (job_id);
COMMENT ON TABLE tasks IS 'Tasks (one capability call each); hot, narrow, only immutable columns indexed.';

-- What a stage emits (a requirement in the reference pipeline). (job_id, id)
-- serves the per-job listing in creation order and the per-job counts.
CREATE TABLE items (
    id               uuid        PRIMARY KEY,
    job_id           uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    source_task_id   uuid        REFERENCES tasks (id) ON DELETE SET NULL,
    stage            integer     NOT NULL CHECK (stage >= 0),
    status           text        NOT NULL
        CHECK (status IN ('pending', 'validating', 'integrated', 'rejected', 'failed')),
    data             jsonb       NOT NULL,
    rejection_reason text,
    last_error       text,
    retry_count      integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX items_job_id ON items (job_id, id);
COMMENT ON TABLE items IS 'Items emitted by pipeline stages, validated by the next stage.';

-- Added after `items` exists: tasks and items reference each other.
ALTER TABLE tasks ADD CONSTRAINT tasks_item_id_fkey
    FOREIGN KEY (item_id) REFERENCES items (id) ON DELETE SET NULL;

-- Registered agents. Liveness is judged in memory; last_heartbeat_at is
-- flushed in batches, not per heartbeat.
CREATE TABLE agents (
    id                uuid             PRIMARY KEY,
    name              text             NOT NULL UNIQUE,
    version           text             NOT NULL,
    labels            jsonb            NOT NULL DEFAULT '[]',
    session_state     text             NOT NULL,
    health            text             NOT NULL,
    trust_score       double precision NOT NULL DEFAULT 1.0,
    in_flight         integer          NOT NULL DEFAULT 0,
    last_heartbeat_at timestamptz,
    created_at        timestamptz      NOT NULL,
    updated_at        timestamptz      NOT NULL
);
COMMENT ON TABLE agents IS 'Agents known to the hub, with their last reported state.';

-- What an agent declared it can do, replaced on every `hello`.
CREATE TABLE capabilities (
    agent_id        uuid    NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name            text    NOT NULL,
    version         text    NOT NULL,
    input_schema    jsonb   NOT NULL,
    output_schema   jsonb   NOT NULL,
    pricing         jsonb,
    max_concurrency integer NOT NULL CHECK (max_concurrency >= 1),
    PRIMARY KEY (agent_id, name)
);
COMMENT ON TABLE capabilities IS 'Capabilities declared by agents (JSON schemas, pricing, concurrency).';

-- The durable event log: append-only, global sequence. No foreign key on
-- job_id so appends stay cheap and retention can drop old events on its own.
CREATE TABLE events (
    seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     uuid,
    type       text        NOT NULL,
    payload    jsonb       NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX events_job_id_seq ON events (job_id, seq);
COMMENT ON TABLE events IS 'Append-only event log; seq is the global order streamed to clients.';
