//! Trusted issuers' keys, kept current: the adapter around the I/O-free trust set.
//!
//! Each `[[issuers]]` entry has its last good key set, fetched in the background every
//! `refresh_interval` and, when a token names a `kid` nobody has, at most once per
//! `refetch_cooldown` (concurrent checks share that one fetch). A failing or hanging
//! endpoint never empties the set: its keys stay in use until `max_stale` after the last
//! successful fetch (measured on gatehouse's clock), after which the trust set marks them
//! unusable and the core answers that issuer's tokens 503. A check waits for a refetch at most
//! its own budget, never a dead endpoint's timeout.

mod fetch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use fetch::{FetchError, MAX_BODY_BYTES};

use crate::clock::Clock;
use crate::config::{Config, TrustedIssuerConfig};
use crate::keys::VerificationKeys;
use crate::tokens::{TrustSet, TrustedIssuer, VerifyPolicy};

/// Why the trusted issuers could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("HTTP client for trusted issuer {issuer}: {source}")]
    Client {
        issuer: String,
        source: reqwest::Error,
    },
}

/// Every trusted issuer with its current keys, and the trust set built from them.
#[derive(Debug)]
pub struct TrustedIssuers {
    /// gatehouse's own issuer and keys, when it issues tokens, with the revision of the key
    /// ring they were taken from.
    own: RwLock<Option<(u64, TrustedIssuer)>>,
    /// The revision in `own`, read without a lock on every check.
    own_revision: AtomicU64,
    remotes: Vec<Remote>,
    clock: Arc<dyn Clock>,
    current: RwLock<Arc<TrustSet>>,
    /// Held while the trust set is rebuilt, so that two installs never lose one another.
    rebuilding: Mutex<()>,
}

/// One `[[issuers]]` entry.
#[derive(Debug)]
struct Remote {
    config: TrustedIssuerConfig,
    policy: VerifyPolicy,
    fetcher: fetch::Fetcher,
    /// The last good keys and when they were fetched (gatehouse clock, Unix seconds).
    loaded: RwLock<Option<(Arc<VerificationKeys>, i64)>>,
    /// Serialises fetches, so an older answer never replaces a newer one.
    fetching: tokio::sync::Mutex<()>,
    /// Present while a refetch ran within the cooldown; `get_with` makes concurrent refetches
    /// share one fetch.
    refetched: moka::future::Cache<(), ()>,
}

