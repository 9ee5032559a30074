//! The integration suite: one test binary, one module per area. Every test
//! boots the real hub on port 0 against its own fresh database (SQLite in a
//! temp dir, or a new Postgres database) and talks to it over real sockets.

mod agents;
mod api_auth;
mod api_batch;
mod api_context;
mod api_errors;
mod api_jobs;
mod bench;
mod cli;
mod cluster;
mod cluster_failover;
mod config;
mod crash;
mod db_restart;
mod deploy;
mod doctor;
mod events;
mod metrics;
mod monitor;
mod nul;
mod openapi;
mod reload;
mod store_contract;
mod traces;
mod webhooks;
mod wire_schema;
