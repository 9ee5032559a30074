//! Rate limiting per token subject (per client IP when unauthenticated),
//! with governor; refusals are JSON 429s with `Retry-After`.
//!
//! The limiter follows the running configuration: a reload that changes
//! `rate_limit_per_second` or `rate_limit_burst` replaces it (counts start
//! afresh), and `0` switches limiting off.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Live;
use crate::http::error::ApiError;
use crate::http::extract::Identity;

/// What a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    Subject(String),
    Ip(IpAddr),
}

/// Keys kept before idle ones are forgotten.
const MAX_KEYS: usize = 10_000;

type Limiter = DefaultKeyedRateLimiter<RateKey>;

/// The `(per_second, burst)` the limiter was built for, and the limiter.
type Current = (Option<(u32, u32)>, Option<Arc<Limiter>>);

/// The limiter for the configured `(per_second, burst)`, rebuilt when a
/// reload changes them.
pub struct RateLimit {
    live: Live,
    current: Mutex<Current>,
}

impl RateLimit {
    pub fn new(live: Live) -> Arc<Self> {
        Arc::new(Self {
            live,
            current: Mutex::new((None, None)),
        })
    }

    /// The limiter in force, or `None` when limiting is off.
    fn limiter(&self) -> Option<Arc<Limiter>> {
        let wanted = self.live.get().rate_limit;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.0 != wanted || (wanted.is_some() && current.1.is_none()) {
            *current = (
                wanted,
                wanted.map(|(rate, burst)| Arc::new(limiter(rate, burst))),
            );
        }
        current.1.clone()
    }
}

fn limiter(per_second: u32, burst: u32) -> Limiter {
    let period = Duration::from_nanos(1_000_000_000 / u64::from(per_second.max(1)));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
    RateLimiter::keyed(quota)
}

/// Keys on the verified token subject, else the peer IP.
fn key_of(req: &Request) -> RateKey {
    if let Some(Identity(Ok(claims))) = req.extensions().get::<Identity>() {
        return RateKey::Subject(claims.sub.clone());
    }
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => RateKey::Ip(addr.ip()),
        None => RateKey::Ip(IpAddr::from([0, 0, 0, 0])),
    }
}

/// The middleware: counts the request, or answers 429 with `Retry-After`.
pub async fn limit(State(limit): State<Arc<RateLimit>>, req: Request, next: Next) -> Response {
    if let Some(limiter) = limit.limiter() {
        if let Err(not_until) = limiter.check_key(&key_of(&req)) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return ApiError::RateLimited {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
            .into_response();
        }
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
    }
    next.run(req).await
}
