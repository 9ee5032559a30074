//! Agents on SQLite: registration, session states, batched snapshots, reads.

use sqlx::types::Json;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::items::append_events;
use super::{SqliteStore, ts};
use crate::domain::{
    AgentHealth, AgentRecord, AgentRegistration, AgentSessionState, AgentSnapshot, EventType,
};
use crate::store::StoreError;
use crate::store::shared::{
    self, AgentRow, CapabilityRow, INSERT_CHUNK, agent_columns, capability_columns,
};

/// See [`crate::store::Store::register_agent`].
pub(super) async fn register_agent(
    store: &SqliteStore,
    reg: AgentRegistration,
) -> Result<AgentRecord, StoreError> {
    let at = shared::now();
    let capabilities = shared::normalized_capabilities(&reg.capabilities);
    let mut tx = store.begin().await?;
    // A known name keeps its id, health, trust and history.
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO agents (id, name, version, labels, session_state, health, trust_score, \
         in_flight, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1.0, 0, $7, $7) \
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, labels = excluded.labels, \
         session_state = excluded.session_state, updated_at = excluded.updated_at \
         RETURNING id",
    )
    .bind(reg.new_id)
    .bind(&reg.name)
    .bind(&reg.version)
    .bind(Json(&reg.labels))
    .bind(AgentSessionState::Connected.as_str())
    .bind(AgentHealth::Active.as_str())
    .bind(ts(at))
    .fetch_one(&mut *tx)
    .await?;

    sqlx::query("DELETE FROM capabilities WHERE agent_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for chunk in capabilities.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
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
    store: &SqliteStore,
    agent_id: Uuid,
    state: AgentSessionState,
) -> Result<(), StoreError> {
    let at = shared::now();
    let mut tx = store.begin().await?;
    let name: Option<String> = sqlx::query_scalar(
        "UPDATE agents SET session_state = $2, updated_at = $3 WHERE id = $1 RETURNING name",
    )
    .bind(agent_id)
    .bind(state.as_str())
    .bind(ts(at))
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

/// See [`crate::store::Store::save_agent_snapshots`]: one transaction, one
/// (prepared, cached) UPDATE per agent.
pub(super) async fn save_agent_snapshots(
    store: &SqliteStore,
    snapshots: &[AgentSnapshot],
) -> Result<(), StoreError> {
    let latest = shared::latest_snapshots(snapshots);
    if latest.is_empty() {
        return Ok(());
    }
    let at = ts(shared::now());
    let mut tx = store.begin().await?;
    for s in latest {
        sqlx::query(
            "UPDATE agents SET last_heartbeat_at = COALESCE($2, last_heartbeat_at), health = $3, \
             trust_score = $4, in_flight = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(s.id)
        .bind(s.last_heartbeat_at.map(ts))
        .bind(s.health.as_str())
        .bind(s.trust_score)
        .bind(s.in_flight)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// See [`crate::store::Store::list_agents`].
pub(super) async fn list_agents(pool: &SqlitePool) -> Result<Vec<AgentRecord>, StoreError> {
    // One read transaction: agents and capabilities from the same snapshot.
    let mut tx = pool.begin().await?;
    let agents: Vec<AgentRow> = sqlx::query_as(concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents ORDER BY name"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let capabilities: Vec<CapabilityRow> = sqlx::query_as(concat!(
        "SELECT ",
        capability_columns!(),
        " FROM capabilities ORDER BY agent_id, name"
    ))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    shared::into_agents(agents, capabilities)
}

/// One agent with its capabilities, or `None`.
pub(super) async fn fetch_agent(
    conn: &mut SqliteConnection,
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
