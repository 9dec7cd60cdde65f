//! The SQLite store: the embedded, zero-set-up default.

mod apply;
mod keys;
mod secrets;
mod throttle;
mod tokens;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqlitePool};

use super::{
    AccountRecord, ApplyReport, ClientRecord, FailureRecord, GrantRow, PreparedClient,
    SnapshotData, Store, StoreError, StoreStats, ThrottleKey, grant_rows, group_roles,
    previous_secret, subject_from,
};
use crate::catalogue::Subject;
use crate::policy::{ClientKind, GrantType, PolicyFile, RouteSpec};
use crate::resources::Resource;
use crate::secret::Secret;

/// A store on one SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    stats: StoreStats,
}

super::codes::impl_code_store!(SqliteStore);

fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::Config(error.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|error| StoreError::Config(error.to_string()))?;
        Ok(Self {
            pool,
            stats: StoreStats::default(),
        })
    }
}

fn resource_from(row: &SqliteRow) -> Result<Resource, sqlx::Error> {
    Ok(Resource {
        id: row.try_get("id")?,
        kind: row.try_get("type")?,
        name: row.try_get("name")?,
        action: row.try_get("action")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
    })
}

fn client_from(row: &SqliteRow) -> Result<ClientRecord, StoreError> {
    let get = |error: sqlx::Error| StoreError::Inconsistent(error.to_string());
    let kind = match row.try_get::<String, _>("kind").map_err(get)?.as_str() {
        "confidential" => ClientKind::Confidential,
        _ => ClientKind::Public,
    };
    let words = |column: &str| -> Result<Vec<String>, StoreError> {
        let text: String = row.try_get(column).map_err(get)?;
        Ok(text.split_whitespace().map(str::to_owned).collect())
    };
    Ok(ClientRecord {
        id: row.try_get("id").map_err(get)?,
        name: row.try_get("name").map_err(get)?,
        kind,
        secret_hash: row.try_get("secret_hash").map_err(get)?,
        previous_secret: previous_secret(
            row.try_get("previous_secret_hash").map_err(get)?,
            row.try_get("previous_secret_expires_at").map_err(get)?,
        ),
        grant_types: words("grant_types")?
            .iter()
            .filter_map(|word| GrantType::parse(word))
            .collect(),
        scopes: words("scopes")?,
        redirect_uris: words("redirect_uris")?,
        disabled: row.try_get("disabled").map_err(get)?,
        version: row
            .try_get::<Option<i64>, _>("version")
            .map_err(get)?
            .unwrap_or(0) as u64,
    })
}

fn account_from(row: &SqliteRow) -> Result<AccountRecord, StoreError> {
    let get = |error: sqlx::Error| StoreError::Inconsistent(error.to_string());
    Ok(AccountRecord {
        username: row.try_get("username").map_err(get)?,
        password_hash: row
            .try_get::<Option<String>, _>("password_hash")
            .map_err(get)?
            .map(Secret::new),
        disabled: row.try_get("disabled").map_err(get)?,
        version: row
            .try_get::<Option<i64>, _>("version")
            .map_err(get)?
            .unwrap_or(0) as u64,
    })
}

const CLIENT_COLUMNS: &str = "SELECT c.id, c.name, c.kind, c.secret_hash, c.grant_types, c.scopes, \
     c.redirect_uris, c.disabled, c.previous_secret_hash, c.previous_secret_expires_at, \
     v.version FROM clients c LEFT JOIN permission_versions v \
     ON v.subject_kind = 'client' AND v.subject_id = c.id";

const ACCOUNT_COLUMNS: &str = "SELECT a.username, a.password_hash, a.disabled, v.version \
     FROM accounts a LEFT JOIN permission_versions v \
     ON v.subject_kind = 'account' AND v.subject_id = a.username";

#[async_trait]
impl Store for SqliteStore {
    async fn generation(&self) -> Result<i64, StoreError> {
        let value: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'generation'")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        value
            .parse()
            .map_err(|_| StoreError::Inconsistent("generation is not a number".into()))
    }

    async fn generation_and_throttle_state(
        &self,
        key: &ThrottleKey,
    ) -> Result<(i64, Option<FailureRecord>), StoreError> {
        throttle::generation_and_state(&self.pool, key).await
    }

