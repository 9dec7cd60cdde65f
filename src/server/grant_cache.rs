//! The database path's answers, cached.
//!
//! Keys carry the policy generation, and every change to grants, roles, resources or subjects
//! moves the generation on, so a cached answer never outlives the permissions it was computed
//! from; the whole cache is also cleared when a new snapshot is loaded. Concurrent checks
//! asking the same question share one query, and failures are never cached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;

use crate::catalogue::Subject;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GrantKey {
    generation: i64,
    subject: Subject,
    candidates: Vec<String>,
}

/// Why a lookup produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("grant lookup timed out")]
    Timeout,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A bounded, time-limited cache of `grant_exists` answers.
#[derive(Debug)]
pub struct GrantCache {
    cache: Cache<GrantKey, bool>,
    lookups: AtomicU64,
    misses: AtomicU64,
}

impl GrantCache {
    /// A cache of at most `capacity` answers, each kept at most `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            lookups: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached answer, or one store query bounded by `wait`.
    pub async fn grant_exists(
        &self,
        store: &Arc<dyn Store>,
        generation: i64,
        subject: &Subject,
        candidates: &[String],
        wait: Duration,
    ) -> Result<bool, Arc<LookupError>> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let key = GrantKey {
            generation,
            subject: subject.clone(),
            candidates: candidates.to_vec(),
        };
        let mut queried = false;
        let answer = self
            .cache
            .try_get_with(key, async {
                queried = true;
                self.misses.fetch_add(1, Ordering::Relaxed);
                let answer =
                    match tokio::time::timeout(wait, store.grant_exists(subject, candidates)).await
                    {
                        Ok(answer) => answer.map_err(LookupError::from),
                        Err(_) => Err(LookupError::Timeout),
                    };
                crate::metrics::db_query(match &answer {
                    Ok(true) => "granted",
                    Ok(false) => "denied",
                    Err(LookupError::Timeout) => "timeout",
                    Err(LookupError::Store(_)) => "error",
                });
                answer
            })
            .await;
        // A check that joined another's query counts as a hit: it cost the store nothing.
        crate::metrics::grant_cache_lookup(!queried);
        answer
    }

    /// Forgets every answer.
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Lookups asked so far.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Lookups that went to the store so far.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}
