//! Signing keys on SQLite: `BEGIN IMMEDIATE` takes the database's write lock before the keys
//! are read, so processes sharing the file change them one at a time.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use super::{SqliteStore, unavailable};
use crate::keyring::{KeyChange, KeyRecord};
use crate::store::StoreError;
use crate::store::keys::{
    KEY_COLUMNS, KeyPlan, KeyRow, KeyStore, KeyStoreError, public_json, record_from,
};

async fn read_keys(executor: impl sqlx::SqliteExecutor<'_>) -> Result<Vec<KeyRecord>, StoreError> {
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, sign_from, kid"
    ))
    .fetch_all(executor)
    .await
    .map_err(unavailable)?;
    rows.into_iter().map(record_from).collect()
}

async fn write(
    tx: &mut Transaction<'static, Sqlite>,
    change: &KeyChange,
) -> Result<(), StoreError> {
    let query = match change {
        KeyChange::Insert(record) => sqlx::query(
            "INSERT INTO signing_keys (kid, private_key, public_jwk, created_at, publish_at, \
             sign_from, retire_at, drop_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(&record.kid)
        .bind(&record.sealed)
        .bind(public_json(record)?)
        .bind(record.times.created_at)
        .bind(record.times.publish_at)
        .bind(record.times.sign_from)
        .bind(record.times.retire_at)
        .bind(record.times.drop_at),
        KeyChange::Reschedule { kid, times } => sqlx::query(
            "UPDATE signing_keys SET publish_at = ?2, sign_from = ?3, retire_at = ?4, \
             drop_at = ?5 WHERE kid = ?1",
        )
        .bind(kid)
        .bind(times.publish_at)
        .bind(times.sign_from)
        .bind(times.retire_at)
        .bind(times.drop_at),
        KeyChange::Delete { kid } => {
            sqlx::query("DELETE FROM signing_keys WHERE kid = ?1").bind(kid)
        }
    };
    query.execute(&mut **tx).await.map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        read_keys(&self.pool).await
    }

    async fn change_signing_keys(
        &self,
        plan: &KeyPlan<'_>,
    ) -> Result<Vec<KeyChange>, KeyStoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let existing = read_keys(&mut *tx).await?;
        let changes = plan(&existing)?;
        if changes.is_empty() {
            return Ok(changes);
        }
        for change in &changes {
            write(&mut tx, change).await?;
        }
        sqlx::query(
            "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) \
             WHERE key = 'generation'",
        )
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(changes)
    }
}
