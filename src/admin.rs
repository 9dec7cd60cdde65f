//! Administration shared by the CLI (and, later, an HTTP API): apply and inspect.

pub mod keys;

use std::collections::HashSet;

use crate::credentials::{generate_client_id, generate_client_secret, hash_client_secret};
use crate::policy::{ClientKind, PolicyError, PolicyFile};
use crate::store::{ApplyReport, PreparedClient, Store, StoreError};

/// Why an administrative action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
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
