-- Switchyard schema, version 5 (Postgres): monitoring, reports and re-runs.
--
-- * jobs.rerun_of links a re-run to the job it repeats (`POST
--   /v1/jobs/{id}/rerun`). It is written once, at insert, so its index never
--   costs a HOT update; the index serves the foreign key's ON DELETE and
--   "which jobs re-ran this one".
-- * jobs_active: the monitor sweeps the unfinished jobs every
--   `monitor_interval` (expired leases, orphaned items, idle and overdue
--   jobs). Without an index that is a scan of every job ever run. The index
--   is partial on `finished_at IS NULL`, NOT on `status`: a job's status
--   changes several times (queued -> running -> ...) and each of those
--   updates can stay HOT because neither the key (created_at, immutable) nor
--   the predicate column changes; only the one update that finishes a job
--   (finished_at NULL -> time) leaves the index, a non-HOT update once per job.
--   Every terminal status sets finished_at and no other status has it, so
--   `finished_at IS NULL` is exactly "waiting, queued or running".
-- * daily_stats holds per-day counters (jobs created/completed/failed/
--   cancelled, items integrated/rejected/failed, tokens), rolled up from the
--   event log by the monitor (stats_rollup.last_seq is how far). Reading a
--   year of statistics is then 365 x 10 small rows instead of a scan of every
--   item and task, and no index on the hot tables' changing columns
--   (items.updated_at, tasks.updated_at) is needed.

ALTER TABLE jobs ADD COLUMN rerun_of uuid REFERENCES jobs (id) ON DELETE SET NULL;
CREATE INDEX jobs_rerun_of ON jobs (rerun_of) WHERE rerun_of IS NOT NULL;

CREATE INDEX jobs_active ON jobs (created_at) WHERE finished_at IS NULL;

CREATE TABLE daily_stats (
    day    date   NOT NULL,
    metric text   NOT NULL,
    value  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, metric)
);
COMMENT ON TABLE daily_stats IS 'Per-day counters rolled up from the event log (GET /v1/stats/daily).';

CREATE TABLE stats_rollup (
    id       smallint PRIMARY KEY CHECK (id = 1),
    last_seq bigint   NOT NULL CHECK (last_seq >= 0)
);
INSERT INTO stats_rollup (id, last_seq) VALUES (1, 0);
COMMENT ON TABLE stats_rollup IS 'How far (event seq) daily_stats has been rolled up; one row.';

-- The monitor looks for items left `validating` with no live task working on
-- them: "is there an unfinished task for this item". tasks.item_id is written
-- once, at insert, so this index never turns a task update into a non-HOT
-- one; it costs one index entry per inserted task (and also serves the
-- tasks_item_id_fkey's ON DELETE SET NULL when items are deleted).
CREATE INDEX tasks_item_id ON tasks (item_id) WHERE item_id IS NOT NULL;
