//! gatehouse: an Envoy external-authorization service with an embedded OAuth 2.0 issuer.
//!
//! The crate is layered so that the decision core can be compiled without any I/O:
//!
//! - domain: [`clock`], [`decision`], [`resources`], [`path`], [`tokens`], [`keys`],
//!   [`keyring`], [`catalogue`], [`check`], [`policy`], [`issuer`], [`credentials`] — no
//!   tokio, tonic, axum or sqlx;
//! - storage: [`store`], a trait with a SQLite and a Postgres implementation;
//! - protocol adapters: [`grpc`] (Envoy ext_authz v3) and [`http`] (`/token`, `/jwks`);
//! - key fetching: [`jwks`] keeps trusted issuers' keys current (reqwest, moka);
//! - observability: [`metrics`], recorded by the adapters and served at `/metrics`;
//! - wiring: [`config`], [`server`], [`admin`].

pub mod admin;
pub mod catalogue;
pub mod check;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod decision;
pub mod grpc;
pub mod http;
pub mod issuer;
pub mod jwks;
pub mod keyring;
pub mod keys;
pub mod metrics;
pub mod path;
pub mod policy;
pub mod resources;
pub mod secret;
pub mod server;
pub mod store;
pub mod tokens;
