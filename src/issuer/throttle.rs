//! Brute-force limits around every client-secret and password check (RFC 6749 §2.3.1,
//! §10.10), with counters in the store so that every replica shares them.

use std::future::Future;

use super::{Issuer, OAuthError};
use crate::store::{FailureRecord, ThrottleKey, ThrottleKind};

/// One failed check in this many also deletes the records that no longer count, so that
/// guessed usernames do not accumulate.
const PRUNE_ONE_IN: u32 = 64;

impl Issuer {
    /// Runs `check` (a secret or password verification) under `key`'s limit: while the key is
    /// locked it is refused at once, before any verification, with
    /// [`OAuthError::Throttled`]; a failure (`invalid_client`, `invalid_grant`) is counted, and
    /// a success clears the key's count. The fast path is one primary-key read; a success
    /// writes only when there were failures to forget. A store that does not answer fails
    /// the request closed (503).
    pub(super) async fn throttled<T>(
        &self,
        key: ThrottleKey,
        check: impl Future<Output = Result<T, OAuthError>>,
    ) -> Result<T, OAuthError> {
        let record = self.store.throttle_state(&key).await?;
        self.refuse_if_locked(&key, record)?;
        let outcome = check.await;
        self.count(&key, record.is_some(), &outcome).await?;
        outcome
    }

    /// [`Self::throttled`] for a check that reads cached records: the store generation comes
    /// in the same read as the key's record, and is handed to `check` and returned with its
    /// result.
    pub(super) async fn throttled_at<T, F>(
        &self,
        key: ThrottleKey,
        check: impl FnOnce(i64) -> F,
    ) -> Result<(T, i64), OAuthError>
    where
        F: Future<Output = Result<T, OAuthError>>,
    {
        let (generation, record) = self.store.generation_and_throttle_state(&key).await?;
        self.refuse_if_locked(&key, record)?;
        let outcome = check(generation).await;
        self.count(&key, record.is_some(), &outcome).await?;
        outcome.map(|value| (value, generation))
    }

    fn refuse_if_locked(
        &self,
        key: &ThrottleKey,
        record: Option<FailureRecord>,
    ) -> Result<(), OAuthError> {
        match record.and_then(|record| record.locked_for(self.clock.now())) {
            Some(seconds) => Err(OAuthError::Throttled {
                kind: key.kind,
                retry_after: seconds,
            }),
            None => Ok(()),
        }
    }

    /// Counts a failure, or clears the count after a success when there was one.
    async fn count<T>(
        &self,
        key: &ThrottleKey,
        had_record: bool,
        outcome: &Result<T, OAuthError>,
    ) -> Result<(), OAuthError> {
        match outcome {
            Ok(_) if had_record => self.store.clear_failures(key).await?,
            Err(OAuthError::InvalidClient | OAuthError::InvalidGrant) => {
                self.count_failure(key).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn count_failure(&self, key: &ThrottleKey) -> Result<(), OAuthError> {
        let now = self.clock.now();
        let policy = &self.settings.throttle;
        let record = self.store.record_failure(key, now, policy).await?;
        if let Some(seconds) = record.locked_for(now) {
            // Never the id of an account: a username field sometimes holds a password.
            let client_id = match key.kind {
                ThrottleKind::Client => key.id.as_str(),
                ThrottleKind::Account => "",
            };
            tracing::info!(
                throttle.kind = key.kind.as_str(),
                client.id = client_id,
                failures = record.failures,
                locked_seconds = seconds,
                "credential locked after repeated failures"
            );
        }
        if rand::random_ratio(1, PRUNE_ONE_IN)
            && let Err(error) = self.store.prune_failures(now).await
        {
            tracing::debug!(error = %error, "pruning failure records failed");
        }
        Ok(())
    }
}
