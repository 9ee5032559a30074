//! The running configuration: read anywhere, replaced only by a reload.
//!
//! Handlers read the current [`Settings`] per request; the background tasks
//! that built something from a setting at start (the webhook deliverer's
//! HTTP client, the monitor's timer) subscribe and rebuild it when a reload
//! replaces the settings. Settings that cannot change while the hub runs are
//! refused by the reload (see [`super::changes`]), so every reader may rely
//! on them staying what they were at start.

use std::sync::Arc;

use tokio::sync::watch;

use super::Settings;

/// Cheap to clone; every clone sees the same, current settings.
#[derive(Clone)]
pub struct Live {
    tx: Arc<watch::Sender<Arc<Settings>>>,
}

impl Live {
    pub fn new(settings: Settings) -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(Arc::new(settings))),
        }
    }

    /// The settings in force now.
    pub fn get(&self) -> Arc<Settings> {
        self.tx.borrow().clone()
    }

    /// A receiver that is marked changed on every reload.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Settings>> {
        self.tx.subscribe()
    }

    /// Puts `settings` in force and wakes every subscriber.
    pub(crate) fn replace(&self, settings: Settings) {
        self.tx.send_replace(Arc::new(settings));
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Live").field(&self.get()).finish()
    }
}
