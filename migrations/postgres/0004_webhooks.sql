-- Switchyard schema, version 4 (Postgres): webhooks.
--
-- * webhooks: one row per subscription. event_types is a JSON array of event
--   type names (or "*"). secret / previous_secret are `whsec_` + base64; the
--   previous secret keeps signing until previous_secret_expires_at (rotation
--   overlap). since_seq: only events after it are delivered. failing_since:
--   start of the current run of failed attempts (NULL after a success).
-- * webhook_cursor: the one row saying up to which event the tailer has
--   matched subscriptions. It starts at the newest event, so an existing log
--   is not rescanned when this migration runs.
-- * webhook_deliveries: the delivery queue and its history. One row per
--   event, subscription and replay generation; the UNIQUE constraint makes
--   enqueueing idempotent. status holds exactly the `as_str()` forms of
--   DeliveryStatus (server/src/webhooks/model.rs). body is the exact JSON text
--   that is signed and sent (text, not jsonb, so its bytes never change).
--   The only index on a changing column is the partial due-index: it covers
--   pending rows only, so the deliverer finds due work without scanning the
--   history; it costs non-HOT updates on a table written a few times per row,
--   far from the task table's churn.
-- * webhook_attempts: one row per attempt (append-only).

CREATE TABLE webhooks (
    id                         uuid        PRIMARY KEY,
    url                        text        NOT NULL,
    event_types                jsonb       NOT NULL CHECK (jsonb_typeof(event_types) = 'array'),
    label                      text,
    description                text,
    enabled                    boolean     NOT NULL,
    disabled_reason            text,
    secret                     text        NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    since_seq                  bigint      NOT NULL,
    replay_generation          integer     NOT NULL DEFAULT 0,
    failing_since              timestamptz,
    created_by                 text        NOT NULL,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL
);
COMMENT ON TABLE webhooks IS 'Webhook subscriptions: target, filters, signing secrets, state.';

CREATE TABLE webhook_cursor (
    id  smallint PRIMARY KEY CHECK (id = 1),
    seq bigint   NOT NULL
);
INSERT INTO webhook_cursor (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM events;
COMMENT ON TABLE webhook_cursor IS 'Up to which event sequence number the webhook tailer has matched subscriptions.';

CREATE TABLE webhook_deliveries (
    id              uuid        PRIMARY KEY,
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_seq       bigint      NOT NULL,
    generation      integer     NOT NULL CHECK (generation >= 0),
    event_type      text        NOT NULL,
    job_id          uuid,
    request_id      text,
    body            text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (webhook_id, event_seq, generation)
) WITH (fillfactor = 80);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_listing ON webhook_deliveries (webhook_id, id);
COMMENT ON TABLE webhook_deliveries IS 'Webhook delivery queue and history: one row per event, subscription and replay.';

CREATE TABLE webhook_attempts (
    delivery_id uuid        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL CHECK (attempt >= 1),
    started_at  timestamptz NOT NULL,
    status_code integer,
    latency_ms  bigint      NOT NULL,
    error       text,
    PRIMARY KEY (delivery_id, attempt)
);
COMMENT ON TABLE webhook_attempts IS 'Every webhook delivery attempt: status code, latency, error.';
