//! Storage behind one trait, with one implementation per database.
//!
//! The check path reads a [`SnapshotData`] (resources and permission versions) when the
//! store's generation changes, and asks [`Store::grant_exists`] only for tokens that defer to
//! the database. Everything else serves `/token` and administration.

pub mod codes;
mod fingerprint;
mod keys;
pub mod postgres;
mod secrets;
pub mod sqlite;
mod throttle;
pub mod tokens;

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

pub use codes::CodeStore;
pub use fingerprint::{SubjectRow, SubjectState, VersionWrite, fingerprint, plan_versions};
pub use keys::{KeyPlan, KeyStore, KeyStoreError};
pub use secrets::{RotatedSecret, SecretStore};
pub use throttle::{FailureRecord, ThrottleKey, ThrottleKind, ThrottlePolicy, ThrottleStore};
pub use tokens::TokenStore;

use crate::catalogue::Subject;
use crate::policy::{ClientKind, GrantType, PolicyFile, RouteSpec};
use crate::resources::Resource;
use crate::secret::Secret;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable, failing or too slow: callers fail closed with 503.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database URL or schema is not usable.
    #[error("store misconfigured: {0}")]
    Config(String),
    /// Stored data violates an invariant (for example a template that no longer parses).
    #[error("stored data is inconsistent: {0}")]
    Inconsistent(String),
}

/// A client as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    pub kind: ClientKind,
    pub secret_hash: Option<Vec<u8>>,
    /// The secret a rotation replaced, while its grace period lasts.
    pub previous_secret: Option<PreviousSecret>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    /// Exact redirect URIs for the authorization_code grant.
    pub redirect_uris: Vec<String>,
    pub disabled: bool,
    pub version: u64,
}

/// A replaced client secret's hash and when it stops verifying (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub hash: Vec<u8>,
    pub expires_at: i64,
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub username: String,
    pub password_hash: Option<Secret>,
    pub disabled: bool,
    pub version: u64,
}

/// What the check path's in-memory snapshot is built from.
#[derive(Debug, Clone, Default)]
pub struct SnapshotData {
    pub generation: i64,
    pub policy_id: String,
    pub resources: Vec<Resource>,
    /// Current permission version of every live, enabled subject.
    pub versions: Vec<(Subject, u64)>,
    /// The route table, in order.
    pub routes: Vec<RouteSpec>,
    /// `jti` of every access token listed as revoked.
    pub revoked_jtis: Vec<String>,
}

/// Credentials prepared for a client the store may not have yet; used only if it is new.
#[derive(Debug, Clone)]
pub struct PreparedClient {
    pub name: String,
    pub id: String,
    pub secret: Option<Secret>,
    pub secret_hash: Option<Vec<u8>>,
}

/// What an apply changed.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// Clients created by this apply, with their one-time secrets.
    pub created_clients: Vec<PreparedClient>,
    /// Subjects whose permission version was bumped.
    pub bumped: Vec<Subject>,
    pub generation: i64,
}

/// A grant of a role to a subject, for listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub subject: Subject,
    pub role: String,
}

/// Counters the tests and metrics read.
#[derive(Debug, Default)]
pub struct StoreStats {
    grant_queries: AtomicU64,
}

impl StoreStats {
    /// Records one database-path query.
    pub fn count_grant_query(&self) {
        self.grant_queries.fetch_add(1, Ordering::Relaxed);
    }

    /// Database-path queries so far.
    pub fn grant_queries(&self) -> u64 {
        self.grant_queries.load(Ordering::Relaxed)
    }
}

/// A subject from its stored `(kind, id)`.
pub(crate) fn subject_from(kind: &str, id: String) -> Result<Subject, StoreError> {
    match kind {
        "account" => Ok(Subject::Account(id)),
        "client" => Ok(Subject::Client(id)),
        other => Err(StoreError::Inconsistent(format!(
            "unknown subject kind {other}"
        ))),
    }
}

/// A replaced secret from its stored columns; both are set or neither counts.
pub(crate) fn previous_secret(
    hash: Option<Vec<u8>>,
    expires_at: Option<i64>,
) -> Option<PreviousSecret> {
    match (hash, expires_at) {
        (Some(hash), Some(expires_at)) => Some(PreviousSecret { hash, expires_at }),
        _ => None,
    }
}

/// Groups `(role, resource)` rows, ordered by role, into each role with its resources; a role
/// without resources arrives as `(role, None)`.
pub(crate) fn group_roles(rows: Vec<(String, Option<String>)>) -> Vec<(String, Vec<String>)> {
    let mut roles: Vec<(String, Vec<String>)> = Vec::new();
    for (role, resource) in rows {
        if roles.last().is_none_or(|(last, _)| *last != role) {
            roles.push((role, Vec::new()));
        }
        if let (Some(resource), Some((_, resources))) = (resource, roles.last_mut()) {
            resources.push(resource);
        }
    }
    roles
}

/// Grant rows from stored `(subject kind, subject id, role)` triples.
pub(crate) fn grant_rows(rows: Vec<(String, String, String)>) -> Result<Vec<GrantRow>, StoreError> {
    rows.into_iter()
        .map(|(kind, id, role)| {
            Ok(GrantRow {
                subject: subject_from(&kind, id)?,
                role,
            })
        })
        .collect()
}

/// The storage every backend implements.
#[async_trait]
pub trait Store:
    CodeStore + TokenStore + ThrottleStore + SecretStore + KeyStore + Send + Sync + std::fmt::Debug
{
    /// A number that changes whenever anything the check path depends on changes.
    async fn generation(&self) -> Result<i64, StoreError>;

    /// The generation and `key`'s failure record, read together (one round trip where the
    /// backend can), the generation no later than the record.
    async fn generation_and_throttle_state(
        &self,
        key: &ThrottleKey,
    ) -> Result<(i64, Option<FailureRecord>), StoreError> {
        let generation = self.generation().await?;
        Ok((generation, self.throttle_state(key).await?))
    }

    /// Resources and permission versions for the in-memory snapshot.
    async fn snapshot(&self) -> Result<SnapshotData, StoreError>;

    /// The client with this id.
    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;

    /// The account with this username.
    async fn account(&self, username: &str) -> Result<Option<AccountRecord>, StoreError>;

    /// Every resource the subject holds a grant on, ordered by id.
    async fn granted_resources(&self, subject: &Subject) -> Result<Vec<Resource>, StoreError>;

    /// Whether the subject holds a grant on at least one of `candidates`, decided in one query.
    async fn grant_exists(
        &self,
        subject: &Subject,
        candidates: &[String],
    ) -> Result<bool, StoreError>;

    /// Makes the store equal to `policy` in one transaction, bumping the permission version of
    /// every subject whose effective permissions changed.
    async fn apply(
        &self,
        policy: &PolicyFile,
        prepared: &[PreparedClient],
    ) -> Result<ApplyReport, StoreError>;

    /// Names of the clients that exist.
    async fn client_names(&self) -> Result<Vec<String>, StoreError>;

    /// Every client, ordered by name.
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;

    /// Every account, ordered by username.
    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;

    /// Every role with its resource ids.
    async fn list_roles(&self) -> Result<Vec<(String, Vec<String>)>, StoreError>;

    /// Every grant.
    async fn list_grants(&self) -> Result<Vec<GrantRow>, StoreError>;

    /// Wakes the reload loop early when any process changes the policy (the value is the new
    /// generation). `None` when the backend cannot tell: polling alone then bounds staleness,
    /// as it also does when a notification is lost.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        None
    }

    /// Query counters.
    fn stats(&self) -> &StoreStats;
}
