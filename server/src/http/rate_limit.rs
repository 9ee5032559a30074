//! Rate limiting per token subject (per client IP when unauthenticated),
//! with tower_governor; refusals are JSON 429s with `Retry-After`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::IntoResponse;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::http::error::ApiError;
use crate::http::extract::Identity;

/// What a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    Subject(String),
    Ip(IpAddr),
}

/// Keys on the verified token subject, else the peer IP.
#[derive(Debug, Clone, Copy)]
pub struct SubjectOrIp;

impl KeyExtractor for SubjectOrIp {
    type Key = RateKey;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        if let Some(Identity(Ok(claims))) = req.extensions().get::<Identity>() {
            return Ok(RateKey::Subject(claims.sub.clone()));
        }
        match req.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => Ok(RateKey::Ip(addr.ip())),
            None => Ok(RateKey::Ip(IpAddr::from([0, 0, 0, 0]))),
        }
    }
}

/// The layer for `per_second` sustained requests with `burst` on top.
pub fn layer(
    per_second: u32,
    burst: u32,
) -> Option<GovernorLayer<SubjectOrIp, governor::middleware::NoOpMiddleware, Body>> {
    let period = std::time::Duration::from_nanos(1_000_000_000 / u64::from(per_second.max(1)));
    let config: GovernorConfig<SubjectOrIp, _> = GovernorConfigBuilder::default()
        .key_extractor(SubjectOrIp)
        .period(period)
        .burst_size(burst)
        .finish()?;
    let config = Arc::new(config);
    Some(GovernorLayer::new(config).error_handler(|e| {
        match e {
            GovernorError::TooManyRequests { wait_time, .. } => ApiError::RateLimited {
                retry_after: wait_time.max(1),
            }
            .into_response(),
            other => ApiError::Internal(format!("rate limiter: {other}")).into_response(),
        }
    }))
}
