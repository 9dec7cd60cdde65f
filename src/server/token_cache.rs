//! Verified-token cache: the RSA signature and claim checks of a token are done once, and
//! later checks presenting the same token reuse the result.
//!
//! Only what verification proved is kept (the token's claims), never a decision: every hit
//! still goes through the whole decision core, staleness against the current policy snapshot
//! included, so a permission change is honoured exactly as without the cache. An entry is
//! keyed by the SHA-256 of the whole token string, is used only while the trust set it was
//! verified against is the current one, never at or after the token's `exp` (nor past the
//! time its issuer's keys are honoured until), and never before the time it was verified (a
//! clock moved back verifies again). Failures are never cached.

use std::sync::{Arc, Weak};
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use moka::sync::Cache;

use crate::tokens::{TokenError, TrustSet, VerifiedToken, verify};

/// How many verified tokens are kept; the oldest unused are evicted first.
pub const TOKEN_CACHE_CAPACITY: u64 = 100_000;

/// Verified tokens by the SHA-256 of the token string.
#[derive(Debug)]
pub struct TokenCache {
    entries: Cache<[u8; 32], Arc<Entry>>,
}

/// One verified token and the conditions under which it may be reused.
#[derive(Debug)]
struct Entry {
    token: Arc<VerifiedToken>,
    /// The trust set that verified it; `Weak` keeps the allocation, so the address is never
    /// reused by a later trust set while the entry lives.
    trust: Weak<TrustSet>,
    /// Unix seconds: usable from (the time it was verified) …
    verified_at: i64,
    /// … until strictly before this (`exp`, or the keys' honoured-until time if earlier).
    usable_until: f64,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens.
    pub fn new(capacity: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(capacity)
            .expire_after(UntilExpiry)
            .build();
        Self { entries }
    }

    /// Verifies `token` against `trust` at `now`, or returns the verified claims of an earlier
    /// verification that is still valid.
    pub fn verify(
        &self,
        token: &str,
        trust: &Arc<TrustSet>,
        now: i64,
    ) -> Result<Arc<VerifiedToken>, TokenError> {
        let key = key(token);
        if let Some(entry) = self.entries.get(&key) {
            let same_trust = std::ptr::eq(entry.trust.as_ptr(), Arc::as_ptr(trust));
            if same_trust && now >= entry.verified_at && (now as f64) < entry.usable_until {
                return Ok(entry.token.clone());
            }
        }
        let verified = Arc::new(verify(token, trust, now)?);
        let keys_until = trust
            .issuers()
            .iter()
            .filter_map(|issuer| issuer.honoured_until)
            .min()
            // Keys are usable while now <= until.
            .map_or(f64::INFINITY, |until| until as f64 + 1.0);
        let usable_until = verified.expires_at.min(keys_until);
        if (now as f64) < usable_until {
            self.entries.insert(
                key,
                Arc::new(Entry {
                    token: verified.clone(),
                    trust: Arc::downgrade(trust),
                    verified_at: now,
                    usable_until,
                }),
            );
        }
        Ok(verified)
    }

    /// Forgets every token (tests and key changes; never needed for correctness).
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// How many tokens are cached.
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn key(token: &str) -> [u8; 32] {
    let mut key = [0; 32];
    key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    key
}

/// Drops an entry from memory once its token has expired (by the system clock; whether an
/// entry may be used is decided by the gatehouse clock in [`TokenCache::verify`]).
struct UntilExpiry;

impl moka::Expiry<[u8; 32], Arc<Entry>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        entry: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let left = entry.usable_until - entry.verified_at as f64;
        Some(Duration::from_secs_f64(left.clamp(0.0, 86_400.0)))
    }
}
