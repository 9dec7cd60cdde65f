//! gatehouse's integration tests: one binary, one module per area.
//!
//! Every test starts its own gatehouse on loopback ports with its own SQLite file, or its own
//! Postgres database for the `::postgres` runs (see `support::backend`); the end-to-end tests
//! also start a real Envoy from `envoy/envoy.yaml`.

// Integration tests may unwrap: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admin_api;
mod apply;
mod authlib;
mod authorize;
mod check_path;
mod decision_trail;
mod discovery;
mod durability;
mod e2e_envoy;
mod envoy_configs;
mod faults;
mod http_authz;
mod interop;
mod introspection;
mod issuers;
mod key_rotation;
mod key_store;
mod limits;
mod log_secrets;
mod operations;
mod outage;
mod packaging;
mod refresh;
mod replicas;
mod revocation;
mod routes;
mod secret_rotation;
mod staleness;
mod token_cache;
mod token_endpoint;
mod verification;
