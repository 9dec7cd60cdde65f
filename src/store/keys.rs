//! The issuer's signing keys in the store: one row per key with its schedule, its public half
//! as published, and its private half sealed under the key-encryption key (never in the clear).
//!
//! Every change goes through [`KeyStore::change_signing_keys`]: the backend takes the same
//! write lock `apply` takes, reads the keys, lets a plan from [`crate::keyring`] decide, writes
//! the changes and bumps the generation in one transaction, so concurrent processes (replicas
//! creating the first key together, two rotations) never act on a stale key set, and every
//! replica reloads its ring as it reloads its policy.

use async_trait::async_trait;

use super::StoreError;
use crate::keyring::{KeyChange, KeyRecord, KeyTimes, KeyringError};
use crate::keys::Jwk;

/// Decides the changes to make, given every stored key.
pub type KeyPlan<'a> =
    dyn Fn(&[KeyRecord]) -> Result<Vec<KeyChange>, KeyringError> + Send + Sync + 'a;

/// Why a key change was not made.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The plan refused (an unknown key, the only key).
    #[error(transparent)]
    Refused(#[from] KeyringError),
}

/// Signing-key storage, implemented by every backend.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every stored key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Runs `plan` on the stored keys under the store's write lock and writes what it decides,
    /// bumping the generation (and notifying the other processes) when anything changed. Returns
    /// the changes written.
    async fn change_signing_keys(
        &self,
        plan: &KeyPlan<'_>,
    ) -> Result<Vec<KeyChange>, KeyStoreError>;
}

/// One stored row: kid, sealed private key, public JWK (JSON), created, published, signing
/// from, retiring, dropped.
pub(crate) type KeyRow = (
    String,
    Vec<u8>,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

/// The columns of [`KeyRow`], in order.
pub(crate) const KEY_COLUMNS: &str =
    "kid, private_key, public_jwk, created_at, publish_at, sign_from, retire_at, drop_at";

/// A record from its row.
pub(crate) fn record_from(row: KeyRow) -> Result<KeyRecord, StoreError> {
    let (kid, sealed, public, created_at, publish_at, sign_from, retire_at, drop_at) = row;
    let public: Jwk = serde_json::from_str(&public)
        .map_err(|_| StoreError::Inconsistent(format!("signing key {kid}: unreadable JWK")))?;
    if public.kid != kid {
        return Err(StoreError::Inconsistent(format!(
            "signing key {kid}: JWK names another kid"
        )));
    }
    Ok(KeyRecord {
        kid,
        times: KeyTimes {
            created_at,
            publish_at,
            sign_from,
            retire_at,
            drop_at,
        },
        public,
        sealed,
    })
}

/// The public JWK of a record as stored.
pub(crate) fn public_json(record: &KeyRecord) -> Result<String, StoreError> {
    serde_json::to_string(&record.public)
        .map_err(|error| StoreError::Inconsistent(error.to_string()))
}
