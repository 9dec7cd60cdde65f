//! Wiring: open the store, load the signing keys, keep the snapshot and the keys current, run
//! both listeners.

mod grant_cache;
mod signing;
mod token_cache;

pub use grant_cache::{GrantCache, LookupError};
pub use signing::{OwnKeys, read_encryption_key};
pub use token_cache::{TOKEN_CACHE_CAPACITY, TokenCache};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::catalogue::{Catalogue, PolicySnapshot, RevokedTokens, RouteTable, Versions};
use crate::check::{AccessRequest, CheckSettings, Context, Step, evaluate_with};
use crate::clock::Clock;
use crate::config::Config;
use crate::decision::Checked;
use crate::issuer::{Issuer, IssuerCache};
use crate::jwks::TrustedIssuers;
use crate::keys::{JwkSet, KeyError, SigningKey};
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::tokens::TrustedIssuer;

/// Why gatehouse could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("signing key {path}: {source}")]
    Key { path: String, source: KeyError },
    #[error("signing key {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    /// The key-encryption key file is missing, unreadable, malformed or not the one the stored
    /// keys were sealed with.
    #[error("encryption key {path}: {problem}")]
    EncryptionKey { path: String, problem: String },
    #[error("signing keys: {0}")]
    SigningKeys(KeyError),
    #[error(transparent)]
    Issuers(#[from] crate::jwks::JwksError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Whether gatehouse can decide, reported by `/readyz` and `grpc.health.v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// A trusted issuer's keys have never loaded.
    KeysNotLoaded,
    /// The store did not answer the reload loop's last round.
    StoreUnavailable,
}

/// The state every adapter shares.
#[derive(Debug)]
pub struct Gatehouse {
    pub config: Config,
    pub settings: CheckSettings,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The token endpoint's logic; `None` when decide-only (`[issuer] enabled = false`).
    pub issuer: Option<Issuer>,
    /// The issuer's signing keys, served at `/jwks`; `None` when decide-only.
    pub own_keys: Option<OwnKeys>,
    /// Every trusted issuer's keys (gatehouse's own among them when it issues).
    keys: Arc<TrustedIssuers>,
    snapshot: RwLock<Arc<PolicySnapshot>>,
    /// Database-path answers.
    pub grant_cache: GrantCache,
    /// Tokens whose signature and claims were verified (never decisions).
    pub token_cache: TokenCache,
    /// Whether the store answered the reload loop's last round.
    store_healthy: AtomicBool,
    /// Whether [`Gatehouse::readiness`] is `Ready`, published for the gRPC health service.
    ready: watch::Sender<bool>,
}

/// Opens the store named by the configuration: the URL scheme picks the backend.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let url = &config.store.url;
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        // A pool connection that cannot be had within the query budget is an outage.
        let acquire_timeout = Duration::from_millis(config.store.query_timeout_ms);
        return Ok(Arc::new(
            PostgresStore::connect(url, acquire_timeout).await?,
        ));
    }
    Ok(Arc::new(SqliteStore::connect(url).await?))
}

fn build_snapshot(data: crate::store::SnapshotData) -> Result<PolicySnapshot, StoreError> {
    let inconsistent =
        |error: crate::resources::TemplateError| StoreError::Inconsistent(error.to_string());
    Ok(PolicySnapshot {
        generation: data.generation,
        policy_id: data.policy_id,
        catalogue: Catalogue::new(data.resources).map_err(inconsistent)?,
        versions: Versions::new(data.versions.into_iter().collect()),
        routes: RouteTable::new(data.routes).map_err(inconsistent)?,
        revoked: RevokedTokens::new(data.revoked_jtis),
    })
}

