//! `gatehouse keys`: rotate, list and drop the issuer's signing keys in the store. Every
//! change is a plan of [`crate::keyring`] run under the store's lock; running gatehouses see it
//! at their next reload (notified on Postgres, polled everywhere).

use crate::keyring::{
    self, KeyChange, KeyRecord, KeyState, KeyTimes, KeyringError, RotationSettings,
};
use crate::keys::{KeyEncryptionKey, KeyError, SigningKey};
use crate::store::{KeyStoreError, Store, StoreError};

/// Why a key command failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Refused(#[from] KeyringError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "the key-encryption key does not open signing key {0}: it is not the one the stored \
         keys are sealed with"
    )]
    WrongEncryptionKey(String),
}

impl From<KeyStoreError> for KeyAdminError {
    fn from(error: KeyStoreError) -> Self {
        match error {
            KeyStoreError::Store(error) => Self::Store(error),
            KeyStoreError::Refused(error) => Self::Refused(error),
        }
    }
}

/// What a rotation scheduled.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new key and its schedule.
    pub kid: String,
    pub times: KeyTimes,
    /// Every key that stops signing when the new one starts, with its new schedule.
    pub retiring: Vec<(String, KeyTimes)>,
}

/// Generates a key, seals it under `kek` and schedules it: published now, signing after the
/// publish lead, while the keys signing until then retire at that instant and are dropped once
/// their last token has expired. Keys already past their `drop_at` are deleted.
pub async fn rotate(
    store: &dyn Store,
    kek: &KeyEncryptionKey,
    settings: RotationSettings,
    now: i64,
) -> Result<Rotation, KeyAdminError> {
    // A key sealed under another key-encryption key would be published everywhere and sign
    // nowhere: this one must open what is stored.
    let existing = store.signing_keys().await?;
    if let Some(record) = existing.iter().find(|r| !r.times.dropped(now)) {
        kek.open(&record.kid, &record.sealed)
            .map_err(|_| KeyAdminError::WrongEncryptionKey(record.kid.clone()))?;
    }
    let key = SigningKey::generate()?;
    let record = KeyRecord::seal(&key, kek, KeyTimes::first(now))?;
    let changes = store
        .change_signing_keys(&|existing| {
            let mut changes = keyring::drop_expired(existing, now);
            changes.extend(keyring::rotate(existing, &record, now, settings));
            Ok(changes)
        })
        .await?;

    let mut rotation = Rotation {
        kid: record.kid.clone(),
        times: record.times,
        retiring: Vec::new(),
    };
    for change in changes {
        match change {
            KeyChange::Insert(inserted) => rotation.times = inserted.times,
            KeyChange::Reschedule { kid, times } => rotation.retiring.push((kid, times)),
            KeyChange::Delete { kid } => {
                tracing::info!(key.kid = %kid, "dropped signing key deleted");
            }
        }
    }
    tracing::info!(
        key.kid = %rotation.kid,
        key.sign_from = rotation.times.sign_from,
        "signing key rotated"
    );
    Ok(rotation)
}

/// Every stored key with its state at `now`, oldest first; keys past their `drop_at` are
/// deleted first.
pub async fn list(
    store: &dyn Store,
    now: i64,
) -> Result<Vec<(KeyRecord, KeyState)>, KeyAdminError> {
    store
        .change_signing_keys(&|existing| Ok(keyring::drop_expired(existing, now)))
        .await?;
    let records = store.signing_keys().await?;
    let states = keyring::states(&records, now);
    Ok(records.into_iter().zip(states).collect())
}

/// Removes key `kid` at once (emergency): it leaves `/jwks` and its tokens are refused. The
/// newest remaining key signs from then on; the only key is never dropped.
pub async fn drop_key(
    store: &dyn Store,
    kid: &str,
    now: i64,
) -> Result<Vec<KeyChange>, KeyAdminError> {
    let changes = store
        .change_signing_keys(&|existing| keyring::drop_key(existing, kid, now))
        .await?;
    tracing::warn!(key.kid = %kid, "signing key dropped");
    Ok(changes)
}

/// Unix seconds as an RFC 3339 UTC timestamp.
pub fn utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_750_000_000), "2025-06-15T15:06:40Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
    }
}
