-- Switchyard schema, version 8 (SQLite): jobs filtered by their context.
-- Postgres gets a GIN index on `jobs.context` in this version. SQLite has no
-- index that serves a filter on any key path, so a context filter reads the
-- JSON text at its path per job scanned (`context -> '$."customer"'`). This
-- version exists so both stores number their schemas alike.
SELECT 1;
