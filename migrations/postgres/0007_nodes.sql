-- Switchyard schema, version 7 (Postgres): the cluster's nodes and leases.
-- * nodes: one row per `switchyard serve` process that ever ran on this
--   database; heartbeat_at is renewed every node_timeout / 5, and a node
--   whose heartbeat is older than node_timeout is dead for the others.
-- * leases: named roles held by one node at a time until expires_at (the
--   monitor runs on the holder of 'monitor').
CREATE TABLE nodes (
    id           uuid        PRIMARY KEY,
    name         text        NOT NULL,
    url          text        NOT NULL,
    version      text        NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    stopped_at   timestamptz
);
COMMENT ON TABLE nodes IS 'Hub processes sharing this database, with their liveness.';

CREATE TABLE leases (
    name       text        PRIMARY KEY,
    holder     uuid        NOT NULL,
    expires_at timestamptz NOT NULL
);
COMMENT ON TABLE leases IS 'Roles held by one node at a time (e.g. the monitor).';
