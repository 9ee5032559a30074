//! The first exchange: `hello` in, `welcome` out.

use std::collections::{HashMap, HashSet};

use axum::extract::ws::{Message, WebSocket};
use chrono::Utc;
use futures::StreamExt;
use futures::stream::SplitStream;
use switchyard_agent::protocol::{
    AgentMessage, Hello, HubMessage, SUPPORTED_PROTOCOLS, parse_agent_message,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::socket_error::closing_for;
use super::{Held, Session, SessionContext, close_with, rate_limiter, send_error};
use crate::config::is_capability_name;
use crate::domain::storable::{NUL_PROBLEM, nul_path_in_json};
use crate::domain::{AgentRegistration, CapabilityRecord};
use crate::hub::assign::frame;
use crate::hub::command::{CapabilityLimits, Command, Outbound, Registration};
use crate::hub::schema::compile;

/// Refuses the connection: an `error` frame naming the problem, then a close.
fn refuse(
    out: &mpsc::Sender<Outbound>,
    code: &str,
    message: String,
    close_code: u16,
) -> Option<Session> {
    tracing::info!(code, %message, "agent handshake refused");
    send_error(out, code, message.clone(), None);
    let reason: String = message.chars().take(120).collect();
    let _ = out.try_send(Outbound::Close {
        code: close_code,
        reason,
    });
    None
}

pub(super) async fn handshake(
    stream: &mut SplitStream<WebSocket>,
    ctx: &SessionContext,
    out: mpsc::Sender<Outbound>,
) -> Option<Session> {
    // One deadline for the whole wait: pings and pongs do not extend it.
    let hello_timeout = ctx.hub.settings.hello_timeout;
    let deadline = tokio::time::Instant::now() + hello_timeout;
    let text = loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                return refuse(
                    &out,
                    "hello_timeout",
                    format!("no `hello` within {hello_timeout:?} (hello_timeout)"),
                    1008,
                );
            }
            Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return None,
            Ok(Some(Err(e))) => {
                tracing::info!(error = %e, "agent socket error before hello");
                if let Some(closing) = closing_for(e, ctx.hub.settings.max_frame_bytes) {
                    close_with(&out, closing);
                }
                return None;
            }
            Ok(Some(Ok(Message::Text(text)))) => break text,
            Ok(Some(Ok(Message::Binary(_)))) => {
                return refuse(
                    &out,
                    "invalid_message",
                    "binary frames are not supported; send JSON text frames".into(),
                    1003,
                );
            }
            Ok(Some(Ok(_))) => continue, // ping/pong
        }
    };
    let hello = match parse_agent_message(&text) {
        Ok(AgentMessage::Hello(hello)) => hello,
        Ok(_) => {
            return refuse(
                &out,
                "hello_required",
                "the first message of a session must be `hello`".into(),
                1008,
            );
        }
        Err(e) => return refuse(&out, "invalid_message", e, 1008),
    };
    if let Some(path) = nul_path_in_json(text.as_bytes()) {
        return refuse(
            &out,
            "invalid_hello",
            format!("`{path}` {NUL_PROBLEM}"),
            1008,
        );
    }
    if !SUPPORTED_PROTOCOLS.contains(&hello.protocol) {
        let supported: Vec<String> = SUPPORTED_PROTOCOLS.iter().map(u32::to_string).collect();
        return refuse(
            &out,
            "unsupported_protocol",
            format!(
                "protocol version {} is not supported; this hub speaks version(s) {}",
                hello.protocol,
                supported.join(", ")
            ),
            1002,
        );
    }
    if hello.name != ctx.claims.sub {
        return refuse(
            &out,
            "name_mismatch",
            format!(
                "hello names the agent `{}` but its token was issued to `{}`; use a token whose sub is the agent's name",
                hello.name, ctx.claims.sub
            ),
            1008,
        );
    }
    let (records, limits, output_schemas) = match check_capabilities(&hello) {
        Ok(ok) => ok,
        Err(problem) => return refuse(&out, "invalid_hello", problem, 1008),
    };

    let registration = AgentRegistration {
        new_id: Uuid::now_v7(),
        name: hello.name.clone(),
        version: hello.version.clone(),
        labels: hello.labels.clone(),
        capabilities: records,
        node_id: Some(ctx.hub.node.id()),
    };
    let record = match ctx.store.register_agent(registration).await {
        Ok(record) => record,
        Err(e) => {
            return refuse(
                &out,
                "internal",
                format!("could not register the agent: {e}; reconnect later"),
                1011,
            );
        }
    };
    let agent_id = record.id;
    // Resuming here what it held through another node (which died or
    // stopped; it may have been the last other one, so this is not only
    // done while peers are alive): read those tasks, so this node can take
    // them over. Tasks the dispatcher already tracks are left to it.
    let adopt = if hello.resume.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<Uuid> = hello.resume.iter().map(|r| r.task_id).collect();
        ctx.store
            .held_tasks(agent_id, &ids)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(%agent_id, error = %e, "could not read the tasks the agent resumes; they are settled by their lease");
                Vec::new()
            })
    };
    let session_id = Uuid::now_v7();
    let (reply, welcome) = oneshot::channel();
    ctx.hub.send(Command::Register(Registration {
        record,
        session_id,
        timings: ctx.hub.settings.clone(),
        capabilities: limits,
        resume: hello.resume.clone(),
        adopt,
        out: out.clone(),
        reply,
    }));
    let Ok((welcome, resumed)) = welcome.await else {
        return refuse(
            &out,
            "unavailable",
            "the hub is shutting down; reconnect later".into(),
            1001,
        );
    };

    let mut running = HashMap::new();
    for task in resumed {
        // A resumed task the store still has as assigned: the agent runs it,
        // so record the accept it could not send.
        if !task.running {
            let lease_until = Utc::now() + ctx.hub.settings.lease;
            match ctx
                .store
                .start_task(task.task_id, task.attempt, agent_id, lease_until)
                .await
            {
                Ok(started) => ctx.hub.send(Command::Started {
                    agent_id,
                    task: started,
                }),
                Err(e) => {
                    tracing::info!(task_id = %task.task_id, error = %e, "a resumed task could not be restarted");
                    continue;
                }
            }
        }
        running.insert(
            task.task_id,
            Held {
                attempt: task.attempt,
                capability: Some(task.capability),
                items: Vec::new(),
            },
        );
    }
    if out
        .try_send(Outbound::Frame(frame(&HubMessage::Welcome(welcome))))
        .is_err()
    {
        return None;
    }
    ctx.hub.send(Command::Welcomed {
        agent_id,
        session_id,
    });
    tracing::info!(%agent_id, name = %hello.name, resumed = running.len(), "agent connected");
    Some(Session {
        agent_id,
        session_id,
        hub: ctx.hub.clone(),
        store: ctx.store.clone(),
        out,
        running,
        in_flight: Default::default(),
        output_schemas,
        limiter: rate_limiter(ctx.hub.settings.agent_messages_per_second),
        seen_sent: None,
    })
}

