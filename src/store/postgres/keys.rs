//! Signing keys on Postgres: a change locks the `meta` row first, as `apply` does, so
//! processes on one database change keys (and policy) one at a time, and the generation bump
//! is announced with `pg_notify`, delivered only if the transaction commits.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use super::{CHANNEL, PostgresStore, unavailable};
use crate::keyring::{KeyChange, KeyRecord};
use crate::store::StoreError;
use crate::store::keys::{
    KEY_COLUMNS, KeyPlan, KeyRow, KeyStore, KeyStoreError, public_json, record_from,
};

async fn read_keys(executor: impl sqlx::PgExecutor<'_>) -> Result<Vec<KeyRecord>, StoreError> {
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, sign_from, kid"
    ))
    .fetch_all(executor)
    .await
    .map_err(unavailable)?;
    rows.into_iter().map(record_from).collect()
}

async fn write(
    tx: &mut Transaction<'static, Postgres>,
    change: &KeyChange,
) -> Result<(), StoreError> {
    let query = match change {
        KeyChange::Insert(record) => sqlx::query(
            "INSERT INTO signing_keys (kid, private_key, public_jwk, created_at, publish_at, \
             sign_from, retire_at, drop_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
            "UPDATE signing_keys SET publish_at = $2, sign_from = $3, retire_at = $4, \
             drop_at = $5 WHERE kid = $1",
        )
        .bind(kid)
        .bind(times.publish_at)
        .bind(times.sign_from)
        .bind(times.retire_at)
        .bind(times.drop_at),
        KeyChange::Delete { kid } => {
            sqlx::query("DELETE FROM signing_keys WHERE kid = $1").bind(kid)
        }
    };
    query.execute(&mut **tx).await.map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        read_keys(&self.pool).await
    }

    async fn change_signing_keys(
        &self,
        plan: &KeyPlan<'_>,
    ) -> Result<Vec<KeyChange>, KeyStoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // Replicas starting together on an empty database wait here for one another: the
        // second reads the first one's key and plans nothing.
        sqlx::query("SELECT generation FROM meta FOR UPDATE")
            .execute(&mut *tx)
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
        let generation: i64 =
            sqlx::query_scalar("UPDATE meta SET generation = generation + 1 RETURNING generation")
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(generation.to_string())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(changes)
    }
}
