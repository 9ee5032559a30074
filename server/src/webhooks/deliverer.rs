//! The deliverer: takes due deliveries from the queue and sends them,
//! concurrently, within each host's limits.
//!
//! One loop owns the per-host state ([`Hosts`]) and decides what to send;
//! each attempt runs in its own task (sending, then recording the outcome)
//! and reports back when done, so a slow target holds only its own slots.
//! The loop wakes when the tailer queued something, an attempt finished, the
//! next delivery or breaker probe is due, or after a second at most
//! (deliveries queued by a replay or another node).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::Client;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::breaker::{BreakerChange, Hosts};
use super::config::WebhookSettings;
use super::model::{AttemptOutcome, ClaimedDelivery};
use super::send;
use super::target::{AddressPolicy, host_key};
use crate::store::{DynStore, StoreError};

/// Due deliveries read per query.
const BATCH: u32 = 256;
/// Attempts running at once over all hosts.
const MAX_TOTAL_IN_FLIGHT: u32 = 1024;
/// The longest the loop sleeps, and how stale its list of targets may get.
const TICK: Duration = Duration::from_secs(1);
/// A claim outlives the attempt's timeout by this much (time to record it).
const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// The shortest pause before looking at the queue again when due work is
/// waiting for capacity.
const MIN_PAUSE: Duration = Duration::from_millis(20);

pub struct Deliverer {
    store: DynStore,
    settings: Arc<WebhookSettings>,
    policy: AddressPolicy,
    client: Client,
    hosts: Hosts,
    /// Enabled subscriptions' host keys, refreshed every [`TICK`].
    targets: HashMap<Uuid, String>,
    targets_at: Option<Instant>,
    running: JoinSet<(String, bool)>,
    wake: Arc<Notify>,
    /// Secrets are to be re-sealed under the current key (at start, and
    /// after a reload changed the keys).
    reseal: bool,
}

