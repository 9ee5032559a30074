//! Events out: the durable log is the source of truth; after each commit the
//! [`pump`] reads what is new, in sequence order, and publishes it on the
//! in-process [`bus::EventBus`], encoded once. Streams subscribe to the bus;
//! the core never waits for them.
//!
//! * [`feed`]: replay from the log, then live from the bus, gap-free; the
//!   SSE endpoints ([`sse`]) render one feed each.
//! * [`stream`]: the WebSocket stream with subscriptions and snapshots,
//!   authenticated by [`tickets`] or a first `auth` message.
//! * [`request_id`]: the HTTP request id every appended event records.
//! * [`retention`]: deletes old events in the background.
//!
//! The event types and payloads, and both stream protocols, are documented
//! once, in `docs/events.md`.

pub mod bus;
pub mod feed;
pub mod pump;
pub mod request_id;
pub mod retention;
pub mod sse;
pub mod stream;
pub mod tickets;

pub use bus::{BusEvent, EventBus};
