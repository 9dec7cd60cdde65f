//! Administration shared by the CLI (and, later, an HTTP API): apply, inspect, rotate secrets.

pub mod keys;

use std::collections::HashSet;

use crate::credentials::{generate_client_id, generate_client_secret, hash_client_secret};
use crate::policy::{ClientKind, PolicyError, PolicyFile};
use crate::secret::Secret;
use crate::store::{ApplyReport, PreparedClient, Store, StoreError};

/// Why an administrative action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no client named {0}")]
    UnknownClient(String),
    #[error("client {0} is public: it has no secret to rotate")]
    PublicClient(String),
}

/// A rotated client secret: the new secret is shown this once.
#[derive(Debug)]
pub struct Rotation {
    pub client_id: String,
    pub secret: Secret,
    /// Until when (Unix seconds) the previous secret is still accepted; `None`: no longer.
    pub previous_expires_at: Option<i64>,
    /// The client's permission version now: its older tokens are stale.
    pub version: u64,
    pub generation: i64,
}

/// Validates `text` as a policy and applies it atomically. New clients get a generated id and,
/// when confidential, a generated secret, returned once in the report.
pub async fn apply(store: &dyn Store, text: &str) -> Result<ApplyReport, AdminError> {
    let policy = PolicyFile::from_yaml(text)?;
    let existing: HashSet<String> = store.client_names().await?.into_iter().collect();
    let prepared: Vec<PreparedClient> = policy
        .clients
        .iter()
        .filter(|client| !existing.contains(&client.name))
        .map(|client| {
            let id = generate_client_id();
            let (secret, secret_hash) = match client.kind {
                ClientKind::Confidential => {
                    let secret = generate_client_secret();
                    let hash = hash_client_secret(&id, secret.expose());
                    (Some(secret), Some(hash))
                }
                ClientKind::Public => (None, None),
            };
            PreparedClient {
                name: client.name.clone(),
                id,
                secret,
                secret_hash,
            }
        })
        .collect();
    Ok(store.apply(&policy, &prepared).await?)
}

/// Gives the confidential client `name` a new generated secret (256 bits, stored only as its
/// hash). The previous secret keeps working for `grace_seconds` after `now` (0: not at all);
/// the client's permission version moves on, so every token it holds, and every token a
/// person obtained through it, is stale on every replica within the reload bound.
pub async fn rotate_client_secret(
    store: &dyn Store,
    name: &str,
    grace_seconds: i64,
    now: i64,
) -> Result<Rotation, AdminError> {
    let client = store
        .list_clients()
        .await?
        .into_iter()
        .find(|client| client.name == name)
        .ok_or_else(|| AdminError::UnknownClient(name.to_owned()))?;
    if client.kind != ClientKind::Confidential {
        return Err(AdminError::PublicClient(name.to_owned()));
    }
    let secret = generate_client_secret();
    let hash = hash_client_secret(&client.id, secret.expose());
    let previous_expires_at = (grace_seconds > 0).then(|| now + grace_seconds);
    let rotated = store
        .rotate_client_secret(&client.id, &hash, previous_expires_at)
        .await?
        // Removed (or re-created) between the lookup and the rotation.
        .ok_or_else(|| AdminError::UnknownClient(name.to_owned()))?;
    Ok(Rotation {
        client_id: client.id,
        secret,
        previous_expires_at,
        version: rotated.version,
        generation: rotated.generation,
    })
}
