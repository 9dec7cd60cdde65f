//! The issuer's key set over time: which key signs, which are published at `/jwks` and trusted
//! for verification, and for how long an answer may be cached.
//!
//! Every key carries a schedule ([`KeyTimes`]): it is published from `publish_at`, may sign
//! from `sign_from` until `retire_at`, and disappears at `drop_at`. A rotation publishes the
//! next key at once and lets it sign only after a lead at least as long as `/jwks` may be
//! cached, so every verifier has seen it before the first token it signs; the previous key
//! stays published until the last token it signed has expired. Everything here is a function
//! of the stored keys and the time it is handed; the store, the files and the clock are the
//! caller's.

mod live;
mod plan;

use std::cmp::Reverse;
use std::fmt;
use std::sync::Arc;

pub use live::SigningKeys;
pub use plan::{RotationSettings, drop_expired, drop_key, first_key, rotate};

use crate::keys::{Jwk, JwkSet, KeyEncryptionKey, KeyError, SigningKey, VerificationKeys};

/// The clock skew between gatehouses tolerated for a store's first key, in seconds: as much as
/// `[tokens] leeway_seconds` may ever allow.
pub const CLOCK_SKEW: i64 = 300;

/// Why a key-set change or a signature could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("no key {0} in the store")]
    UnknownKey(String),
    #[error("key {0} is the only key: rotate first, then drop it")]
    OnlyKey(String),
    #[error("no key may sign at this time")]
    NoSigner,
    #[error("the private half of signing key {0} could not be opened")]
    Unopened(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A key's schedule, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    pub created_at: i64,
    /// Published at `/jwks` and trusted for verification from here …
    pub publish_at: i64,
    /// … may sign from here …
    pub sign_from: i64,
    /// … until here (`None`: until a newer key signs) …
    pub retire_at: Option<i64>,
    /// … and is neither published nor trusted from here on (`None`: kept).
    pub drop_at: Option<i64>,
}

impl KeyTimes {
    /// The first key of a store, created at `now`: published and signing already, since no
    /// key came before it, and backdated by [`CLOCK_SKEW`] so that a replica whose clock is
    /// behind the one that created it signs with it too.
    pub fn first(now: i64) -> Self {
        let since = now.saturating_sub(CLOCK_SKEW);
        Self {
            created_at: now,
            publish_at: since,
            sign_from: since,
            retire_at: None,
            drop_at: None,
        }
    }

    /// The next key, created and published at `now`, signing from `sign_from`.
    pub fn next(now: i64, sign_from: i64) -> Self {
        Self {
            created_at: now,
            publish_at: now,
            sign_from,
            retire_at: None,
            drop_at: None,
        }
    }

    /// Whether the key has been dropped by `now`.
    pub fn dropped(&self, now: i64) -> bool {
        self.drop_at.is_some_and(|drop_at| drop_at <= now)
    }

    /// Whether the key is published (and trusted) at `now`.
    pub fn published(&self, now: i64) -> bool {
        self.publish_at <= now && !self.dropped(now)
    }

    /// Whether the key may sign at `now` (the newest such key does).
    pub fn may_sign(&self, now: i64) -> bool {
        self.sign_from <= now
            && self.retire_at.is_none_or(|retire_at| now < retire_at)
            && !self.dropped(now)
    }

    /// The scheduled instants, in no particular order.
    fn instants(&self) -> impl Iterator<Item = i64> {
        [self.publish_at, self.sign_from]
            .into_iter()
            .chain(self.retire_at)
            .chain(self.drop_at)
    }
}

/// One key as the store holds it: schedule, public half, and the private half sealed under
/// the key-encryption key. `Debug` prints the `kid` and the schedule only.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub kid: String,
    pub times: KeyTimes,
    pub public: Jwk,
    pub sealed: Vec<u8>,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("times", &self.times)
            .finish_non_exhaustive()
    }
}

impl KeyRecord {
    /// `key` sealed under `kek`, with the schedule `times`.
    pub fn seal(
        key: &SigningKey,
        kek: &KeyEncryptionKey,
        times: KeyTimes,
    ) -> Result<Self, KeyError> {
        Ok(Self {
            kid: key.kid().to_owned(),
            times,
            public: key.jwk().clone(),
            sealed: kek.seal(key)?,
        })
    }
}

/// A change to the stored key set: what a plan decides and the store writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    Insert(KeyRecord),
    Reschedule { kid: String, times: KeyTimes },
    Delete { kid: String },
}

/// Where a key stands at one instant, as `gatehouse keys list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Not yet published.
    Scheduled,
    /// Published, not yet signing.
    Pending,
    /// The key new tokens are signed with.
    Signing,
    /// Published and trusted, no longer signing.
    Retired,
    /// Past `drop_at`: neither published nor trusted; deleted at the next chance.
    Dropped,
}

impl KeyState {
    /// The word `keys list` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Scheduled => "scheduled",
            KeyState::Pending => "pending",
            KeyState::Signing => "signing",
            KeyState::Retired => "retired",
            KeyState::Dropped => "dropped",
        }
    }
}

/// The index of the key that signs at `now`: the newest (latest `sign_from`, then
/// `created_at`, then `kid`) that may sign.
pub fn signer_index<'a>(
    keys: impl IntoIterator<Item = (&'a str, &'a KeyTimes)>,
    now: i64,
) -> Option<usize> {
    keys.into_iter()
        .enumerate()
        .filter(|(_, (_, times))| times.may_sign(now))
        .max_by_key(|(_, (kid, times))| (times.sign_from, times.created_at, Reverse(*kid)))
        .map(|(index, _)| index)
}

