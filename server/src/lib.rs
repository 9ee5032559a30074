//! Switchyard: a push-based coordination hub for software agents.
//!
//! The crate is both the hub library (used by the `switchyard` binary and the
//! integration tests) and its binary. One folder per concern:
//!
//! * [`domain`]: jobs, tasks, items, events and every status enum.
//! * [`store`]: the `Store` trait and its Postgres and SQLite implementations;
//!   all SQL lives there.
//! * [`http`]: the REST API, one file per resource.
//! * [`hub`]: the in-memory core: agent sessions, ready queues, the dispatcher.
//! * [`auth`]: JWT verification and roles.
//! * [`config`]: figment-merged, validated settings.
//! * [`server`]: start-up and graceful shutdown; [`reload`]: hot reload.

pub mod auth;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod events;
#[cfg(test)]
mod fuzz_support;
pub mod http;
pub mod hub;
pub mod reload;
pub mod report;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod webhooks;
pub mod wire_schema;

pub use server::Server;
