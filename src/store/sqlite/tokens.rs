//! Refresh families and revoked access tokens on SQLite.
//!
//! Writers take SQLite's one write lock with their first statement (the busy timeout queues
//! them), so a rotation's conditional update sees every rotation committed before it.

use async_trait::async_trait;
use sqlx::{Sqlite, SqliteConnection, Transaction};

use super::{SqliteStore, unavailable};
use crate::policy::PolicyFile;
use crate::store::StoreError;
use crate::store::subject_from;
use crate::store::tokens::{
    NewFamily, NewRefresh, REVOCATION_MARGIN_SECONDS, RefreshHash, RefreshRecord, TokenStore,
};

/// One row of `find_refresh`.
type RefreshRow = (String, String, String, String, String, i64, i64, bool, bool);

#[async_trait]
impl TokenStore for SqliteStore {
    async fn start_family(&self, family: &NewFamily, first: &NewRefresh) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // Opportunistic purge: a family past its absolute lifetime can never be used again.
        sqlx::query("DELETE FROM refresh_families WHERE expires_at < ?1")
            .bind(family.created_at)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO refresh_families (id, client_id, subject_kind, subject_id, scope, \
             created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&family.id)
        .bind(&family.client_id)
        .bind(family.subject.kind())
        .bind(family.subject.id())
        .bind(&family.scope)
        .bind(family.created_at)
        .bind(family.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        insert_refresh(&mut tx, first).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn find_refresh(&self, hash: &RefreshHash) -> Result<Option<RefreshRecord>, StoreError> {
        let row: Option<RefreshRow> = sqlx::query_as(
            "SELECT f.id, f.client_id, f.subject_kind, f.subject_id, f.scope, t.expires_at, \
             f.expires_at, t.used_at IS NOT NULL, f.revoked_at IS NOT NULL \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
             WHERE t.hash = ?1",
        )
        .bind(hash.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(record).transpose()
    }

    async fn rotate_refresh(
        &self,
        used: &RefreshHash,
        successor: &NewRefresh,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let marked = sqlx::query(
            "UPDATE refresh_tokens SET used_at = ?1 \
             WHERE hash = ?2 AND used_at IS NULL AND expires_at > ?1 \
             AND family_id = ?3 AND EXISTS (SELECT 1 FROM refresh_families f \
             WHERE f.id = ?3 AND f.revoked_at IS NULL AND f.expires_at > ?1)",
        )
        .bind(successor.issued_at)
        .bind(used.as_slice())
        .bind(&successor.family_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if marked != 1 {
            // Lost a race, or the token was used, expired or revoked meanwhile.
            tx.rollback().await.map_err(unavailable)?;
            return Ok(false);
        }
        insert_refresh(&mut tx, successor).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let revoked = sqlx::query(
            "UPDATE refresh_families SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if revoked == 0 {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(false);
        }
        let listed = sqlx::query(
            "INSERT OR IGNORE INTO revoked_access_tokens (jti, expires_at) \
             SELECT access_jti, access_expires_at FROM refresh_tokens \
             WHERE family_id = ?1 AND access_jti IS NOT NULL AND access_expires_at > ?2",
        )
        .bind(family_id)
        .bind(now - REVOCATION_MARGIN_SECONDS)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if listed > 0 {
            next_generation(&mut tx).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn revoke_access(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at <= ?1")
            .bind(now - REVOCATION_MARGIN_SECONDS)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let listed = sqlx::query(
            "INSERT OR IGNORE INTO revoked_access_tokens (jti, expires_at) VALUES (?1, ?2)",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if listed > 0 {
            next_generation(&mut tx).await?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn access_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = ?1)")
            .bind(jti)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }
}

fn record(row: RefreshRow) -> Result<RefreshRecord, StoreError> {
    let (family_id, client_id, kind, id, scope, expires_at, family_expires_at, used, revoked) = row;
    Ok(RefreshRecord {
        family_id,
        client_id,
        subject: subject_from(&kind, id)?,
        scope,
        expires_at,
        family_expires_at,
        used,
        revoked,
    })
}

async fn insert_refresh(
    tx: &mut Transaction<'static, Sqlite>,
    token: &NewRefresh,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, family_id, issued_at, expires_at, access_jti, \
         access_expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(token.hash.as_slice())
    .bind(&token.family_id)
    .bind(token.issued_at)
    .bind(token.expires_at)
    .bind(token.access_jti.as_deref())
    .bind(token.access_expires_at)
    .execute(&mut **tx)
    .await
    .map_err(unavailable)?;
    Ok(())
}

async fn next_generation(tx: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'",
    )
    .execute(tx)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// The revoked access tokens for the snapshot.
pub(super) async fn revoked_jtis(tx: &mut SqliteConnection) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar("SELECT jti FROM revoked_access_tokens ORDER BY jti")
        .fetch_all(tx)
        .await
        .map_err(unavailable)
}

/// Inside `apply`, before anything is written: revokes the refresh families that a security
/// event ends — an account removed, disabled or given another password; a client removed or
/// disabled. A plain grant change revokes nothing: a refresh reads the current grants.
pub(super) async fn revoke_on_security_events(
    tx: &mut Transaction<'static, Sqlite>,
    policy: &PolicyFile,
) -> Result<(), StoreError> {
    let json = |value: serde_json::Value| value.to_string();
    let accounts = json(
        policy
            .accounts
            .iter()
            .map(|a| serde_json::json!([a.username, a.disabled, a.password_hash]))
            .collect(),
    );
    let live_clients = json(
        policy
            .clients
            .iter()
            .filter(|c| !c.disabled)
            .map(|c| serde_json::Value::from(c.name.as_str()))
            .collect(),
    );
    sqlx::query(
        "WITH declared AS (SELECT json_extract(value, '$[0]') AS username, \
         json_extract(value, '$[1]') AS disabled, json_extract(value, '$[2]') AS password_hash \
         FROM json_each(?1)) \
         UPDATE refresh_families SET revoked_at = unixepoch() \
         WHERE revoked_at IS NULL AND ( \
           (subject_kind = 'account' AND ( \
             subject_id NOT IN (SELECT username FROM declared) \
             OR subject_id IN (SELECT username FROM declared WHERE disabled) \
             OR subject_id IN (SELECT a.username FROM accounts a JOIN declared d \
               ON d.username = a.username WHERE d.password_hash IS NOT NULL \
               AND a.password_hash IS NOT d.password_hash))) \
           OR client_id NOT IN (SELECT id FROM clients \
             WHERE name IN (SELECT value FROM json_each(?2))))",
    )
    .bind(accounts)
    .bind(live_clients)
    .execute(&mut **tx)
    .await
    .map_err(unavailable)?;
    Ok(())
}
