//! Agents: registration, session states, batched snapshots, reads.

use std::collections::{HashMap, HashSet};

use sqlx::types::Json;
use uuid::Uuid;

use super::items::append_events;
use crate::domain::{
    AgentHealth, AgentRecord, AgentRegistration, AgentSessionState, AgentSnapshot, EventType,
    NewEvent,
};
use crate::store::StoreError;
use crate::store::driver::{Driver, Ts, Uuids, query};
use crate::store::shared::{
    self, AgentRow, CapabilityRow, INSERT_CHUNK, agent_columns, capability_columns,
};

/// Registers `regs` (see [`crate::store::Store::register_agent`]) in the
/// caller's transaction, set by set: one upsert per round of distinct
/// names, one capability delete and insert, one read of the records. A name
/// given twice goes to a later round (an upsert cannot change one row
/// twice); its callers all get the record as the last one left it. Returns
/// each registration's record and its `agent.connected` event, in order.
pub(super) async fn register_agents_in<D: Driver>(
    conn: &mut D::Conn,
    regs: &[&AgentRegistration],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(AgentRecord, NewEvent)>, StoreError> {
    let mut id_of: HashMap<&str, Uuid> = HashMap::with_capacity(regs.len());
    let mut pending: Vec<&AgentRegistration> = regs.to_vec();
    while !pending.is_empty() {
        let mut names = HashSet::with_capacity(pending.len());
        let (round, later): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|r| names.insert(r.name.as_str()));
        pending = later;
        for chunk in round.chunks(INSERT_CHUNK) {
            // A known name keeps its id, health, trust and history; the row
            // lock the upsert takes (Postgres) serialises concurrent
            // registrations of one name.
            let mut qb = query::<D>(
                "INSERT INTO agents (id, name, version, labels, session_state, health, trust_score, \
                 in_flight, created_at, updated_at, node_id) ",
            );
            qb.push_values(chunk, |row, r| {
                row.bind(r.new_id)
                    .bind(r.name.as_str())
                    .bind(r.version.clone())
                    .bind(Json(r.labels.clone()))
                    .bind(AgentSessionState::Connected.as_str())
                    .bind(AgentHealth::Active.as_str())
                    .bind(1.0_f64)
                    .bind(0_i32)
                    .bind(Ts(at))
                    .bind(Ts(at))
                    .bind(r.node_id);
            });
            qb.push(
                " ON CONFLICT (name) DO UPDATE SET version = excluded.version, labels = excluded.labels, \
                 session_state = excluded.session_state, updated_at = excluded.updated_at, \
                 node_id = excluded.node_id \
                 RETURNING id, name",
            );
            let ids: Vec<(Uuid, String)> = qb.fetch_all(&mut *conn).await?;
            for (id, name) in ids {
                if let Some(r) = chunk.iter().find(|r| r.name == name) {
                    id_of.insert(r.name.as_str(), id);
                }
            }
        }
        let round_ids: Vec<Uuid> = round
            .iter()
            .filter_map(|r| id_of.get(r.name.as_str()).copied())
            .collect();
        query::<D>(format!(
            "DELETE FROM capabilities WHERE agent_id {}",
            D::in_uuids(1)
        ))
        .bind(Uuids(round_ids))
        .execute(&mut *conn)
        .await?;
        let capabilities: Vec<(Uuid, crate::domain::CapabilityRecord)> = round
            .iter()
            .filter_map(|r| Some((*id_of.get(r.name.as_str())?, r)))
            .flat_map(|(id, r)| {
                shared::normalized_capabilities(&r.capabilities)
                    .into_iter()
                    .map(move |c| (id, c))
            })
            .collect();
        for chunk in capabilities.chunks(INSERT_CHUNK) {
            let mut qb = query::<D>(
                "INSERT INTO capabilities (agent_id, name, version, input_schema, output_schema, \
                 pricing, max_concurrency) ",
            );
            qb.push_values(chunk, |row, (id, c)| {
                row.bind(*id)
                    .bind(c.name.as_str())
                    .bind(c.version.clone())
                    .bind(c.input_schema.clone())
                    .bind(c.output_schema.clone())
                    .bind(Json(c.pricing.clone()))
                    .bind(i32::try_from(c.max_concurrency).unwrap_or(i32::MAX));
            });
            qb.execute(&mut *conn).await?;
        }
    }

    let ids: Vec<Uuid> = id_of.values().copied().collect();
    let agents: Vec<AgentRow> = query::<D>(format!(
        concat!("SELECT ", agent_columns!(), " FROM agents WHERE id {}"),
        D::in_uuids(1)
    ))
    .bind(Uuids(ids.clone()))
    .fetch_all(&mut *conn)
    .await?;
    let capabilities: Vec<CapabilityRow> = query::<D>(format!(
        concat!(
            "SELECT ",
            capability_columns!(),
            " FROM capabilities WHERE agent_id {} ORDER BY agent_id, name"
        ),
        D::in_uuids(1)
    ))
    .bind(Uuids(ids))
    .fetch_all(&mut *conn)
    .await?;
    let records: HashMap<Uuid, AgentRecord> = shared::into_agents(agents, capabilities)?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    regs.iter()
        .map(|r| {
            let record = id_of
                .get(r.name.as_str())
                .and_then(|id| records.get(id))
                .cloned()
                .ok_or(StoreError::NotFound("agent"))?;
            let event = shared::agent_event(EventType::AgentConnected, record.id, &record.name);
            Ok((record, event))
        })
        .collect()
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
