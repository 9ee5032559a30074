-- Switchyard schema, version 9 (SQLite): the node an agent's session is on.
-- SQLite runs one node, so this is always that node; the column keeps both
-- stores' schemas and statements alike (see the Postgres migration).
ALTER TABLE agents ADD COLUMN node_id BLOB;
