//! Changes to the stored key set, decided from the keys as they are and the time. The store
//! runs a plan under its write lock, so concurrent processes see each other's changes.

use std::cmp::Reverse;

use super::{KeyChange, KeyRecord, KeyTimes, KeyringError, signer_index};

/// How a rotation is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationSettings {
    /// Seconds between publishing the next key and signing with it: at least as long as
    /// `/jwks` may be cached, so every verifier knows the key before it sees a token.
    pub publish_lead: i64,
    /// The longest a token signed by the previous key stays valid: token lifetime plus
    /// leeway. The previous key is dropped that long after it stops signing.
    pub token_lifetime: i64,
}

fn newest<'a>(records: impl IntoIterator<Item = &'a KeyRecord>) -> Option<&'a KeyRecord> {
    records.into_iter().max_by_key(|record| {
        let times = &record.times;
        (
            times.sign_from,
            times.created_at,
            Reverse(record.kid.as_str()),
        )
    })
}

/// Inserts `new`, published and signing from `now`, when the store holds no key that is not
/// dropped; nothing otherwise (another process created the first key first).
pub fn first_key(existing: &[KeyRecord], new: &KeyRecord, now: i64) -> Vec<KeyChange> {
    if existing.iter().any(|record| !record.times.dropped(now)) {
        return Vec::new();
    }
    let mut record = new.clone();
    record.times = KeyTimes::first(now);
    vec![KeyChange::Insert(record)]
}

/// Publishes `new` now and lets it sign after the publish lead; every key that would still
/// sign then retires at that instant and is dropped once its last token has expired. With no
/// key signing now (an empty store), `new` signs at once.
pub fn rotate(
    existing: &[KeyRecord],
    new: &KeyRecord,
    now: i64,
    settings: RotationSettings,
) -> Vec<KeyChange> {
    let mut record = new.clone();
    if signer_index(existing.iter().map(|r| (r.kid.as_str(), &r.times)), now).is_none() {
        record.times = KeyTimes::first(now);
        return vec![KeyChange::Insert(record)];
    }
    let sign_from = now.saturating_add(settings.publish_lead);
    let drop_at = sign_from.saturating_add(settings.token_lifetime);
    record.times = KeyTimes::next(now, sign_from);
    let mut changes = vec![KeyChange::Insert(record)];
    for existing in existing {
        let times = existing.times;
        if times.dropped(now) || times.retire_at.is_some_and(|retire| retire <= sign_from) {
            continue;
        }
        changes.push(KeyChange::Reschedule {
            kid: existing.kid.clone(),
            times: KeyTimes {
                retire_at: Some(sign_from),
                drop_at: Some(drop_at),
                ..times
            },
        });
    }
    changes
}

/// Removes key `kid` at once: it is no longer published, and its tokens are refused. The
/// newest remaining key signs from then on with no end (a retirement in its favour undone),
/// at once if no remaining key may sign now. The only key left is never dropped.
pub fn drop_key(
    existing: &[KeyRecord],
    kid: &str,
    now: i64,
) -> Result<Vec<KeyChange>, KeyringError> {
    let target = existing
        .iter()
        .find(|record| record.kid == kid)
        .ok_or_else(|| KeyringError::UnknownKey(kid.to_owned()))?;
    let remaining: Vec<&KeyRecord> = existing
        .iter()
        .filter(|record| record.kid != kid && !record.times.dropped(now))
        .collect();
    let mut changes = vec![KeyChange::Delete {
        kid: kid.to_owned(),
    }];
    let Some(newest) = newest(remaining.iter().copied()) else {
        if target.times.dropped(now) {
            return Ok(changes);
        }
        return Err(KeyringError::OnlyKey(kid.to_owned()));
    };

    let mut times = KeyTimes {
        retire_at: None,
        drop_at: None,
        ..newest.times
    };
    let others = remaining
        .iter()
        .filter(|record| record.kid != newest.kid)
        .map(|record| (record.kid.as_str(), &record.times));
    let candidates: Vec<(&str, &KeyTimes)> =
        others.chain([(newest.kid.as_str(), &times)]).collect();
    if signer_index(candidates, now).is_none() {
        // Signing from the time it was published (already known to every verifier) rather
        // than from `now`, so that a replica whose clock is a little behind has a signer too.
        times.publish_at = times.publish_at.min(now);
        times.sign_from = times.publish_at;
    }
    if times != newest.times {
        changes.push(KeyChange::Reschedule {
            kid: newest.kid.clone(),
            times,
        });
    }
    Ok(changes)
}

/// Deletes every key past its `drop_at`.
pub fn drop_expired(existing: &[KeyRecord], now: i64) -> Vec<KeyChange> {
    existing
        .iter()
        .filter(|record| record.times.dropped(now))
        .map(|record| KeyChange::Delete {
            kid: record.kid.clone(),
        })
        .collect()
}
