//! Agents on Postgres: registration, session states, batched snapshots, reads.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::items::append_events;
use crate::domain::{
    AgentHealth, AgentRecord, AgentRegistration, AgentSessionState, AgentSnapshot, EventType,
};
use crate::store::StoreError;
use crate::store::shared::{
    self, AgentRow, CapabilityRow, INSERT_CHUNK, agent_columns, capability_columns,
};

/// See [`crate::store::Store::register_agent`].
pub(super) async fn register_agent(
    pool: &PgPool,
    reg: AgentRegistration,
) -> Result<AgentRecord, StoreError> {
    let at = shared::now();
    let capabilities = shared::normalized_capabilities(&reg.capabilities);
    let mut tx = pool.begin().await?;
    // A known name keeps its id, health, trust and history; the row lock
    // taken here serialises concurrent registrations of one name.
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO agents (id, name, version, labels, session_state, health, trust_score, \
         in_flight, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1.0, 0, $7, $7) \
         ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, labels = EXCLUDED.labels, \
         session_state = EXCLUDED.session_state, updated_at = EXCLUDED.updated_at \
         RETURNING id",
    )
    .bind(reg.new_id)
    .bind(&reg.name)
    .bind(&reg.version)
    .bind(Json(&reg.labels))
    .bind(AgentSessionState::Connected.as_str())
    .bind(AgentHealth::Active.as_str())
    .bind(at)
    .fetch_one(&mut *tx)
    .await?;

    sqlx::query("DELETE FROM capabilities WHERE agent_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for chunk in capabilities.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO capabilities (agent_id, name, version, input_schema, output_schema, \
             pricing, max_concurrency) ",
        );
        qb.push_values(chunk, |mut row, c| {
            row.push_bind(id)
                .push_bind(c.name.clone())
                .push_bind(c.version.clone())
                .push_bind(c.input_schema.clone())
                .push_bind(c.output_schema.clone())
                .push_bind(Json(c.pricing.clone()))
                .push_bind(i32::try_from(c.max_concurrency).unwrap_or(i32::MAX));
        });
        qb.build().execute(&mut *tx).await?;
    }

    let record = fetch_agent(&mut tx, id)
        .await?
        .ok_or(StoreError::NotFound("agent"))?;
    let events = [shared::agent_event(
        EventType::AgentConnected,
        id,
        &record.name,
    )];
    append_events(&mut tx, &events, at).await?;
    tx.commit().await?;
    Ok(record)
}

/// See [`crate::store::Store::set_agent_session_state`].
pub(super) async fn set_agent_session_state(
    pool: &PgPool,
    agent_id: Uuid,
    state: AgentSessionState,
) -> Result<(), StoreError> {
    let at = shared::now();
    let mut tx = pool.begin().await?;
    let name: Option<String> = sqlx::query_scalar(
        "UPDATE agents SET session_state = $2, updated_at = $3 WHERE id = $1 RETURNING name",
    )
    .bind(agent_id)
    .bind(state.as_str())
    .bind(at)
    .fetch_optional(&mut *tx)
    .await?;
    let name = name.ok_or(StoreError::NotFound("agent"))?;
    let events = [shared::agent_event(
        shared::session_event_type(state),
        agent_id,
        &name,
    )];
    append_events(&mut tx, &events, at).await?;
    tx.commit().await?;
    Ok(())
}

/// See [`crate::store::Store::save_agent_snapshots`]: one bulk UPDATE from
/// arrays, after locking the rows in id order (two flushes never deadlock).
pub(super) async fn save_agent_snapshots(
    pool: &PgPool,
    snapshots: &[AgentSnapshot],
) -> Result<(), StoreError> {
    let latest = shared::latest_snapshots(snapshots);
    if latest.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = latest.iter().map(|s| s.id).collect();
    let heartbeats: Vec<Option<DateTime<Utc>>> =
        latest.iter().map(|s| s.last_heartbeat_at).collect();
    let health: Vec<&str> = latest.iter().map(|s| s.health.as_str()).collect();
    let trust: Vec<f64> = latest.iter().map(|s| s.trust_score).collect();
    let in_flight: Vec<i32> = latest.iter().map(|s| s.in_flight).collect();

    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM agents WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE agents a SET last_heartbeat_at = COALESCE(s.last_heartbeat_at, a.last_heartbeat_at), \
         health = s.health, trust_score = s.trust_score, in_flight = s.in_flight, updated_at = $6 \
         FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::float8[], $5::int4[]) \
         AS s(id, last_heartbeat_at, health, trust_score, in_flight) WHERE a.id = s.id",
    )
    .bind(&ids)
    .bind(&heartbeats)
    .bind(&health)
    .bind(&trust)
    .bind(&in_flight)
    .bind(shared::now())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// See [`crate::store::Store::list_agents`].
pub(super) async fn list_agents(pool: &PgPool) -> Result<Vec<AgentRecord>, StoreError> {
    let mut conn = pool.acquire().await?;
    let agents: Vec<AgentRow> = sqlx::query_as(concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents ORDER BY name"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let capabilities: Vec<CapabilityRow> = sqlx::query_as(concat!(
        "SELECT ",
        capability_columns!(),
        " FROM capabilities ORDER BY agent_id, name"
    ))
    .fetch_all(&mut *conn)
    .await?;
    shared::into_agents(agents, capabilities)
}

/// One agent with its capabilities, or `None`.
pub(super) async fn fetch_agent(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<AgentRecord>, StoreError> {
    let agents: Vec<AgentRow> = sqlx::query_as(concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents WHERE id = $1"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    if agents.is_empty() {
        return Ok(None);
    }
    let capabilities: Vec<CapabilityRow> = sqlx::query_as(concat!(
        "SELECT ",
        capability_columns!(),
        " FROM capabilities WHERE agent_id = $1 ORDER BY name"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(shared::into_agents(agents, capabilities)?.pop())
}
