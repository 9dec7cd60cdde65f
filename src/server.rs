//! Wiring: open the store, load the key, keep the snapshot current, run both listeners.

mod grant_cache;
mod token_cache;

pub use grant_cache::{GrantCache, LookupError};
pub use token_cache::{TOKEN_CACHE_CAPACITY, TokenCache};

use std::path::Path;
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
use crate::issuer::Issuer;
use crate::jwks::TrustedIssuers;
use crate::keys::{JwkSet, KeyError, SigningKey, VerificationKeys};
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
    /// The public keys served at `/jwks`; `None` when decide-only.
    pub jwks: Option<JwkSet>,
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

/// Reads the signing key, generating and persisting it (mode 0600) when the file is missing.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, StartError> {
    let shown = path.display().to_string();
    let file_error = |source| StartError::KeyFile {
        path: shown.clone(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(pem) => SigningKey::from_pem(&pem).map_err(|source| StartError::Key {
            path: shown.clone(),
            source,
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate().map_err(|source| StartError::Key {
                path: shown.clone(),
                source,
            })?;
            let pem = key.to_pem().map_err(|source| StartError::Key {
                path: shown.clone(),
                source,
            })?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(file_error)?;
            }
            write_private(path, pem.expose()).map_err(file_error)?;
            tracing::info!(key.kid = key.kid(), "signing key generated");
            Ok(key)
        }
        Err(error) => Err(file_error(error)),
    }
}

/// Reads an extra verification key: a `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC
/// KEY` PEM, or a PKCS#8 `PRIVATE KEY` PEM of which only the public half is kept. Never
/// generated: a missing file is an error.
fn load_public_key(path: &Path) -> Result<crate::keys::Jwk, StartError> {
    use aws_lc_rs::signature::KeyPair as _;
    let shown = path.display().to_string();
    let rejected = || StartError::Key {
        path: shown.clone(),
        source: KeyError::Rejected,
    };
    let text = std::fs::read_to_string(path).map_err(|source| StartError::KeyFile {
        path: shown.clone(),
        source,
    })?;
    let parsed = pem::parse(&text).map_err(|_| rejected())?;
    let public = match parsed.tag() {
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {
            aws_lc_rs::rsa::PublicKey::from_der(parsed.contents()).map_err(|_| rejected())?
        }
        "PRIVATE KEY" => {
            let pair =
                aws_lc_rs::rsa::KeyPair::from_pkcs8(parsed.contents()).map_err(|_| rejected())?;
            pair.public_key().clone()
        }
        _ => return Err(rejected()),
    };
    let encode = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let n = encode(public.modulus().big_endian_without_leading_zero());
    let e = encode(public.exponent().big_endian_without_leading_zero());
    if public.modulus_len() < 256 {
        return Err(rejected());
    }
    Ok(crate::keys::Jwk {
        kty: "RSA".into(),
        kid: crate::keys::thumbprint(&n, &e),
        usage: "sig".into(),
        alg: "RS256".into(),
        n,
        e,
    })
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
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
            Some(own_issuer(&config, &store, &clock)?)
        } else {
            None
        };
        let (issuer, jwks, own) = match own {
            Some((issuer, jwks, trusted)) => (Some(issuer), Some(jwks), Some(trusted)),
            None => (None, None, None),
        };
        let keys = Arc::new(TrustedIssuers::new(own, &config, clock.clone())?);
        let snapshot = build_snapshot(store.snapshot().await?)?;
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
            jwks,
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

    /// Re-reads the snapshot if the store's generation moved; returns whether it did.
    pub async fn reload(&self) -> Result<bool, StoreError> {
        let generation = self.store.generation().await?;
        if generation == self.snapshot().generation {
            return Ok(false);
        }
        let snapshot = Arc::new(build_snapshot(self.store.snapshot().await?)?);
        match self.snapshot.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
        self.grant_cache.clear();
        Ok(true)
    }

    /// A trust set of gatehouse's own issuer alone (`None` when decide-only): the admin API
    /// accepts only tokens gatehouse minted.
    pub fn own_trust_set(&self) -> Option<crate::tokens::TrustSet> {
        let own = self.keys.own()?.clone();
        Some(crate::tokens::TrustSet::new(vec![own]))
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
        let trust = self.keys.trust_set();
        let now = self.clock.now();
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

/// The embedded issuer: the signing key (loaded or created), its `/jwks`, and its place in
/// the trust set, whose keys never go stale.
fn own_issuer(
    config: &Config,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
) -> Result<(Issuer, JwkSet, TrustedIssuer), StartError> {
    let key = load_or_create_key(&config.keys.signing_key_path)?;
    let mut jwks = JwkSet {
        keys: vec![key.jwk().clone()],
    };
    // Published and trusted, never signing: the rotation overlap on either side.
    for path in &config.keys.extra_public_keys {
        let jwk = load_public_key(path)?;
        if jwks.keys.iter().all(|known| known.kid != jwk.kid) {
            jwks.keys.push(jwk);
        }
    }
    let keys = VerificationKeys::from_jwks(&jwks).map_err(|source| StartError::Key {
        path: config.keys.signing_key_path.display().to_string(),
        source,
    })?;
    let issuer = Issuer {
        settings: config.issuer_settings(),
        store: store.clone(),
        key: Arc::new(key),
        clock: clock.clone(),
    };
    let trusted = TrustedIssuer {
        policy: config.own_verify_policy(),
        keys: Some(Arc::new(keys)),
        honoured_until: None,
    };
    Ok((issuer, jwks, trusted))
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

/// Keeps the snapshot current: reloads on the store's change notification when it has one,
/// and polls the generation every `every` regardless, which bounds staleness when a
/// notification is lost.
/// The longest one snapshot reload may take before the loop gives up on it.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

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
