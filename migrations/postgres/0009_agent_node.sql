-- Switchyard schema, version 9 (Postgres): the node an agent's session is on.
-- Set by every registration (hello). When that node dies or stops, the
-- leader's monitor takes back the tasks the agent still holds through it
-- once the agent has had `reconnect_grace` to move to another node (and,
-- there, resume them: its registration moves node_id). No foreign key:
-- rows of long-dead nodes are forgotten.
ALTER TABLE agents ADD COLUMN node_id uuid;
