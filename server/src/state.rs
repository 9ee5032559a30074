//! The one shared handle every request and background task gets.

use std::sync::Arc;

use crate::auth::JwtKeys;
use crate::config::Live;
use crate::events::EventBus;
use crate::hub::HubHandle;
use crate::store::DynStore;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    /// The configuration in force (replaced by a reload).
    pub settings: Live,
    /// Re-reads the configuration (SIGHUP, `POST /v1/admin/reload`).
    pub reloader: Arc<crate::reload::Reloader>,
    pub keys: Arc<JwtKeys>,
    pub hub: HubHandle,
    /// Committed events, in order, for streams.
    pub bus: EventBus,
    /// This hub as a node of its cluster.
    pub node: Arc<crate::cluster::Node>,
    /// Fires when the hub shuts down (long-lived connections watch it).
    pub shutdown: tokio_util::sync::CancellationToken,
}
