//! Brute-force limits around every client-secret and password check (RFC 6749 §2.3.1,
//! §10.10), with counters in the store so that every replica shares them.

use std::future::Future;

use super::{Issuer, OAuthError};
use crate::store::{ThrottleKey, ThrottleKind};

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
        if let Some(seconds) = record.and_then(|record| record.locked_for(self.clock.now())) {
            return Err(OAuthError::Throttled {
                kind: key.kind,
                retry_after: seconds,
            });
        }

        let outcome = check.await;
        match &outcome {
            Ok(_) if record.is_some() => self.store.clear_failures(&key).await?,
            Err(OAuthError::InvalidClient | OAuthError::InvalidGrant) => {
                self.count_failure(&key).await?;
            }
            _ => {}
        }
        outcome
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
