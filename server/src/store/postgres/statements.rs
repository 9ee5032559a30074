//! The statements Postgres spells its own way: the JSON and date
//! aggregates of reports.

use crate::store::driver::Statements;

/// Items counted per element of a JSON string array in `data`; `$1` is the job.
macro_rules! array_counts {
    ($field:literal) => {
        concat!(
            "SELECT e #>> '{}' AS key, i.status, count(DISTINCT i.id) AS count FROM items i \
             CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(i.data->'",
            $field,
            "') = 'array' THEN i.data->'",
            $field,
            "' ELSE '[]'::jsonb END) e \
             WHERE i.job_id = $1 AND jsonb_typeof(e) = 'string' \
             GROUP BY 1, 2 ORDER BY 1, 2"
        )
    };
}

/// See [`Statements`].
pub(super) static SQL: Statements = Statements {
    tag_counts: array_counts!("tags"),
    citation_counts: array_counts!("citations"),
    priority_counts: "SELECT CASE WHEN jsonb_typeof(data->'priority') = 'string' \
         THEN data->>'priority' END AS key, status, count(*) AS count \
         FROM items WHERE job_id = $1 GROUP BY 1, 2 ORDER BY 1, 2",
    usage_groups: "SELECT t.agent_id, a.name AS agent_name, t.capability, count(*) AS tasks, \
         COALESCE(sum((t.usage->>'tokens_in')::bigint), 0)::bigint AS tokens_in, \
         COALESCE(sum((t.usage->>'tokens_out')::bigint), 0)::bigint AS tokens_out, \
         COALESCE(sum((t.usage->>'requests')::bigint), 0)::bigint AS requests, \
         c.pricing::text AS pricing \
         FROM tasks t LEFT JOIN agents a ON a.id = t.agent_id \
         LEFT JOIN capabilities c ON c.agent_id = t.agent_id AND c.name = t.capability \
         WHERE t.job_id = $1 AND t.usage IS NOT NULL AND jsonb_typeof(t.usage) = 'object' \
         GROUP BY t.agent_id, a.name, t.capability, c.pricing::text \
         ORDER BY a.name, t.capability",
    daily_event_counts: "SELECT (e.created_at AT TIME ZONE 'UTC')::date, m.metric, count(*) \
         FROM events e JOIN jsonb_each_text($3::jsonb) AS m(type, metric) ON m.type = e.type \
         WHERE e.seq > $1 AND e.seq <= $2 GROUP BY 1, 2",
    daily_usage: "SELECT (e.created_at AT TIME ZONE 'UTC')::date, \
         COALESCE(sum((t.usage->>'tokens_in')::bigint), 0)::bigint, \
         COALESCE(sum((t.usage->>'tokens_out')::bigint), 0)::bigint, \
         COALESCE(sum((t.usage->>'requests')::bigint), 0)::bigint \
         FROM events e JOIN tasks t ON t.id = (e.payload->>'task_id')::uuid \
         WHERE e.seq > $1 AND e.seq <= $2 AND e.type = $3 AND jsonb_typeof(t.usage) = 'object' \
         GROUP BY 1",
};