/// The highest price per unit a capability may declare: costs stay finite
/// (a report's sum of u64 token counts times prices cannot overflow f64).
const MAX_PRICE: f64 = 1e9;

type Checked = (
    Vec<CapabilityRecord>,
    HashMap<String, CapabilityLimits>,
    HashMap<String, Option<std::sync::Arc<jsonschema::Validator>>>,
);

/// Validates declared capabilities and compiles their schemas.
fn check_capabilities(hello: &Hello) -> Result<Checked, String> {
    if hello.capabilities.is_empty() {
        return Err("hello declares no capabilities; declare at least one".into());
    }
    let mut seen = HashSet::new();
    let mut records = Vec::new();
    let mut limits = HashMap::new();
    let mut outputs = HashMap::new();
    for cap in &hello.capabilities {
        if !is_capability_name(&cap.name) {
            return Err(format!(
                "capability `{}` is not a valid name (lower-case letters, digits, `_`, `-`, separated by dots)",
                cap.name
            ));
        }
        if !seen.insert(cap.name.clone()) {
            return Err(format!("capability `{}` is declared twice", cap.name));
        }
        if !(1..=1024).contains(&cap.max_concurrency) {
            return Err(format!(
                "capability `{}`: max_concurrency {} is out of range; use 1 to 1024",
                cap.name, cap.max_concurrency
            ));
        }
        let p = &cap.pricing;
        for (field, price) in [
            ("per_1k_input_tokens", p.per_1k_input_tokens),
            ("per_1k_output_tokens", p.per_1k_output_tokens),
            ("per_request", p.per_request),
        ] {
            if !(0.0..=MAX_PRICE).contains(&price) {
                return Err(format!(
                    "capability `{}`: pricing.{field} {price} is out of range; use 0 to {MAX_PRICE}",
                    cap.name
                ));
            }
        }
        let input = compile(&cap.input_schema).map_err(|e| {
            format!(
                "capability `{}`: input_schema is not a valid JSON Schema: {e}",
                cap.name
            )
        })?;
        let output = compile(&cap.output_schema).map_err(|e| {
            format!(
                "capability `{}`: output_schema is not a valid JSON Schema: {e}",
                cap.name
            )
        })?;
        records.push(CapabilityRecord::from(cap));
        limits.insert(
            cap.name.clone(),
            CapabilityLimits {
                max_concurrency: cap.max_concurrency,
                input_schema: input,
            },
        );
        outputs.insert(cap.name.clone(), output);
    }
    Ok((records, limits, outputs))
}