impl Gatehouse {
    /// Builds the shared state: store open and migrated, key loaded, first snapshot read.
    pub async fn new(config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Self>, StartError> {
        config.validate()?;
        let store = open_store(&config).await?;
        let own = if config.issuer.enabled {
            Some(while_starting(|| own_issuer(&config, &store, &clock)).await?)
        } else {
            None
        };
        let (issuer, own_keys, own) = match own {
            Some((issuer, own_keys, trusted)) => (Some(issuer), Some(own_keys), Some(trusted)),
            None => (None, None, None),
        };
        let keys = Arc::new(TrustedIssuers::new(own, &config, clock.clone())?);
        let snapshot =
            while_starting(|| async { Ok(build_snapshot(store.snapshot().await?)?) }).await?;
        let grant_cache = GrantCache::new(
            config.store.grant_cache_capacity,
            Duration::from_millis(config.store.grant_cache_ttl_ms),
        );
        Ok(Arc::new(Self {
            settings: config.check_settings(),
            config,
            store,
            clock,
            issuer,
            own_keys,
            keys,
            snapshot: RwLock::new(Arc::new(snapshot)),
            grant_cache,
            token_cache: TokenCache::new(TOKEN_CACHE_CAPACITY),
            // The first snapshot was just read: the store answers.
            store_healthy: AtomicBool::new(true),
            ready: watch::channel(false).0,
        }))
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        match self.snapshot.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the snapshot and the signing keys if the store's generation moved; returns
    /// whether it did. Signing keys past their `drop_at` are deleted from the store first.
    pub async fn reload(&self) -> Result<bool, StoreError> {
        if let Some(own) = &self.own_keys {
            own.delete_dropped(self.store.as_ref(), self.clock.now())
                .await?;
        }
        let generation = self.store.generation().await?;
        if generation == self.snapshot().generation {
            return Ok(false);
        }
        let snapshot = Arc::new(build_snapshot(self.store.snapshot().await?)?);
        if let Some(own) = &self.own_keys {
            own.reload(self.store.as_ref(), self.clock.now()).await?;
        }
        match self.snapshot.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
        self.grant_cache.clear();
        Ok(true)
    }

    /// Brings the own issuer's keys in the trust set up to date with the key ring at `now`.
    fn follow_own_keys(&self, now: i64) {
        if let Some(own) = &self.own_keys {
            let view = own.keys.view(now);
            self.keys
                .set_own_keys(view.revision, view.verification.clone());
        }
    }

    /// A trust set of gatehouse's own issuer alone (`None` when decide-only): the admin API
    /// accepts only tokens gatehouse minted.
    pub fn own_trust_set(&self) -> Option<crate::tokens::TrustSet> {
        self.follow_own_keys(self.clock.now());
        let own = self.keys.own()?;
        Some(crate::tokens::TrustSet::new(vec![own]))
    }

    /// What `/jwks` serves now, with its `max-age`; `None` when decide-only.
    pub fn jwks(&self) -> Option<(JwkSet, u64)> {
        let own = self.own_keys.as_ref()?;
        let now = self.clock.now();
        let view = own.keys.view(now);
        let max_age = view.max_age(now, self.config.keys.jwks_max_age_seconds);
        Some((view.jwks.clone(), max_age))
    }

    /// The key the issuer signs with now; `None` when decide-only or when no key may sign.
    pub fn signing_key(&self) -> Option<Arc<SigningKey>> {
        self.own_keys.as_ref()?.keys.signer(self.clock.now()).ok()
    }

    /// Whether every trusted issuer's keys have been loaded at least once.
    pub fn keys_ready(&self) -> bool {
        self.keys.ready()
    }

    /// Ready when every trusted issuer's keys have loaded once and the store answers (the own
    /// signing key is loaded before the listeners start).
    pub fn readiness(&self) -> Readiness {
        if !self.keys_ready() {
            Readiness::KeysNotLoaded
        } else if !self.store_healthy.load(Ordering::Relaxed) {
            Readiness::StoreUnavailable
        } else {
            Readiness::Ready
        }
    }

    /// Follows readiness as the reload loop sees it (`true` when ready).
    pub fn watch_ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Records the store's health and publishes the resulting readiness.
    fn set_store_healthy(&self, healthy: bool) {
        self.store_healthy.store(healthy, Ordering::Relaxed);
        let ready = self.readiness() == Readiness::Ready;
        self.ready.send_if_modified(|current| {
            let changed = *current != ready;
            *current = ready;
            changed
        });
    }

    /// Decides one request; a key refetch and a database-path question together wait at
    /// most `budget` (the latter also at most the configured query timeout), then fail closed.
    pub async fn check(&self, request: &AccessRequest<'_>, budget: Option<Duration>) -> Checked {
        let started = Instant::now();
        let snapshot = self.snapshot();
        let mut step = self.decide(request, &snapshot);
        if matches!(step, Step::Refetch(_)) {
            // An unknown kid, or keys unavailable: fetch again within the budget, then redo.
            self.keys.refetch(self.keys.refetch_wait(budget)).await;
            step = self.decide(request, &snapshot);
        }
        let budget = budget.map(|budget| budget.saturating_sub(started.elapsed()));
        match step {
            Step::Done(checked) | Step::Refetch(checked) => checked,
            Step::Lookup(lookup) => {
                let mut wait = Duration::from_millis(self.config.store.query_timeout_ms);
                if let Some(budget) = budget {
                    wait = wait.min(budget);
                }
                let answer = self
                    .grant_cache
                    .grant_exists(
                        &self.store,
                        snapshot.generation,
                        &lookup.subject,
                        &lookup.candidates,
                        wait,
                    )
                    .await;
                let answer = match answer {
                    Ok(granted) => Some(granted),
                    Err(error) => {
                        tracing::warn!(error = %error, "grant lookup failed");
                        None
                    }
                };
                lookup.finish(answer)
            }
        }
    }

    /// One pass of the decision core with the current trust set.
    fn decide(&self, request: &AccessRequest<'_>, snapshot: &PolicySnapshot) -> Step {
        let now = self.clock.now();
        self.follow_own_keys(now);
        let trust = self.keys.trust_set();
        let context = Context {
            trust: &trust,
            snapshot,
            settings: &self.settings,
            now,
        };
        evaluate_with(request, &context, |token| {
            self.token_cache.verify(token, &trust, now)
        })
    }
}

/// How long start-up keeps retrying a store that does not answer: pool connections are opened
/// on first use, each within the query timeout, which a database busy with replicas starting
/// together can exceed.
const STARTUP_RETRY: Duration = Duration::from_secs(10);

/// Runs `step` again while the store is unavailable, for at most [`STARTUP_RETRY`]. Only for
/// steps that may be repeated (reads, and key plans that see their own earlier success).
async fn while_starting<T, F, Fut>(mut step: F) -> Result<T, StartError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StartError>>,
{
    let deadline = Instant::now() + STARTUP_RETRY;
    loop {
        match step().await {
            Err(StartError::Store(StoreError::Unavailable(_))) if Instant::now() < deadline => {
                tracing::debug!("store not answering at start-up; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result => return result,
        }
    }
}

/// The embedded issuer: its signing keys (from the store, the first one created under the
/// store's lock), and its place in the trust set, whose keys never go stale.
async fn own_issuer(
    config: &Config,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
) -> Result<(Issuer, OwnKeys, TrustedIssuer), StartError> {
    let now = clock.now();
    let own = OwnKeys::load(config, store.as_ref(), now).await?;
    let view = own.keys.view(now);
    let issuer = Issuer {
        settings: config.issuer_settings(),
        store: store.clone(),
        key: own.keys.clone(),
        clock: clock.clone(),
        cache: IssuerCache::default(),
    };
    let trusted = TrustedIssuer {
        policy: config.own_verify_policy(),
        keys: Some(view.verification.clone()),
        honoured_until: None,
    };
    Ok((issuer, own, trusted))
}

/// A running gatehouse: its bound addresses and a way to stop it.
#[derive(Debug)]
pub struct Running {
    pub gatehouse: Arc<Gatehouse>,
    pub grpc_addr: std::net::SocketAddr,
    pub http_addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits for both listeners.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds both listeners and serves until [`Running::stop`].
pub async fn spawn(config: Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    let grpc_listener = bind(config.server.grpc_addr).await?;
    let http_listener = bind(config.server.http_addr).await?;
    let reload_every = Duration::from_millis(config.store.reload_interval_ms);
    let gatehouse = Gatehouse::new(config, clock).await?;
    let grpc_addr = local_addr(&grpc_listener, gatehouse.config.server.grpc_addr)?;
    let http_addr = local_addr(&http_listener, gatehouse.config.server.http_addr)?;

    gatehouse.set_store_healthy(true);
    let (shutdown, stopped) = watch::channel(false);
    let key_refresh = gatehouse.keys.spawn_refresh(&stopped);
    let mut tasks = vec![
        tokio::spawn(crate::grpc::serve(
            gatehouse.clone(),
            grpc_listener,
            stopped.clone(),
        )),
        tokio::spawn(crate::http::serve(
            gatehouse.clone(),
            http_listener,
            stopped.clone(),
        )),
        tokio::spawn(reload_loop(gatehouse.clone(), reload_every, stopped)),
    ];
    tasks.extend(key_refresh);
    tracing::info!(grpc.addr = %grpc_addr, http.addr = %http_addr, "gatehouse listening");
    Ok(Running {
        gatehouse,
        grpc_addr,
        http_addr,
        shutdown,
        tasks,
    })
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn local_addr(
    listener: &TcpListener,
    addr: std::net::SocketAddr,
) -> Result<std::net::SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })
}

/// The longest one snapshot reload may take before the loop gives up on it.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps the snapshot current: reloads on the store's change notification when it has one,
/// and polls the generation every `every` regardless, which bounds staleness when a
/// notification is lost.
async fn reload_loop(
    gatehouse: Arc<Gatehouse>,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut healthy = true;
    let mut changes = gatehouse.store.changes();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = next_change(&mut changes) => {}
            _ = stopped.changed() => return,
        }
        // A connection that goes silent mid-query must not stall the loop: each reload gets a
        // bounded time, and the next round tries again.
        let reload = tokio::time::timeout(RELOAD_TIMEOUT, gatehouse.reload()).await;
        let reload = reload.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "snapshot reload timed out",
            ))))
        });
        match reload {
            Ok(changed) => {
                if changed {
                    tracing::info!(
                        generation = gatehouse.snapshot().generation,
                        "policy snapshot reloaded"
                    );
                }
                if !healthy {
                    tracing::info!("store reachable again");
                }
                healthy = true;
            }
            Err(error) => {
                if healthy {
                    tracing::warn!(error = %error, "policy snapshot reload failed");
                }
                healthy = false;
            }
        }
        // Also picks up issuer keys that loaded since the last round.
        gatehouse.set_store_healthy(healthy);
    }
}

/// Resolves on the next change notification; never when there is none to wait for.
async fn next_change(changes: &mut Option<watch::Receiver<i64>>) {
    let Some(receiver) = changes.as_mut() else {
        return std::future::pending().await;
    };
    if receiver.changed().await.is_err() {
        // The notifier is gone: polling alone from now on.
        *changes = None;
    }
}
