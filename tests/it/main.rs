//! gatehouse's integration tests: one binary, one module per area.
//!
//! Every test starts its own gatehouse on loopback ports with its own SQLite file, or its own
//! Postgres database for the `::postgres` runs (see `support::backend`); the end-to-end tests
//! also start a real Envoy from `envoy/envoy.yaml`.

// Integration tests may unwrap: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod apply;
mod check_path;
mod e2e_envoy;
mod interop;
mod issuers;
mod log_secrets;
mod outage;
mod replicas;
mod routes;
mod staleness;
mod token_endpoint;
mod verification;
