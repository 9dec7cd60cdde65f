//! Client-secret rotation on SQLite.

use async_trait::async_trait;

use super::{SqliteStore, apply, unavailable};
use crate::store::{RotatedSecret, SecretStore, StoreError};

#[async_trait]
impl SecretStore for SqliteStore {
    async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret_hash: &[u8],
        previous_expires_at: Option<i64>,
    ) -> Result<Option<RotatedSecret>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // With no grace the replaced hash is dropped, not kept with a past expiry.
        let updated = sqlx::query(
            "UPDATE clients SET \
             previous_secret_hash = CASE WHEN ?3 IS NULL THEN NULL ELSE secret_hash END, \
             previous_secret_expires_at = ?3, secret_hash = ?2 \
             WHERE id = ?1 AND kind = 'confidential'",
        )
        .bind(client_id)
        .bind(secret_hash)
        .bind(previous_expires_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }

        // The secret hash is part of the client's fingerprint: its version moves on here.
        apply::bump_versions(&mut tx).await?;
        let generation = apply::next_generation(&mut tx).await?;
        let version: i64 = sqlx::query_scalar(
            "SELECT version FROM permission_versions \
             WHERE subject_kind = 'client' AND subject_id = ?1",
        )
        .bind(client_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(RotatedSecret {
            version: version as u64,
            generation,
        }))
    }
}
