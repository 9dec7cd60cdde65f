//! Client authentication (RFC 6749 §2.3): HTTP Basic for confidential clients, `client_id`
//! in the body for public ones, under the client id's brute-force limit.

use super::{BasicCredentials, Issuer, OAuthError, TokenForm, parse_basic};
use crate::credentials::verify_client_secret_any;
use crate::policy::ClientKind;
use crate::store::{ClientRecord, ThrottleKey};

impl Issuer {
    /// RFC 6749 §2.3: confidential clients authenticate with HTTP Basic only; public clients
    /// name themselves with `client_id` in the body. The one place client secrets are checked,
    /// under the client id's brute-force limit.
    pub async fn authenticate_client(
        &self,
        authorization: &[&str],
        form: &TokenForm,
    ) -> Result<ClientRecord, OAuthError> {
        Ok(self.authenticate(authorization, form).await?.0)
    }

    /// [`Self::authenticate_client`], with the store generation read before the client
    /// record (which comes from the issuer's cache for that generation).
    pub(super) async fn authenticate(
        &self,
        authorization: &[&str],
        form: &TokenForm,
    ) -> Result<(ClientRecord, i64), OAuthError> {
        match authorization {
            [] => {
                let client_id = form.get("client_id").ok_or(OAuthError::InvalidClient)?;
                let generation = self.store.generation().await?;
                match self
                    .cache
                    .client(&self.store, generation, client_id)
                    .await?
                {
                    Some(client) if client.kind == ClientKind::Public && !client.disabled => {
                        Ok((client, generation))
                    }
                    _ => Err(OAuthError::InvalidClient),
                }
            }
            [header] => {
                let basic = parse_basic(header)?;
                if form
                    .get("client_id")
                    .is_some_and(|id| id != basic.client_id)
                {
                    return Err(OAuthError::InvalidRequest(
                        "client_id in the body differs from the authenticated client",
                    ));
                }
                let key = ThrottleKey::client(&basic.client_id);
                self.throttled_at(key, |generation| {
                    self.check_client_secret(generation, &basic)
                })
                .await
            }
            _ => Err(OAuthError::InvalidRequest(
                "more than one authorization header",
            )),
        }
    }

    /// Checks HTTP Basic credentials against the client's secret and, during a rotation's
    /// grace period, its previous one; an unknown client costs the same digest.
    async fn check_client_secret(
        &self,
        generation: i64,
        basic: &BasicCredentials,
    ) -> Result<ClientRecord, OAuthError> {
        let client = self
            .cache
            .client(&self.store, generation, &basic.client_id)
            .await?;
        let now = self.clock.now();
        let current = client
            .as_ref()
            .and_then(|c| c.secret_hash.as_deref())
            .unwrap_or_default();
        let previous = client
            .as_ref()
            .and_then(|c| c.previous_secret.as_ref())
            .filter(|previous| now < previous.expires_at)
            .map(|previous| previous.hash.as_slice())
            .unwrap_or_default();
        let verified = verify_client_secret_any(
            &basic.client_id,
            basic.secret.expose(),
            &[current, previous],
        );
        match client {
            Some(client)
                if verified && client.kind == ClientKind::Confidential && !client.disabled =>
            {
                Ok(client)
            }
            _ => Err(OAuthError::InvalidClient),
        }
    }
}
