//! Agents: registration, session states, batched snapshots, reads.

use sqlx::types::Json;
use uuid::Uuid;

use super::items::append_events;
use crate::domain::{
    AgentHealth, AgentRecord, AgentRegistration, AgentSessionState, AgentSnapshot, EventType,
};
use crate::store::StoreError;
use crate::store::driver::{Driver, Ts, query};
use crate::store::shared::{
    self, AgentRow, CapabilityRow, INSERT_CHUNK, agent_columns, capability_columns,
};

/// See [`crate::store::Store::register_agent`].
pub(super) async fn register_agent<D: Driver>(
    pool: &D::Pool,
    reg: AgentRegistration,
) -> Result<AgentRecord, StoreError> {
    let at = shared::now();
    let capabilities = shared::normalized_capabilities(&reg.capabilities);
    let mut tx = D::begin(pool).await?;
    // A known name keeps its id, health, trust and history; the row lock
    // taken here (Postgres) serialises concurrent registrations of one name.
    let (id,): (Uuid,) = query::<D>(
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
    .bind(Ts(at))
    .fetch_one(&mut *tx)
    .await?;

    query::<D>("DELETE FROM capabilities WHERE agent_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for chunk in capabilities.chunks(INSERT_CHUNK) {
        let mut qb = query::<D>(
            "INSERT INTO capabilities (agent_id, name, version, input_schema, output_schema, \
             pricing, max_concurrency) ",
        );
        qb.push_values(chunk, |row, c| {
            row.bind(id)
                .bind(c.name.as_str())
                .bind(c.version.clone())
                .bind(c.input_schema.clone())
                .bind(c.output_schema.clone())
                .bind(Json(c.pricing.clone()))
                .bind(i32::try_from(c.max_concurrency).unwrap_or(i32::MAX));
        });
        qb.execute(&mut *tx).await?;
    }

    let record = fetch_agent::<D>(&mut tx, id)
        .await?
        .ok_or(StoreError::NotFound("agent"))?;
    let events = [shared::agent_event(
        EventType::AgentConnected,
        id,
        &record.name,
    )];
    append_events::<D>(&mut tx, &events, at).await?;
    D::commit(tx).await?;
    Ok(record)
}

/// See [`crate::store::Store::set_agent_session_state`].
pub(super) async fn set_agent_session_state<D: Driver>(
    pool: &D::Pool,
    agent_id: Uuid,
    state: AgentSessionState,
) -> Result<(), StoreError> {
    let at = shared::now();
    let mut tx = D::begin(pool).await?;
    let name: Option<(String,)> = query::<D>(
        "UPDATE agents SET session_state = $2, updated_at = $3 WHERE id = $1 RETURNING name",
    )
    .bind(agent_id)
    .bind(state.as_str())
    .bind(Ts(at))
    .fetch_optional(&mut *tx)
    .await?;
    let (name,) = name.ok_or(StoreError::NotFound("agent"))?;
    let events = [shared::agent_event(
        shared::session_event_type(state),
        agent_id,
        &name,
    )];
    append_events::<D>(&mut tx, &events, at).await?;
    D::commit(tx).await?;
    Ok(())
}

/// See [`crate::store::Store::save_agent_snapshots`]: one transaction, the
/// latest snapshot per agent (see [`Driver::save_agent_snapshots`]).
pub(super) async fn save_agent_snapshots<D: Driver>(
    pool: &D::Pool,
    snapshots: &[AgentSnapshot],
) -> Result<(), StoreError> {
    let latest = shared::latest_snapshots(snapshots);
    if latest.is_empty() {
        return Ok(());
    }
    let mut tx = D::begin(pool).await?;
    D::save_agent_snapshots(&mut tx, &latest, shared::now()).await?;
    D::commit(tx).await?;
    Ok(())
}

/// See [`crate::store::Store::list_agents`].
pub(super) async fn list_agents<D: Driver>(pool: &D::Pool) -> Result<Vec<AgentRecord>, StoreError> {
    // One read transaction: agents and capabilities from the same snapshot.
    let mut conn = D::begin_read(pool).await?;
    let agents: Vec<AgentRow> = query::<D>(concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents ORDER BY name"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let capabilities: Vec<CapabilityRow> = query::<D>(concat!(
        "SELECT ",
        capability_columns!(),
        " FROM capabilities ORDER BY agent_id, name"
    ))
    .fetch_all(&mut *conn)
    .await?;
    shared::into_agents(agents, capabilities)
}

/// One agent with its capabilities, or `None`.
pub(super) async fn fetch_agent<D: Driver>(
    conn: &mut D::Conn,
    id: Uuid,
) -> Result<Option<AgentRecord>, StoreError> {
    let agents: Vec<AgentRow> = query::<D>(concat!(
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
    let capabilities: Vec<CapabilityRow> = query::<D>(concat!(
        "SELECT ",
        capability_columns!(),
        " FROM capabilities WHERE agent_id = $1 ORDER BY name"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(shared::into_agents(agents, capabilities)?.pop())
}
