//! Per-host admission: a concurrency limit and a circuit breaker.
//!
//! Deliveries are grouped by target host (`host:port`). A host may have at
//! most `max_in_flight` attempts running, so a slow target ties up only its
//! own slots. After `threshold` consecutive unhealthy answers (no answer,
//! timeout, 5xx, 429) the host's breaker opens: nothing is sent to it for
//! `cooldown`, then a single probe goes out (half-open). A healthy answer
//! closes the breaker; an unhealthy probe opens it for another cool-down.
//! Deliveries waiting for a host keep their place in the queue and do not
//! use up retries; only real attempts count.
//!
//! Owned by the deliverer's loop (no locks); state is per process, so a
//! restarted hub starts with every breaker closed.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Default)]
struct Host {
    in_flight: u32,
    /// Consecutive unhealthy answers.
    failures: u32,
    /// Set while the breaker is open (or half-open once passed).
    open_until: Option<Instant>,
    /// The half-open probe is running.
    probing: bool,
}

/// What a finished attempt did to its host's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerChange {
    Opened,
    Closed,
}

#[derive(Debug)]
pub struct Hosts {
    hosts: HashMap<String, Host>,
    max_in_flight: u32,
    threshold: u32,
    cooldown: Duration,
}

impl Hosts {
    pub fn new(max_in_flight: u32, threshold: u32, cooldown: Duration) -> Self {
        Self {
            hosts: HashMap::new(),
            max_in_flight: max_in_flight.max(1),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// New limits (a configuration reload); hosts keep their state.
    pub fn set_limits(&mut self, max_in_flight: u32, threshold: u32, cooldown: Duration) {
        self.max_in_flight = max_in_flight.max(1);
        self.threshold = threshold.max(1);
        self.cooldown = cooldown;
    }

    /// How many more attempts may start for `host` at `now`.
    pub fn capacity(&self, host: &str, now: Instant) -> u32 {
        let Some(h) = self.hosts.get(host) else {
            return self.max_in_flight;
        };
        match h.open_until {
            Some(until) if now < until => 0,
            // Half-open: one probe, once nothing else is running.
            Some(_) => u32::from(!h.probing && h.in_flight == 0),
            None => self.max_in_flight.saturating_sub(h.in_flight),
        }
    }

    /// An attempt to `host` starts.
    pub fn started(&mut self, host: &str, now: Instant) {
        let h = self.hosts.entry(host.to_owned()).or_default();
        h.in_flight += 1;
        if h.open_until.is_some_and(|until| now >= until) {
            h.probing = true;
        }
    }

    /// An attempt to `host` finished; `healthy` when the host answered in a
    /// way that shows it is up (anything but no answer, 5xx or 429).
    pub fn finished(&mut self, host: &str, healthy: bool, now: Instant) -> Option<BreakerChange> {
        let h = self.hosts.entry(host.to_owned()).or_default();
        h.in_flight = h.in_flight.saturating_sub(1);
        let change = if healthy {
            h.failures = 0;
            h.probing = false;
            h.open_until.take().map(|_| BreakerChange::Closed)
        } else {
            h.failures = h.failures.saturating_add(1);
            if h.probing {
                h.probing = false;
                h.open_until = Some(now + self.cooldown);
                None
            } else if h.open_until.is_none() && h.failures >= self.threshold {
                h.open_until = Some(now + self.cooldown);
                Some(BreakerChange::Opened)
            } else {
                None
            }
        };
        if h.in_flight == 0 && h.failures == 0 && h.open_until.is_none() {
            self.hosts.remove(host);
        }
        change
    }

    /// The earliest time an open breaker lets a probe through (after `now`).
    pub fn next_probe_at(&self, now: Instant) -> Option<Instant> {
        self.hosts
            .values()
            .filter_map(|h| h.open_until)
            .filter(|until| *until > now)
            .min()
    }

    /// Attempts running, over all hosts.
    pub fn in_flight(&self) -> u32 {
        self.hosts.values().map(|h| h.in_flight).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_concurrency_per_host() {
        let now = Instant::now();
        let mut hosts = Hosts::new(2, 3, Duration::from_secs(10));
        assert_eq!(hosts.capacity("a:80", now), 2);
        hosts.started("a:80", now);
        hosts.started("a:80", now);
        assert_eq!(hosts.capacity("a:80", now), 0);
        assert_eq!(
            hosts.capacity("b:80", now),
            2,
            "another host is not affected"
        );
        hosts.finished("a:80", true, now);
        assert_eq!(hosts.capacity("a:80", now), 1);
        assert_eq!(hosts.in_flight(), 1);
    }

    #[test]
    fn opens_after_the_threshold_probes_after_the_cooldown_and_closes_on_success() {
        let t0 = Instant::now();
        let cooldown = Duration::from_secs(10);
        let mut hosts = Hosts::new(4, 3, cooldown);
        for i in 0..3 {
            hosts.started("a:80", t0);
            let change = hosts.finished("a:80", false, t0);
            assert_eq!(change, (i == 2).then_some(BreakerChange::Opened));
        }
        assert_eq!(hosts.capacity("a:80", t0), 0, "open");
        assert_eq!(hosts.next_probe_at(t0), Some(t0 + cooldown));

        // Half-open: exactly one probe; it fails, so the breaker opens again.
        let t1 = t0 + cooldown;
        assert_eq!(hosts.capacity("a:80", t1), 1);
        hosts.started("a:80", t1);
        assert_eq!(hosts.capacity("a:80", t1), 0, "one probe at a time");
        assert_eq!(hosts.finished("a:80", false, t1), None);
        assert_eq!(hosts.capacity("a:80", t1), 0);
        assert_eq!(hosts.next_probe_at(t1), Some(t1 + cooldown));

        // The next probe succeeds: closed, full capacity, state forgotten.
        let t2 = t1 + cooldown;
        hosts.started("a:80", t2);
        assert_eq!(
            hosts.finished("a:80", true, t2),
            Some(BreakerChange::Closed)
        );
        assert_eq!(hosts.capacity("a:80", t2), 4);
        assert_eq!(hosts.next_probe_at(t2), None);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let now = Instant::now();
        let mut hosts = Hosts::new(4, 2, Duration::from_secs(1));
        for healthy in [false, true, false] {
            hosts.started("a:80", now);
            assert_eq!(hosts.finished("a:80", healthy, now), None);
        }
        assert_eq!(hosts.capacity("a:80", now), 4);
    }
}