impl TrustedIssuers {
    /// The own issuer (if any) and every `[[issuers]]` entry, none of whose keys is loaded yet.
    pub fn new(
        own: Option<TrustedIssuer>,
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, JwksError> {
        let mut remotes = Vec::with_capacity(config.issuers.len());
        for trusted in &config.issuers {
            let fetcher = fetch::Fetcher::new(trusted).map_err(|source| JwksError::Client {
                issuer: trusted.issuer.clone(),
                source,
            })?;
            remotes.push(Remote {
                policy: trusted.verify_policy(&config.tokens),
                config: trusted.clone(),
                fetcher,
                loaded: RwLock::new(None),
                fetching: tokio::sync::Mutex::new(()),
                refetched: moka::future::Cache::builder()
                    .max_capacity(1)
                    .time_to_live(trusted.refetch_cooldown())
                    .build(),
            });
        }
        let issuers = Self {
            own: RwLock::new(own.map(|own| (0, own))),
            own_revision: AtomicU64::new(0),
            remotes,
            clock,
            current: RwLock::new(Arc::new(TrustSet::default())),
            rebuilding: Mutex::new(()),
        };
        issuers.rebuild();
        Ok(issuers)
    }

    /// The trust set to verify with now.
    pub fn trust_set(&self) -> Arc<TrustSet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// gatehouse's own issuer and keys, when it issues tokens.
    pub fn own(&self) -> Option<TrustedIssuer> {
        self.own_entry().map(|(_, own)| own)
    }

    fn own_entry(&self) -> Option<(u64, TrustedIssuer)> {
        match self.own.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts the own issuer's keys of ring revision `revision` in the trust set, unless that
    /// revision (or a later one) is already there.
    pub fn set_own_keys(&self, revision: u64, keys: Arc<VerificationKeys>) {
        if self.own_revision.load(Ordering::Acquire) >= revision {
            return;
        }
        let _rebuilding = self
            .rebuilding
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        {
            let mut own = self
                .own
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match own.as_mut() {
                Some((installed, issuer)) if *installed < revision => {
                    *installed = revision;
                    issuer.keys = Some(keys);
                }
                _ => return,
            }
        }
        self.install();
        // Published once the trust set holds the keys, so that no check skips ahead of it.
        self.own_revision.store(revision, Ordering::Release);
    }

    /// Whether every trusted issuer's keys have been loaded at least once.
    pub fn ready(&self) -> bool {
        self.remotes.iter().all(|remote| remote.loaded().is_some())
    }

    /// How long a check may wait for a refetch: its budget, and never longer than a fetch.
    pub fn refetch_wait(&self, budget: Option<Duration>) -> Duration {
        let longest = self
            .remotes
            .iter()
            .map(|remote| remote.config.fetch_timeout())
            .max()
            .unwrap_or(Duration::ZERO);
        budget.map_or(longest, |budget| budget.min(longest))
    }

    /// Fetches every issuer's keys again, except those refetched within their cooldown, and
    /// waits at most `wait` for the fetches, which go on in the background after that.
    pub async fn refetch(self: &Arc<Self>, wait: Duration) {
        let mut fetches = Vec::new();
        for index in 0..self.remotes.len() {
            if self.remotes[index].refetched.contains_key(&()) {
                continue;
            }
            let issuers = Arc::clone(self);
            // A task of its own, so that a check giving up never cancels the shared fetch.
            fetches.push(tokio::spawn(async move {
                let remote = &issuers.remotes[index];
                remote
                    .refetched
                    .get_with((), async {
                        match issuers.refresh(index).await {
                            Ok(keys) => tracing::info!(
                                issuer = %remote.config.issuer,
                                keys,
                                "issuer keys refetched for an unknown kid"
                            ),
                            Err(error) => tracing::debug!(
                                issuer = %remote.config.issuer,
                                error = %error,
                                "issuer keys refetch failed"
                            ),
                        }
                    })
                    .await;
            }));
        }
        if fetches.is_empty() {
            return;
        }
        let all = async {
            for fetch in fetches {
                let _ = fetch.await;
            }
        };
        let _ = tokio::time::timeout(wait, all).await;
    }

    /// Starts one background refresh loop per trusted issuer; each ends when `stopped` turns.
    pub fn spawn_refresh(self: &Arc<Self>, stopped: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        (0..self.remotes.len())
            .map(|index| tokio::spawn(refresh_loop(Arc::clone(self), index, stopped.clone())))
            .collect()
    }

    /// One fetch of issuer `index`; on success its keys replace the previous ones.
    async fn refresh(&self, index: usize) -> Result<usize, FetchError> {
        let remote = &self.remotes[index];
        let _serialised = remote.fetching.lock().await;
        let fetched = remote.fetcher.fetch().await;
        crate::metrics::jwks_fetch(&remote.config.issuer, fetched.is_ok());
        let (keys, skipped) = fetched?;
        if skipped > 0 {
            tracing::debug!(
                issuer = %remote.config.issuer,
                skipped,
                "issuer key set members skipped"
            );
        }
        let count = keys.len();
        let loaded = Some((Arc::new(keys), self.clock.now()));
        match remote.loaded.write() {
            Ok(mut guard) => *guard = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
        self.rebuild();
        Ok(count)
    }

    /// Rebuilds the trust set from the own issuer and every remote's last good keys.
    fn rebuild(&self) {
        let _rebuilding = self
            .rebuilding
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.install();
    }

    /// Builds and installs the trust set; the caller holds `rebuilding`.
    fn install(&self) {
        let mut issuers: Vec<TrustedIssuer> = self.own().into_iter().collect();
        for remote in &self.remotes {
            let loaded = remote.loaded();
            issuers.push(TrustedIssuer {
                policy: remote.policy.clone(),
                honoured_until: loaded.as_ref().map(|(_, fetched_at)| {
                    fetched_at.saturating_add_unsigned(remote.config.max_stale_seconds)
                }),
                keys: loaded.map(|(keys, _)| keys),
            });
        }
        let set = Arc::new(TrustSet::new(issuers));
        match self.current.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }
}

impl Remote {
    fn loaded(&self) -> Option<(Arc<VerificationKeys>, i64)> {
        match self.loaded.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Fetches issuer `index`'s keys now and then every refresh interval; after a failure it
/// retries sooner (1 s, doubling, at most the cooldown or the interval).
async fn refresh_loop(
    issuers: Arc<TrustedIssuers>,
    index: usize,
    mut stopped: watch::Receiver<bool>,
) {
    let remote = &issuers.remotes[index];
    let issuer = remote.config.issuer.as_str();
    let mut failures: u32 = 0;
    let mut loaded_once = false;
    loop {
        let result = tokio::select! {
            result = issuers.refresh(index) => result,
            _ = stopped.changed() => return,
        };
        let wait = match result {
            Ok(keys) => {
                if failures > 0 || !loaded_once {
                    tracing::info!(issuer, keys, "issuer keys loaded");
                } else {
                    tracing::debug!(issuer, keys, "issuer keys refreshed");
                }
                loaded_once = true;
                failures = 0;
                remote.config.refresh_interval()
            }
            Err(error) => {
                if failures == 0 {
                    tracing::warn!(issuer, error = %error, "issuer keys fetch failed");
                }
                failures = failures.saturating_add(1);
                let ceiling = remote
                    .config
                    .refresh_interval()
                    .min(remote.config.refetch_cooldown());
                Duration::from_secs(1u64 << failures.min(16).saturating_sub(1)).min(ceiling)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
    }
}