/// The state of every record at `now`, in the records' order.
pub fn states(records: &[KeyRecord], now: i64) -> Vec<KeyState> {
    let signer = signer_index(records.iter().map(|r| (r.kid.as_str(), &r.times)), now);
    records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let times = &record.times;
            if times.dropped(now) {
                KeyState::Dropped
            } else if Some(index) == signer {
                KeyState::Signing
            } else if times.publish_at > now {
                KeyState::Scheduled
            } else if times.sign_from > now {
                KeyState::Pending
            } else {
                KeyState::Retired
            }
        })
        .collect()
}

/// One key of the ring; `private` is `None` when its sealed half did not open.
struct RingKey {
    kid: String,
    times: KeyTimes,
    public: Jwk,
    private: Option<Arc<SigningKey>>,
}

/// The issuer's keys with their schedules. `Debug` prints the kids only.
#[derive(Default)]
pub struct KeyRing {
    keys: Vec<RingKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|key| &key.kid))
            .finish()
    }
}

impl KeyRing {
    /// Opens every record's private half with `kek`, reusing the keys `previous` already
    /// opened. A key that does not open stays published and trusted, and its error is
    /// returned next to the ring: it only cannot sign.
    pub fn open(
        records: &[KeyRecord],
        kek: &KeyEncryptionKey,
        previous: &KeyRing,
    ) -> (Self, Vec<(String, KeyError)>) {
        let mut failures = Vec::new();
        let keys = records
            .iter()
            .map(|record| {
                let opened = previous
                    .keys
                    .iter()
                    .find(|key| key.kid == record.kid && key.private.is_some())
                    .and_then(|key| key.private.clone());
                let private = match opened {
                    Some(private) => Some(private),
                    None => match kek.open(&record.kid, &record.sealed) {
                        Ok(key) => Some(Arc::new(key)),
                        Err(error) => {
                            failures.push((record.kid.clone(), error));
                            None
                        }
                    },
                };
                RingKey {
                    kid: record.kid.clone(),
                    times: record.times,
                    public: record.public.clone(),
                    private,
                }
            })
            .collect();
        (Self { keys }, failures)
    }

    /// Whether any key is past its `drop_at` at `now` (and so due for deletion).
    pub fn has_dropped(&self, now: i64) -> bool {
        self.keys.iter().any(|key| key.times.dropped(now))
    }

    /// The ring as it stands at `now`.
    pub fn view(&self, now: i64) -> Result<KeyView, KeyError> {
        let signer = signer_index(self.keys.iter().map(|k| (k.kid.as_str(), &k.times)), now)
            .map(|index| &self.keys[index]);
        let jwks = JwkSet {
            keys: self
                .keys
                .iter()
                .filter(|key| key.times.published(now))
                .map(|key| key.public.clone())
                .collect(),
        };
        let verification = Arc::new(VerificationKeys::from_jwks(&jwks)?);
        let valid_until = self
            .keys
            .iter()
            .flat_map(|key| key.times.instants())
            .filter(|instant| *instant > now)
            .min();
        Ok(KeyView {
            signer_kid: signer.map(|key| key.kid.clone()),
            signer: signer.and_then(|key| key.private.clone()),
            jwks,
            verification,
            valid_from: now,
            valid_until,
            revision: 0,
        })
    }
}

/// The ring evaluated at one instant, unchanged until the next scheduled change.
#[derive(Debug)]
pub struct KeyView {
    signer_kid: Option<String>,
    signer: Option<Arc<SigningKey>>,
    /// What `/jwks` publishes.
    pub jwks: JwkSet,
    /// What gatehouse's own tokens are verified with: the published keys.
    pub verification: Arc<VerificationKeys>,
    /// The instant the view was evaluated at …
    pub valid_from: i64,
    /// … and the next scheduled change (`None`: nothing scheduled).
    pub valid_until: Option<i64>,
    /// Grows whenever the signer or the published keys change.
    pub revision: u64,
}

impl KeyView {
    /// Whether the view still describes the ring at `now`.
    pub fn covers(&self, now: i64) -> bool {
        self.valid_from <= now && self.valid_until.is_none_or(|until| now < until)
    }

    /// Whether `other` signs with the same key and publishes the same keys.
    fn same_keys(&self, other: &KeyView) -> bool {
        self.signer_kid == other.signer_kid
            && self.signer.is_some() == other.signer.is_some()
            && self.jwks == other.jwks
    }

    /// The key that signs, when one may and its private half is open.
    pub fn signer(&self) -> Result<Arc<SigningKey>, KeyringError> {
        match (&self.signer, &self.signer_kid) {
            (Some(key), _) => Ok(key.clone()),
            (None, Some(kid)) => Err(KeyringError::Unopened(kid.clone())),
            (None, None) => Err(KeyringError::NoSigner),
        }
    }

    /// `Cache-Control: max-age` of `/jwks` at `now`: `configured`, shortened so that no cache
    /// outlives the next scheduled change of the published keys or the signer; never negative.
    pub fn max_age(&self, now: i64, configured: u64) -> u64 {
        match self.valid_until {
            None => configured,
            Some(until) => configured.min(until.saturating_sub(now).max(0) as u64),
        }
    }
}

#[cfg(test)]
mod tests;