impl Deliverer {
    pub fn new(
        store: DynStore,
        settings: Arc<WebhookSettings>,
        client: Client,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            policy: AddressPolicy::new(&settings),
            hosts: Hosts::new(
                settings.max_in_flight,
                settings.breaker_threshold,
                settings.breaker_cooldown,
            ),
            store,
            settings,
            client,
            targets: HashMap::new(),
            targets_at: None,
            running: JoinSet::new(),
            wake,
            reseal: true,
        }
    }

    /// Runs until `shutdown`. Attempts still running then are dropped; their
    /// claims expire and they are sent again (same `webhook-id`).
    pub async fn run(
        mut self,
        mut settings: watch::Receiver<Arc<crate::config::Settings>>,
        shutdown: CancellationToken,
    ) {
        loop {
            if std::mem::take(&mut self.reseal) {
                match super::sealing::reseal_all(&self.store, &self.settings.sealer).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        resealed = n,
                        key = self.settings.sealer.current_key_id().unwrap_or_default(),
                        "webhook secrets re-sealed under the current key"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not re-seal webhook secrets; retrying");
                        self.reseal = true;
                    }
                }
            }
            let next = match self.dispatch().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook deliverer could not read the queue");
                    Instant::now() + TICK
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.running.abort_all();
                    return;
                }
                Some(done) = self.running.join_next(), if !self.running.is_empty() => {
                    self.finished(done);
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(next) => {}
                Ok(()) = settings.changed() => {
                    let webhooks = settings.borrow_and_update().webhooks.clone();
                    self.configure(webhooks);
                }
            }
            // Collect everything else that finished meanwhile.
            while let Some(done) = self.running.try_join_next() {
                self.finished(done);
            }
        }
    }

    /// Applies reloaded settings: a new client (timeout, address policy),
    /// new per-host limits; attempts already running finish as they are.
    fn configure(&mut self, webhooks: WebhookSettings) {
        if *self.settings == webhooks {
            return;
        }
        match send::client(&webhooks) {
            Ok(client) => self.client = client,
            Err(e) => {
                tracing::error!(error = %e, "cannot build a webhook client from the reloaded settings; keeping the previous ones");
                return;
            }
        }
        self.policy = AddressPolicy::new(&webhooks);
        self.reseal |= webhooks.sealer != self.settings.sealer;
        self.hosts.set_limits(
            webhooks.max_in_flight,
            webhooks.breaker_threshold,
            webhooks.breaker_cooldown,
        );
        self.settings = Arc::new(webhooks);
    }

    fn finished(&mut self, done: Result<(String, bool), tokio::task::JoinError>) {
        let Ok((host, healthy)) = done else {
            return;
        };
        match self.hosts.finished(&host, healthy, Instant::now()) {
            Some(BreakerChange::Opened) => tracing::warn!(
                host,
                cooldown = ?self.settings.breaker_cooldown,
                "webhook target keeps failing; circuit breaker opened"
            ),
            Some(BreakerChange::Closed) => {
                tracing::info!(host, "webhook target answers again; circuit breaker closed")
            }
            None => {}
        }
    }

    async fn refresh_targets(&mut self) -> Result<(), StoreError> {
        let webhooks = self.store.list_webhooks().await?;
        self.targets = webhooks
            .into_iter()
            .filter(|w| w.enabled)
            .map(|w| (w.id, host_key(&w.url)))
            .collect();
        self.targets_at = Some(Instant::now());
        Ok(())
    }

    /// Subscriptions whose host cannot take an attempt now.
    fn blocked(&self, now: Instant) -> Vec<Uuid> {
        self.targets
            .iter()
            .filter(|(_, host)| self.hosts.capacity(host, now) == 0)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Starts every attempt that may start now; returns when to look again.
    async fn dispatch(&mut self) -> Result<Instant, StoreError> {
        if self.targets_at.is_none_or(|at| at.elapsed() >= TICK) {
            self.refresh_targets().await?;
        }
        let mut refreshed = false;
        loop {
            let now = Instant::now();
            let free = MAX_TOTAL_IN_FLIGHT.saturating_sub(self.hosts.in_flight()) as usize;
            if free == 0 {
                break;
            }
            let exclude = self.blocked(now);
            let due = self
                .store
                .due_webhook_deliveries(Utc::now(), &exclude, BATCH)
                .await?;
            let mut capacity: HashMap<&str, u32> = HashMap::new();
            let mut chosen = Vec::new();
            let mut unknown = false;
            for d in &due {
                let Some(host) = self.targets.get(&d.webhook_id) else {
                    unknown = true;
                    continue;
                };
                let cap = capacity
                    .entry(host.as_str())
                    .or_insert_with(|| self.hosts.capacity(host, now));
                if *cap > 0 && chosen.len() < free {
                    *cap -= 1;
                    chosen.push(d.id);
                }
            }
            if chosen.is_empty() {
                if unknown && !refreshed {
                    // A subscription this loop has not seen yet.
                    self.refresh_targets().await?;
                    refreshed = true;
                    continue;
                }
                break;
            }
            let at = crate::webhooks::now();
            let lease = chrono::Duration::from_std(self.settings.timeout + LEASE_MARGIN)
                .unwrap_or(chrono::Duration::minutes(10));
            let claimed = self
                .store
                .claim_webhook_deliveries(&chosen, at, at + lease)
                .await?;
            for delivery in claimed {
                self.start(delivery, now);
            }
            if due.len() < BATCH as usize {
                break;
            }
        }
        self.next_wake().await
    }

    fn start(&mut self, delivery: ClaimedDelivery, now: Instant) {
        let host = host_key(&delivery.url);
        self.hosts.started(&host, now);
        let store = self.store.clone();
        let settings = self.settings.clone();
        let client = self.client.clone();
        let policy = self.policy;
        let span = tracing::info_span!(
            "webhook_attempt",
            webhook_id = %delivery.webhook_id,
            delivery_id = %delivery.id,
            event_seq = delivery.event_seq,
            event_type = %delivery.event_type,
            job_id = delivery.job_id.map(tracing::field::display),
            attempt = delivery.attempts + 1,
        );
        if let Some(job_id) = delivery.job_id {
            crate::telemetry::links::follow(&span, job_id);
        }
        self.running.spawn(
            async move {
                let sent = send::attempt(&client, &settings, policy, &delivery).await;
                let record = &sent.record;
                let result = match record.outcome {
                    AttemptOutcome::Delivered => "delivered",
                    AttemptOutcome::Retry { .. } => "retry",
                    AttemptOutcome::GiveUp => "failed",
                    AttemptOutcome::Gone => "gone",
                };
                metrics::counter!("switchyard_webhook_attempts_total", "result" => result)
                    .increment(1);
                metrics::histogram!("switchyard_webhook_attempt_seconds")
                    .record(record.latency_ms as f64 / 1000.0);
                match store.record_webhook_attempt(record).await {
                    Ok(effect) if effect.disabled => tracing::warn!(
                        error = record.error.as_deref().unwrap_or(""),
                        "webhook subscription disabled"
                    ),
                    Ok(effect) if !effect.recorded => {
                        tracing::debug!("attempt not recorded: the delivery moved on meanwhile")
                    }
                    Ok(_) => match &record.error {
                        None => {
                            tracing::debug!(latency_ms = record.latency_ms, "webhook delivered")
                        }
                        Some(error) => tracing::info!(
                            status_code = record.status_code,
                            error,
                            result,
                            "webhook attempt failed"
                        ),
                    },
                    Err(e) => tracing::warn!(
                        error = %e,
                        "could not record a webhook attempt; it will be made again"
                    ),
                }
                (host, sent.healthy)
            }
            .instrument(span),
        );
    }

    /// The next time something may become sendable.
    async fn next_wake(&self) -> Result<Instant, StoreError> {
        let now = Instant::now();
        let mut next = now + TICK;
        if let Some(probe) = self.hosts.next_probe_at(now) {
            next = next.min(probe);
        }
        let exclude = self.blocked(now);
        if let Some(due) = self.store.next_webhook_due_at(&exclude).await? {
            let wait = (due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            next = next.min(now + wait.max(MIN_PAUSE));
        }
        Ok(next)
    }
}
