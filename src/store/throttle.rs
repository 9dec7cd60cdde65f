//! Failed-authentication counters, kept in the store so that every replica sees the same
//! ones (RFC 6749 §2.3.1 and §10.10: brute force against client secrets and passwords).
//!
//! A key is a client id or a username, known or not. Each failure within `window_seconds` of
//! the previous one (or of the end of the last lock) adds one; from `max_failures` on, each
//! failure locks the key for 1 s, then 2 s, 4 s, … up to `max_lockout_seconds`. A success
//! removes the key's row.

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::StoreError;

/// Longest key id stored as given; longer ones are stored as their SHA-256, so a request
/// cannot make the table store arbitrary amounts of text.
const MAX_KEY_ID_BYTES: usize = 128;

/// The brute-force policy, fixed by configuration (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures within the window that lock the key.
    pub max_failures: u32,
    /// How long a failure is remembered after the last failure or lock.
    pub window_seconds: i64,
    /// The longest lock; locks start at 1 s and double from there.
    pub max_lockout_seconds: i64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window_seconds: 900,
            max_lockout_seconds: 900,
        }
    }
}

impl ThrottlePolicy {
    /// How long the key is locked after its `failures`-th failure in a row (0: not locked).
    pub fn lockout(&self, failures: u32) -> i64 {
        if failures < self.max_failures {
            return 0;
        }
        let doublings = (failures - self.max_failures).min(30);
        (1_i64 << doublings).min(self.max_lockout_seconds)
    }
}

/// What a key's failures are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleKind {
    /// A client id presented with HTTP Basic.
    Client,
    /// A username presented with a password.
    Account,
}

impl ThrottleKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleKind::Client => "client",
            ThrottleKind::Account => "account",
        }
    }
}

/// One counter: a kind and the id as presented (whether or not such a client or account
/// exists, so that throttling itself tells nothing about existence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKey {
    pub kind: ThrottleKind,
    pub id: String,
}

impl ThrottleKey {
    /// The counter of a client id.
    pub fn client(client_id: &str) -> Self {
        Self::new(ThrottleKind::Client, client_id)
    }

    /// The counter of a username.
    pub fn account(username: &str) -> Self {
        Self::new(ThrottleKind::Account, username)
    }

    fn new(kind: ThrottleKind, id: &str) -> Self {
        let id = if id.len() <= MAX_KEY_ID_BYTES {
            id.to_owned()
        } else {
            let digest = Sha256::digest(id.as_bytes());
            let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("sha256:{hex}")
        };
        Self { kind, id }
    }
}

/// A key's standing failures, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRecord {
    /// Failures in a row within the window.
    pub failures: u32,
    /// Unix seconds until which every attempt is refused (0: never locked).
    pub locked_until: i64,
}

impl FailureRecord {
    /// Seconds the key stays locked at `now`, if it is locked.
    pub fn locked_for(&self, now: i64) -> Option<i64> {
        (self.locked_until > now).then(|| self.locked_until - now)
    }
}

/// Failure counters shared by every replica on the store.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// The key's record, if it has one: one primary-key read.
    async fn throttle_state(&self, key: &ThrottleKey) -> Result<Option<FailureRecord>, StoreError>;

    /// Counts one failure at `now` in one atomic statement and returns the record it left:
    /// concurrent failures on several replicas are all counted.
    async fn record_failure(
        &self,
        key: &ThrottleKey,
        now: i64,
        policy: &ThrottlePolicy,
    ) -> Result<FailureRecord, StoreError>;

    /// Forgets the key's failures (after a success).
    async fn clear_failures(&self, key: &ThrottleKey) -> Result<(), StoreError>;

    /// Deletes every record that no longer counts at `now`; returns how many.
    async fn prune_failures(&self, now: i64) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_starts_at_one_second_and_doubles_up_to_the_cap() {
        let policy = ThrottlePolicy::default();
        let locks: Vec<i64> = (1..=16).map(|n| policy.lockout(n)).collect();
        assert_eq!(
            locks,
            [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
        );
        assert_eq!(policy.lockout(u32::MAX), 900);
    }

    #[test]
    fn long_key_ids_are_stored_as_digests() {
        assert_eq!(ThrottleKey::account("alice").id, "alice");
        let long = ThrottleKey::account(&"x".repeat(10_000));
        assert!(long.id.starts_with("sha256:"));
        assert_eq!(long.id.len(), "sha256:".len() + 64);
        assert_ne!(long, ThrottleKey::account(&"x".repeat(10_001)));
        assert_ne!(ThrottleKey::client("a"), ThrottleKey::account("a"));
    }
}
