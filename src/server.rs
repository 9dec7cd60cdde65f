//! Wiring: open the store, load the key, keep the snapshot current, run both listeners.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::catalogue::{Catalogue, PolicySnapshot, Versions};
use crate::check::{AccessRequest, CheckSettings, Context, Step, evaluate};
use crate::clock::Clock;
use crate::config::Config;
use crate::decision::Checked;
use crate::issuer::Issuer;
use crate::keys::{JwkSet, KeyError, SigningKey, VerificationKeys};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The state every adapter shares.
#[derive(Debug)]
pub struct Gatehouse {
    pub config: Config,
    pub settings: CheckSettings,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub issuer: Issuer,
    pub jwks: JwkSet,
    keys: VerificationKeys,
    snapshot: RwLock<Arc<PolicySnapshot>>,
}

/// Opens the store named by the configuration.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqliteStore::connect(&config.store.url).await?))
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
    let catalogue = Catalogue::new(data.resources)
        .map_err(|error| StoreError::Inconsistent(error.to_string()))?;
    Ok(PolicySnapshot {
        generation: data.generation,
        policy_id: data.policy_id,
        catalogue,
        versions: Versions::new(data.versions.into_iter().collect()),
    })
}

impl Gatehouse {
    /// Builds the shared state: store open and migrated, key loaded, first snapshot read.
    pub async fn new(config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Self>, StartError> {
        config.validate()?;
        let store = open_store(&config).await?;
        let key = load_or_create_key(&config.keys.signing_key_path)?;
        let jwks = JwkSet {
            keys: vec![key.jwk().clone()],
        };
        let keys = VerificationKeys::from_jwks(&jwks).map_err(|source| StartError::Key {
            path: config.keys.signing_key_path.display().to_string(),
            source,
        })?;
        let snapshot = build_snapshot(store.snapshot().await?)?;
        let issuer = Issuer {
            settings: config.issuer_settings(),
            store: store.clone(),
            key: Arc::new(key),
            clock: clock.clone(),
        };
        Ok(Arc::new(Self {
            settings: config.check_settings(),
            config,
            store,
            clock,
            issuer,
            jwks,
            keys,
            snapshot: RwLock::new(Arc::new(snapshot)),
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
        Ok(true)
    }

    /// Decides one request; a database-path question waits at most `budget` (and the
    /// configured query timeout), then fails closed.
    pub async fn check(&self, request: &AccessRequest<'_>, budget: Option<Duration>) -> Checked {
        let snapshot = self.snapshot();
        let context = Context {
            keys: &self.keys,
            snapshot: &snapshot,
            settings: &self.settings,
            now: self.clock.now(),
        };
        match evaluate(request, &context) {
            Step::Done(checked) => checked,
            Step::Lookup(lookup) => {
                let mut wait = Duration::from_millis(self.config.store.query_timeout_ms);
                if let Some(budget) = budget {
                    wait = wait.min(budget);
                }
                let started = Instant::now();
                let query = self.store.grant_exists(&lookup.subject, &lookup.candidates);
                let answer = match tokio::time::timeout(wait, query).await {
                    Ok(Ok(granted)) => Some(granted),
                    Ok(Err(error)) => {
                        tracing::warn!(error = %error, "grant lookup failed");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(
                            waited_ms = started.elapsed().as_millis() as u64,
                            "grant lookup timed out"
                        );
                        None
                    }
                };
                lookup.finish(answer)
            }
        }
    }
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

    let (shutdown, stopped) = watch::channel(false);
    let tasks = vec![
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

/// Keeps the snapshot current by polling the store's generation.
async fn reload_loop(
    gatehouse: Arc<Gatehouse>,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
        match gatehouse.reload().await {
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
    }
}