    async fn snapshot(&self) -> Result<SnapshotData, StoreError> {
        // One read transaction, so resources and versions belong to the same generation.
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let meta: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM meta")
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
        let resources = sqlx::query(
            "SELECT id, type, name, action, url, description FROM resources ORDER BY id",
        )
        .try_map(|row: SqliteRow| resource_from(&row))
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT 'account', a.username, v.version FROM accounts a \
             JOIN permission_versions v ON v.subject_kind = 'account' AND v.subject_id = a.username \
             WHERE a.disabled = 0 \
             UNION ALL \
             SELECT 'client', c.id, v.version FROM clients c \
             JOIN permission_versions v ON v.subject_kind = 'client' AND v.subject_id = c.id \
             WHERE c.disabled = 0",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let routes: Vec<(Option<String>, String, String, Option<String>)> =
            sqlx::query_as("SELECT host, path, type, name FROM routes ORDER BY position")
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?;
        let revoked_jtis = tokens::revoked_jtis(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;

        let mut data = SnapshotData {
            resources,
            routes: routes
                .into_iter()
                .map(|(host, path, kind, name)| RouteSpec {
                    host,
                    path,
                    kind,
                    name,
                })
                .collect(),
            revoked_jtis,
            ..SnapshotData::default()
        };
        for (key, value) in meta {
            match key.as_str() {
                "generation" => data.generation = value.parse().unwrap_or(0),
                "policy_id" => data.policy_id = value,
                _ => {}
            }
        }
        for (kind, id, version) in rows {
            data.versions
                .push((subject_from(&kind, id)?, version as u64));
        }
        Ok(data)
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query(&format!("{CLIENT_COLUMNS} WHERE c.id = ?1"))
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(client_from).transpose()
    }

    async fn account(&self, username: &str) -> Result<Option<AccountRecord>, StoreError> {
        let row = sqlx::query(&format!("{ACCOUNT_COLUMNS} WHERE a.username = ?1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(account_from).transpose()
    }

    async fn granted_resources(&self, subject: &Subject) -> Result<Vec<Resource>, StoreError> {
        sqlx::query(
            "SELECT DISTINCT r.id, r.type, r.name, r.action, r.url, r.description \
             FROM subject_grants g \
             JOIN role_resources rr ON rr.role_id = g.role_id \
             JOIN resources r ON r.id = rr.resource_id \
             WHERE g.subject_kind = ?1 AND g.subject_id = ?2 ORDER BY r.id",
        )
        .bind(subject.kind())
        .bind(subject.id())
        .try_map(|row: SqliteRow| resource_from(&row))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)
    }

    async fn grant_exists(
        &self,
        subject: &Subject,
        candidates: &[String],
    ) -> Result<bool, StoreError> {
        self.stats.count_grant_query();
        // The candidate ids travel as one bound JSON array: one statement, exact equality.
        let candidates = serde_json::to_string(candidates)
            .map_err(|error| StoreError::Inconsistent(error.to_string()))?;
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM subject_grants g \
             JOIN role_resources rr ON rr.role_id = g.role_id \
             WHERE g.subject_kind = ?1 AND g.subject_id = ?2 \
             AND rr.resource_id IN (SELECT value FROM json_each(?3)))",
        )
        .bind(subject.kind())
        .bind(subject.id())
        .bind(candidates)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)
    }

    async fn apply(
        &self,
        policy: &PolicyFile,
        prepared: &[PreparedClient],
    ) -> Result<ApplyReport, StoreError> {
        apply::apply(&self.pool, policy, prepared).await
    }

    async fn client_names(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT name FROM clients ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = sqlx::query(&format!("{CLIENT_COLUMNS} ORDER BY c.name"))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(client_from).collect()
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let rows = sqlx::query(&format!("{ACCOUNT_COLUMNS} ORDER BY a.username"))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(account_from).collect()
    }

    async fn list_roles(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT r.id, rr.resource_id FROM roles r \
             LEFT JOIN role_resources rr ON rr.role_id = r.id ORDER BY r.id, rr.resource_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(group_roles(rows))
    }

    async fn list_grants(&self) -> Result<Vec<GrantRow>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT subject_kind, subject_id, role_id FROM subject_grants ORDER BY 1, 2, 3",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        grant_rows(rows)
    }

    fn stats(&self) -> &StoreStats {
        &self.stats
    }
}
