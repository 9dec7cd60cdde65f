//! gatehouse's integration tests: one binary, one module per area.
//!
//! Every test starts its own gatehouse on loopback ports with its own SQLite file; the
//! end-to-end tests also start a real Envoy from `envoy/envoy.yaml`.

// Integration tests may unwrap: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod apply;
mod check_path;
mod e2e_envoy;
mod interop;
mod log_secrets;
mod staleness;
mod token_endpoint;
mod verification;
