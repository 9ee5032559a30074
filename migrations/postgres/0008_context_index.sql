-- Switchyard schema, version 8 (Postgres): jobs filtered by their context.
-- `GET /v1/jobs?context.customer=acme` matches with JSON containment
-- (`context @> '{"customer": "acme"}'`), which this GIN index serves for any
-- key path. jsonb_path_ops indexes values by path hash: smaller and faster
-- than the default jsonb_ops for `@>`, which is the only operator used.
-- (Built inside the migration's transaction, so it holds writes to `jobs`
-- while it builds: on a large table, run the hub's migration at a quiet time.)
CREATE INDEX jobs_context_idx ON jobs USING GIN (context jsonb_path_ops);
