//! Client-secret rotation: a new secret hash, the previous one honoured for a grace period, and
//! the client's permission version bumped so that its older tokens are stale at once.

use async_trait::async_trait;

use super::StoreError;

/// What a rotation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedSecret {
    /// The client's permission version after the rotation.
    pub version: u64,
    /// The store generation after the rotation.
    pub generation: i64,
}

/// Client secrets as the store keeps them (only as hashes).
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Makes `secret_hash` the secret of the confidential client `client_id`, in one
    /// transaction: the replaced hash keeps verifying until `previous_expires_at` (never, when
    /// `None`), the client's permission version and the store generation move on, and (on
    /// Postgres) every replica is notified. `None` when no confidential client has that id.
    async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret_hash: &[u8],
        previous_expires_at: Option<i64>,
    ) -> Result<Option<RotatedSecret>, StoreError>;
}
