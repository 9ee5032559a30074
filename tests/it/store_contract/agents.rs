//! Agents: registration by name, session states, batched snapshots.

use std::collections::BTreeMap;

use chrono::{Duration, SubsecRound, Utc};
use serde_json::json;
use switchyard::domain::{
    AgentHealth, AgentRegistration, AgentSessionState, AgentSnapshot, CapabilityRecord,
};
use switchyard::store::StoreError;
use switchyard_agent::protocol::Pricing;
use uuid::Uuid;

use super::TestDb;

/// A capability with a recognisable schema and price.
pub fn capability(name: &str, max_concurrency: u32) -> CapabilityRecord {
    CapabilityRecord {
        name: name.into(),
        version: "1.0".into(),
        input_schema: json!({"type": "object", "title": name}),
        output_schema: json!({"type": "object"}),
        pricing: Pricing {
            currency: "USD".into(),
            per_1k_input_tokens: 0.5,
            per_1k_output_tokens: 1.5,
            per_request: 0.0,
        },
        max_concurrency,
    }
}

/// A registration of `name` with the given capabilities.
pub fn registration(name: &str, capabilities: Vec<CapabilityRecord>) -> AgentRegistration {
    AgentRegistration {
        new_id: Uuid::now_v7(),
        name: name.into(),
        version: "0.1.0".into(),
        labels: BTreeMap::from([("zone".to_owned(), "eu".to_owned())]),
        capabilities,
        node_id: None,
    }
}

/// Agent events (they belong to no job) as `(type, agent_id, name)`.
async fn agent_events(t: &TestDb) -> Vec<(String, Uuid, String)> {
    let events = t.store.list_events(None, 0, 1000).await.expect("events");
    events
        .into_iter()
        .filter(|e| e.kind.starts_with("agent."))
        .map(|e| {
            assert_eq!(e.job_id, None, "agent events belong to no job");
            let id = serde_json::from_value(e.payload["agent_id"].clone()).expect("agent_id");
            let name = e.payload["name"].as_str().expect("name").to_owned();
            (e.kind, id, name)
        })
        .collect()
}

pub async fn register_keeps_the_id_by_name_and_replaces_capabilities(t: TestDb) {
    let s = &t.store;
    let first = registration(
        "extractor",
        vec![
            capability("requirements.validate", 2),
            capability("requirements.extract", 4),
        ],
    );
    let id = first.new_id;
    let a = s.register_agent(first).await.expect("register");
    assert_eq!(a.id, id);
    assert_eq!(
        (a.name.as_str(), a.version.as_str()),
        ("extractor", "0.1.0")
    );
    assert_eq!(a.labels["zone"], "eu");
    assert_eq!(
        (
            a.session_state,
            a.health,
            a.trust_score,
            a.last_heartbeat_at
        ),
        (AgentSessionState::Connected, AgentHealth::Active, 1.0, None)
    );
    assert_eq!(
        a.capabilities,
        vec![
            capability("requirements.extract", 4),
            capability("requirements.validate", 2)
        ],
        "sorted by name, everything kept"
    );
    assert_eq!(s.get_agent(id).await.expect("get"), Some(a.clone()));

    // Going offline, then the same name registers again with a new id.
    s.set_agent_session_state(id, AgentSessionState::Offline)
        .await
        .expect("offline");
    let mut again = registration("extractor", vec![capability("summarize", 1)]);
    again.version = "0.2.0".into();
    again.labels = BTreeMap::from([("gpu".to_owned(), "a100".to_owned())]);
    let b = s.register_agent(again).await.expect("register again");
    assert_eq!(b.id, id, "a known name keeps its id");
    assert_eq!(b.created_at, a.created_at);
    assert!(b.updated_at >= a.updated_at);
    assert_eq!(b.version, "0.2.0");
    assert_eq!(
        b.labels,
        BTreeMap::from([("gpu".to_owned(), "a100".to_owned())])
    );
    assert_eq!(b.session_state, AgentSessionState::Connected);
    assert_eq!(b.capabilities, vec![capability("summarize", 1)]);

    // Repeated names are stored once (the first wins); concurrency has a floor of 1.
    let c = s
        .register_agent(registration(
            "validator",
            vec![capability("x", 0), capability("x", 7)],
        ))
        .await
        .expect("register validator");
    assert_eq!(c.capabilities, vec![capability("x", 1)]);

    let all = s.list_agents().await.expect("list");
    assert_eq!(
        all,
        vec![b.clone(), c.clone()],
        "by name, with capabilities"
    );

    s.set_agent_session_state(c.id, AgentSessionState::Draining)
        .await
        .expect("drain");
    s.set_agent_session_state(c.id, AgentSessionState::Disconnected)
        .await
        .expect("disconnect");
    let c_now = s.get_agent(c.id).await.expect("get").expect("found");
    assert_eq!(c_now.session_state, AgentSessionState::Disconnected);
    assert_eq!(
        agent_events(&t).await,
        [
            ("agent.connected".to_owned(), id, "extractor".to_owned()),
            ("agent.offline".to_owned(), id, "extractor".to_owned()),
            ("agent.connected".to_owned(), id, "extractor".to_owned()),
            ("agent.connected".to_owned(), c.id, "validator".to_owned()),
            ("agent.draining".to_owned(), c.id, "validator".to_owned()),
            (
                "agent.disconnected".to_owned(),
                c.id,
                "validator".to_owned()
            ),
        ]
    );

    let missing = Uuid::now_v7();
    assert!(matches!(
        s.set_agent_session_state(missing, AgentSessionState::Offline)
            .await,
        Err(StoreError::NotFound("agent"))
    ));
    assert_eq!(s.get_agent(missing).await.expect("get"), None);
}

