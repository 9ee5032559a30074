//! Stream tickets: how a browser authenticates the WebSocket stream.
//!
//! Browsers cannot set headers on a WebSocket, and a token in a URL ends up
//! in logs and histories. So a client trades its bearer token for a ticket
//! (`POST /v1/stream/tickets`) and opens `GET /v1/stream?ticket=...`. A
//! ticket is random (256 bits), short-lived and single-use: redeeming it
//! removes it, so a leaked URL is worthless once used or expired.
//!
//! Tickets live in memory (a `DashMap`; a hub restart invalidates them, which
//! only costs a client one more `POST`). Expired tickets are swept when new
//! ones are issued, at most once per [`SWEEP_EVERY`], so the map holds at most
//! the tickets issued within one TTL plus one sweep interval.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use rand::RngCore;
use std::time::Instant;

use crate::auth::Claims;

/// Minimum time between two sweeps of expired tickets.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

struct Issued {
    claims: Claims,
    expires: Instant,
}

struct Inner {
    tickets: DashMap<String, Issued>,
    /// When expired tickets were last swept (never held across an await).
    last_sweep: Mutex<Instant>,
}

/// The outstanding tickets of one hub; cheap to clone.
#[derive(Clone)]
pub struct Tickets {
    inner: Arc<Inner>,
}

impl Default for Tickets {
    fn default() -> Self {
        Tickets {
            inner: Arc::new(Inner {
                tickets: DashMap::new(),
                last_sweep: Mutex::new(Instant::now()),
            }),
        }
    }
}

impl Tickets {
    /// A new ticket for `claims`, valid for `ttl`; returns it and when it expires.
    pub fn issue(&self, claims: Claims, ttl: Duration) -> (String, DateTime<Utc>) {
        self.issue_at(claims, ttl, Instant::now())
    }

    /// [`Tickets::issue`] at a given time (tests move the clock).
    fn issue_at(&self, claims: Claims, ttl: Duration, now: Instant) -> (String, DateTime<Utc>) {
        self.sweep_if_due(now);
        let mut bytes = [0_u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let ticket = URL_SAFE_NO_PAD.encode(bytes);
        let expires_at =
            Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30));
        self.inner.tickets.insert(
            ticket.clone(),
            Issued {
                claims,
                expires: now + ttl,
            },
        );
        (ticket, expires_at)
    }

    /// The claims of a valid ticket, which is used up; `None` for an
    /// unknown, used or expired one.
    pub fn redeem(&self, ticket: &str) -> Option<Claims> {
        self.redeem_at(ticket, Instant::now())
    }

    fn redeem_at(&self, ticket: &str, now: Instant) -> Option<Claims> {
        let (_, issued) = self.inner.tickets.remove(ticket)?;
        (issued.expires > now).then_some(issued.claims)
    }

    /// Outstanding tickets (expired ones count until swept).
    pub fn len(&self) -> usize {
        self.inner.tickets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.tickets.is_empty()
    }

    fn sweep_if_due(&self, now: Instant) {
        {
            let Ok(mut last) = self.inner.last_sweep.lock() else {
                return;
            };
            if now.duration_since(*last) < SWEEP_EVERY {
                return;
            }
            *last = now;
        }
        self.inner.tickets.retain(|_, issued| issued.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn claims() -> Claims {
        Claims {
            sub: "viewer-1".into(),
            role: Role::Viewer,
            exp: u64::MAX,
            iat: None,
            jti: None,
        }
    }

    #[test]
    fn tickets_are_single_use_and_expire() {
        let tickets = Tickets::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(30);
        let (a, _) = tickets.issue_at(claims(), ttl, t0);
        assert_eq!(a.len(), 43, "256 bits, base64url");
        assert_eq!(tickets.redeem_at(&a, t0), Some(claims()));
        assert_eq!(tickets.redeem_at(&a, t0), None, "single use");
        assert_eq!(tickets.redeem_at("made-up", t0), None);

        let (b, _) = tickets.issue_at(claims(), ttl, t0);
        assert_eq!(tickets.redeem_at(&b, t0 + ttl), None, "expired");
    }

    #[test]
    fn expired_tickets_are_swept_when_new_ones_are_issued() {
        let tickets = Tickets::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(1);
        for _ in 0..10 {
            tickets.issue_at(claims(), ttl, t0);
        }
        assert_eq!(tickets.len(), 10);
        let later = t0 + SWEEP_EVERY + ttl;
        let (fresh, _) = tickets.issue_at(claims(), ttl, later);
        assert_eq!(tickets.len(), 1, "only the fresh ticket is left");
        assert!(tickets.redeem_at(&fresh, later).is_some());
    }
}
