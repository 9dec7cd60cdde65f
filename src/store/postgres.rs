//! The Postgres store: one database shared by many gatehouse replicas.
//!
//! Same tables and meaning as the SQLite store (migrations under `migrations/postgres`), with
//! native types. `apply` serialises on the `meta` row and announces each new generation with
//! `NOTIFY gatehouse_policy`, which [`listen`] turns into an early wake-up of the reload loop.

mod apply;
mod keys;
mod listen;
mod secrets;
mod throttle;
mod tokens;

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row};
use tokio::sync::watch;

use super::{
    AccountRecord, ApplyReport, ClientRecord, FailureRecord, GrantRow, PreparedClient,
    SnapshotData, Store, StoreError, StoreStats, ThrottleKey, grant_rows, group_roles,
    previous_secret, subject_from,
};
use crate::catalogue::Subject;
use crate::policy::{ClientKind, GrantType, PolicyFile, RouteSpec};
use crate::resources::Resource;
use crate::secret::Secret;

/// The channel `apply` notifies with the new generation as payload.
pub const CHANNEL: &str = "gatehouse_policy";

/// How long opening the first connection (and running the migrations' lock) may take.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A store on one Postgres database.
pub struct PostgresStore {
    pool: PgPool,
    /// Kept for the change listener's own connection; holds the password, never printed.
    options: PgConnectOptions,
    /// How long a connection attempt may take (the pool's acquire timeout).
    acquire_timeout: Duration,
    listener: OnceLock<Option<listen::Listener>>,
    stats: StoreStats,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connect options carry the password: only the pool's shape is shown.
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish_non_exhaustive()
    }
}

super::codes::impl_code_store!(PostgresStore);

fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

impl PostgresStore {
    /// Connects to the database at `url`, runs the migrations, and opens a pool whose
    /// connection attempts give up after `acquire_timeout`, so that a database that is down
    /// costs each caller at most that long.
    pub async fn connect(url: &str, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::Config(error.to_string()))?
            .application_name("gatehouse");

        // Migrations run on one dedicated connection; sqlx serialises concurrent migrators
        // (replicas starting together) with an advisory lock.
        let mut connection =
            tokio::time::timeout(STARTUP_TIMEOUT, PgConnection::connect_with(&options))
                .await
                .map_err(|elapsed| StoreError::Unavailable(Box::new(elapsed)))?
                .map_err(unavailable)?;
        sqlx::migrate!("migrations/postgres")
            .run(&mut connection)
            .await
            .map_err(|error| StoreError::Config(error.to_string()))?;
        let _ = connection.close().await;

        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .acquire_timeout(acquire_timeout)
            .connect_lazy_with(options.clone());
        Ok(Self {
            pool,
            options,
            acquire_timeout,
            listener: OnceLock::new(),
            stats: StoreStats::default(),
        })
    }

    /// The connection pool, for tests and tools that need plain SQL.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn resource_from(row: &PgRow) -> Result<Resource, sqlx::Error> {
    Ok(Resource {
        id: row.try_get("id")?,
        kind: row.try_get("type")?,
        name: row.try_get("name")?,
        action: row.try_get("action")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
    })
}

fn client_from(row: &PgRow) -> Result<ClientRecord, StoreError> {
    let get = |error: sqlx::Error| StoreError::Inconsistent(error.to_string());
    let kind = match row.try_get::<String, _>("kind").map_err(get)?.as_str() {
        "confidential" => ClientKind::Confidential,
        _ => ClientKind::Public,
    };
    let grant_types: Vec<String> = row.try_get("grant_types").map_err(get)?;
    Ok(ClientRecord {
        id: row.try_get("id").map_err(get)?,
        name: row.try_get("name").map_err(get)?,
        kind,
        secret_hash: row.try_get("secret_hash").map_err(get)?,
        previous_secret: previous_secret(
            row.try_get("previous_secret_hash").map_err(get)?,
            row.try_get("previous_secret_expires_at").map_err(get)?,
        ),
        grant_types: grant_types
            .iter()
            .filter_map(|word| GrantType::parse(word))
            .collect(),
        scopes: row.try_get("scopes").map_err(get)?,
        redirect_uris: row.try_get("redirect_uris").map_err(get)?,
        disabled: row.try_get("disabled").map_err(get)?,
        version: row
            .try_get::<Option<i64>, _>("version")
            .map_err(get)?
            .unwrap_or(0) as u64,
    })
}

fn account_from(row: &PgRow) -> Result<AccountRecord, StoreError> {
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
impl Store for PostgresStore {
    async fn generation(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT generation FROM meta")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn generation_and_throttle_state(
        &self,
        key: &ThrottleKey,
    ) -> Result<(i64, Option<FailureRecord>), StoreError> {
        throttle::generation_and_state(&self.pool, key).await
    }

    async fn snapshot(&self) -> Result<SnapshotData, StoreError> {
        // One repeatable-read transaction, so resources and versions belong to the same
        // generation even while another process applies.
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let (generation, policy_id): (i64, String) =
            sqlx::query_as("SELECT generation, policy_id FROM meta")
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
        let resources = sqlx::query(
            "SELECT id, type, name, action, url, description FROM resources ORDER BY id",
        )
        .try_map(|row: PgRow| resource_from(&row))
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT 'account', a.username, v.version FROM accounts a \
             JOIN permission_versions v ON v.subject_kind = 'account' AND v.subject_id = a.username \
             WHERE NOT a.disabled \
             UNION ALL \
             SELECT 'client', c.id, v.version FROM clients c \
             JOIN permission_versions v ON v.subject_kind = 'client' AND v.subject_id = c.id \
             WHERE NOT c.disabled",
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
            generation,
            policy_id,
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
        for (kind, id, version) in rows {
            data.versions
                .push((subject_from(&kind, id)?, version as u64));
        }
        Ok(data)
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query(&format!("{CLIENT_COLUMNS} WHERE c.id = $1"))
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(client_from).transpose()
    }

    async fn account(&self, username: &str) -> Result<Option<AccountRecord>, StoreError> {
        let row = sqlx::query(&format!("{ACCOUNT_COLUMNS} WHERE a.username = $1"))
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
             WHERE g.subject_kind = $1 AND g.subject_id = $2 ORDER BY r.id",
        )
        .bind(subject.kind())
        .bind(subject.id())
        .try_map(|row: PgRow| resource_from(&row))
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
        // One statement, exact equality against a bound TEXT[]; both joins walk primary keys.
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM subject_grants g \
             JOIN role_resources rr ON rr.role_id = g.role_id \
             WHERE g.subject_kind = $1 AND g.subject_id = $2 \
             AND rr.resource_id = ANY($3))",
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

    fn changes(&self) -> Option<watch::Receiver<i64>> {
        // Started on first use, so one-shot commands (`apply`, `list`) open no listener.
        self.listener
            .get_or_init(|| listen::Listener::spawn(self.options.clone(), self.acquire_timeout))
            .as_ref()
            .map(listen::Listener::subscribe)
    }

    fn stats(&self) -> &StoreStats {
        &self.stats
    }
}