pub async fn snapshots_persist_without_events(mut t: TestDb) {
    let a = t
        .store
        .register_agent(registration("a", vec![capability("x", 1)]))
        .await
        .expect("register a");
    let b = t
        .store
        .register_agent(registration("b", vec![]))
        .await
        .expect("register b");
    let events_before = t.store.list_events(None, 0, 1000).await.expect("events");
    let seen = Utc::now().trunc_subsecs(6);
    let snapshot = |id, at, health, trust, in_flight| AgentSnapshot {
        id,
        last_heartbeat_at: at,
        health,
        trust_score: trust,
        in_flight,
    };
    t.store
        .save_agent_snapshots(&[
            snapshot(a.id, Some(seen), AgentHealth::Active, 0.5, 3),
            snapshot(b.id, Some(seen), AgentHealth::Active, 0.9, 1),
            snapshot(Uuid::now_v7(), Some(seen), AgentHealth::Active, 1.0, 0),
            // The last snapshot of an agent in a batch wins.
            snapshot(
                a.id,
                Some(seen + Duration::seconds(1)),
                AgentHealth::Degraded,
                0.25,
                2,
            ),
        ])
        .await
        .expect("save");
    t.store.save_agent_snapshots(&[]).await.expect("save none");
    // No heartbeat in the snapshot keeps the stored one.
    t.store
        .save_agent_snapshots(&[snapshot(b.id, None, AgentHealth::Degraded, 0.75, 0)])
        .await
        .expect("save b");

    t.reopen().await;
    let a_now = t.store.get_agent(a.id).await.expect("get").expect("found");
    assert_eq!(
        (
            a_now.last_heartbeat_at,
            a_now.health,
            a_now.trust_score,
            a_now.session_state
        ),
        (
            Some(seen + Duration::seconds(1)),
            AgentHealth::Degraded,
            0.25,
            AgentSessionState::Connected
        )
    );
    assert_eq!(a_now.capabilities, a.capabilities);
    let b_now = t.store.get_agent(b.id).await.expect("get").expect("found");
    assert_eq!(
        (b_now.last_heartbeat_at, b_now.health, b_now.trust_score),
        (Some(seen), AgentHealth::Degraded, 0.75)
    );
    assert_eq!(t.store.list_agents().await.expect("list").len(), 2);
    assert_eq!(
        t.store.list_events(None, 0, 1000).await.expect("events"),
        events_before,
        "snapshots append no events"
    );

    // A re-registration keeps health and trust; only the session restarts.
    let again = t
        .store
        .register_agent(registration("a", vec![]))
        .await
        .expect("register again");
    assert_eq!(
        (again.id, again.health, again.trust_score),
        (a.id, AgentHealth::Degraded, 0.25)
    );
}

/// A reconnect storm: many registrations queued at once share commits, and
/// a name registered twice among them keeps one id, with the capabilities
/// of the registration applied last.
pub async fn concurrent_registrations_share_a_batch_and_keep_one_id_per_name(t: TestDb) {
    let s = &t.store;
    let mut pending = Vec::new();
    for i in 0..200 {
        // Names repeat: every fifth registration names an earlier agent.
        let name = if i % 5 == 4 {
            format!("storm-{}", i - 4)
        } else {
            format!("storm-{i}")
        };
        let caps = vec![capability(&format!("cap-{i}"), 1)];
        pending.push(s.register_agent(registration(&name, caps)));
    }
    let records = futures::future::join_all(pending).await;
    let records: Vec<_> = records
        .into_iter()
        .map(|r| r.expect("registered"))
        .collect();
    let mut ids: BTreeMap<String, Uuid> = BTreeMap::new();
    for r in &records {
        let id = *ids.entry(r.name.clone()).or_insert(r.id);
        assert_eq!(id, r.id, "one id per name ({})", r.name);
        assert_eq!(r.capabilities.len(), 1, "{}", r.name);
    }
    assert_eq!(ids.len(), 160);
    let listed = s.list_agents().await.expect("list");
    assert_eq!(listed.len(), 160);
    for i in (0..200).step_by(5) {
        let agent = listed
            .iter()
            .find(|a| a.name == format!("storm-{i}"))
            .expect("listed");
        assert_eq!(
            agent.capabilities[0].name,
            format!("cap-{}", i + 4),
            "the later registration of storm-{i} wins"
        );
    }
    let connected = agent_events(&t)
        .await
        .into_iter()
        .filter(|(kind, _, _)| kind == "agent.connected")
        .count();
    assert_eq!(connected, 200, "one agent.connected per registration");
}
