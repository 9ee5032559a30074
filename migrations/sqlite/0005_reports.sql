-- Switchyard schema, version 5 (SQLite): monitoring, reports and re-runs.
-- Same meaning as migrations/postgres/0005_reports.sql:
-- * jobs.rerun_of links a re-run to the job it repeats (written once);
-- * jobs_active indexes the unfinished jobs (finished_at IS NULL is exactly
--   "waiting, queued or running") for the monitor's sweep;
-- * daily_stats / stats_rollup: per-day counters rolled up from the event log.

ALTER TABLE jobs ADD COLUMN rerun_of BLOB REFERENCES jobs (id) ON DELETE SET NULL;
CREATE INDEX jobs_rerun_of ON jobs (rerun_of) WHERE rerun_of IS NOT NULL;

CREATE INDEX jobs_active ON jobs (created_at) WHERE finished_at IS NULL;

CREATE TABLE daily_stats (
    day    TEXT    NOT NULL,
    metric TEXT    NOT NULL,
    value  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, metric)
) STRICT, WITHOUT ROWID;

CREATE TABLE stats_rollup (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL CHECK (last_seq >= 0)
) STRICT;
INSERT INTO stats_rollup (id, last_seq) VALUES (1, 0);

-- "Is there an unfinished task for this item" (the monitor's orphaned items);
-- tasks.item_id never changes after insert.
CREATE INDEX tasks_item_id ON tasks (item_id) WHERE item_id IS NOT NULL;
