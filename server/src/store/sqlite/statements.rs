//! The statements SQLite spells its own way: the JSON and date aggregates
//! of reports.

use crate::store::driver::Statements;

/// Items counted per element of a JSON string array in `data`; `$1` is the job.
macro_rules! array_counts {
    ($field:literal) => {
        concat!(
            "SELECT e.value AS key, i.status AS status, count(DISTINCT i.id) AS count \
             FROM items i, json_each(i.data, '$.",
            $field,
            "') e WHERE i.job_id = $1 AND json_type(i.data, '$.",
            $field,
            "') = 'array' AND e.type = 'text' GROUP BY 1, 2 ORDER BY 1, 2"
        )
    };
}

/// See [`Statements`]. A day is the first ten characters of a timestamp.
pub(super) static SQL: Statements = Statements {
    tag_counts: array_counts!("tags"),
    citation_counts: array_counts!("citations"),
    priority_counts: "SELECT CASE WHEN json_type(data, '$.priority') = 'text' \
         THEN json_extract(data, '$.priority') END AS key, status, count(*) AS count \
         FROM items WHERE job_id = $1 GROUP BY 1, 2 ORDER BY 1, 2",
    usage_groups: "SELECT t.agent_id AS agent_id, a.name AS agent_name, \
         t.capability AS capability, count(*) AS tasks, \
         COALESCE(sum(json_extract(t.usage, '$.tokens_in')), 0) AS tokens_in, \
         COALESCE(sum(json_extract(t.usage, '$.tokens_out')), 0) AS tokens_out, \
         COALESCE(sum(json_extract(t.usage, '$.requests')), 0) AS requests, \
         c.pricing AS pricing \
         FROM tasks t LEFT JOIN agents a ON a.id = t.agent_id \
         LEFT JOIN capabilities c ON c.agent_id = t.agent_id AND c.name = t.capability \
         WHERE t.job_id = $1 AND t.usage IS NOT NULL AND json_type(t.usage) = 'object' \
         GROUP BY t.agent_id, a.name, t.capability, c.pricing \
         ORDER BY a.name, t.capability",
    daily_event_counts: "SELECT substr(e.created_at, 1, 10), m.value, count(*) \
         FROM events e JOIN json_each($3) m ON m.key = e.type \
         WHERE e.seq > $1 AND e.seq <= $2 GROUP BY 1, 2",
    daily_usage: "SELECT substr(e.created_at, 1, 10), \
         COALESCE(sum(json_extract(t.usage, '$.tokens_in')), 0), \
         COALESCE(sum(json_extract(t.usage, '$.tokens_out')), 0), \
         COALESCE(sum(json_extract(t.usage, '$.requests')), 0) \
         FROM events e JOIN tasks t \
         ON t.id = unhex(replace(json_extract(e.payload, '$.task_id'), '-', '')) \
         WHERE e.seq > $1 AND e.seq <= $2 AND e.type = $3 AND json_type(t.usage) = 'object' \
         GROUP BY 1",
};
