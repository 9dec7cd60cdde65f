//! Refresh tokens (RFC 6749 §6, RFC 9700 §4.14.2): issued to confidential clients only,
//! never on `client_credentials`, rotated on every use, with an idle and an absolute lifetime.
//!
//! A refresh token is `ghr_` and 256 random bits (base64url); the store keeps only its
//! SHA-256. Each token belongs to a family, bound to one client and one subject and carrying
//! the scope first granted. A token that was already used and is presented again revokes the
//! whole family — and so does the loser of two concurrent refreshes of one token, which the
//! server cannot tell from a replay by a thief.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{Issued, Issuer, Minting, OAuthError, TokenForm, allowed_scopes};
use crate::catalogue::Subject;
use crate::policy::{ClientKind, GrantType};
use crate::secret::Secret;
use crate::store::ClientRecord;
use crate::store::tokens::{NewFamily, NewRefresh, RefreshHash};

/// Marks gatehouse's refresh tokens, so that they are recognisable (and never taken for a JWT).
const PREFIX: &str = "ghr_";

/// The length of a refresh token: the prefix and 32 bytes in base64url.
const TOKEN_LEN: usize = PREFIX.len() + 43;

/// A new refresh token and its hash.
fn generate() -> (Secret, RefreshHash) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&token);
    (Secret::new(token), hash)
}

/// The SHA-256 of a refresh token string.
fn hash(token: &str) -> RefreshHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The hash of `presented` when it has the form of one of gatehouse's refresh tokens.
pub(super) fn presented_hash(presented: &str) -> Option<RefreshHash> {
    let shaped = presented.len() == TOKEN_LEN
        && presented.starts_with(PREFIX)
        && presented[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    shaped.then(|| hash(presented))
}

impl Issuer {
    /// Starts a refresh-token family for the access token just minted in `issued`, when the
    /// client may hold refresh tokens: a confidential client whose grant types include
    /// `refresh_token`, on a grant that acts for an account (never `client_credentials`).
    /// Sets `issued.refresh_token` and returns the family id, or does nothing and returns
    /// `None`.
    ///
    /// The family carries `issued.scope` and records `issued.jti`, so that revoking the family
    /// (see [`Issuer::revoke_issued`]) also revokes that access token.
    pub async fn issue_refresh(
        &self,
        client: &ClientRecord,
        issued: &mut Issued,
    ) -> Result<Option<String>, OAuthError> {
        let eligible = client.kind == ClientKind::Confidential
            && client.grant_types.contains(&GrantType::RefreshToken)
            && issued.grant_type != GrantType::ClientCredentials
            && issued.client_id == client.id;
        if !eligible {
            return Ok(None);
        }
        let now = self.clock.now();
        let family = NewFamily {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: client.id.clone(),
            subject: Subject::Account(issued.subject.clone()),
            scope: issued.scope.clone(),
            created_at: now,
            expires_at: now + self.settings.refresh_absolute,
        };
        let (token, hash) = generate();
        let first = NewRefresh {
            hash,
            family_id: family.id.clone(),
            issued_at: now,
            expires_at: (now + self.settings.refresh_idle).min(family.expires_at),
            access_jti: Some(issued.jti.clone()),
            access_expires_at: Some(now + issued.expires_in),
        };
        self.store.start_family(&family, &first).await?;
        issued.refresh_token = Some(token);
        Ok(Some(family.id))
    }

    /// Withdraws what one grant issued: the refresh family (with every access token issued
    /// alongside its tokens) and the access token `jti`, valid until `expires_at`. For a grant
    /// found to be compromised, such as an authorization code redeemed twice.
    pub async fn revoke_issued(
        &self,
        family: Option<&str>,
        jti: &str,
        expires_at: i64,
    ) -> Result<(), OAuthError> {
        let now = self.clock.now();
        if let Some(family) = family {
            self.store.revoke_family(family, now).await?;
        }
        self.store.revoke_access(jti, expires_at, now).await?;
        Ok(())
    }

    /// RFC 6749 §6: a new access token and a new refresh token for a refresh token, which is
    /// used up. The subject's current grants and permission version are read again, the
    /// account must still be enabled, and `scope` may narrow the family's scope, never widen it.
    pub(super) async fn refresh(
        &self,
        client: ClientRecord,
        form: &TokenForm,
    ) -> Result<Issued, OAuthError> {
        let presented = form
            .get("refresh_token")
            .ok_or(OAuthError::InvalidRequest("refresh_token is required"))?;
        // Anything else — an access token, a JWT of another kind — is no grant at all.
        let hash = presented_hash(presented).ok_or(OAuthError::InvalidGrant)?;
        let record = self
            .store
            .find_refresh(&hash)
            .await?
            .ok_or(OAuthError::InvalidGrant)?;
        // Bound to another client: refused, and not burned for its owner.
        if record.client_id != client.id {
            return Err(OAuthError::InvalidGrant);
        }
        let now = self.clock.now();
        if record.used && !record.revoked {
            self.revoke_replayed(&record.family_id, &client.id, now)
                .await?;
            return Err(OAuthError::InvalidGrant);
        }
        if !record.usable_at(now) {
            return Err(OAuthError::InvalidGrant);
        }
        let Subject::Account(username) = &record.subject else {
            return Err(OAuthError::InvalidGrant);
        };
        let account = self
            .store
            .account(username)
            .await?
            .filter(|account| !account.disabled)
            .ok_or(OAuthError::InvalidGrant)?;

        let requested = form.get("scope");
        let mut scopes = allowed_scopes(&client, requested, true)?;
        let granted: Vec<&str> = record.scope.split(' ').collect();
        if requested.is_some() && scopes.iter().any(|s| !granted.contains(&s.as_str())) {
            return Err(OAuthError::InvalidScope);
        }
        scopes.retain(|s| granted.contains(&s.as_str()));

        let client_id = client.id.clone();
        let cver = Some(client.version);
        let mut issued = self
            .mint(Minting {
                client,
                subject: Subject::Account(account.username),
                pver: account.version,
                cver,
                generation: None,
                scopes,
                grant_type: GrantType::RefreshToken,
                // No new ID token on refresh: the person did not sign in again.
                openid: None,
            })
            .await?;
        let (token, successor_hash) = generate();
        let successor = NewRefresh {
            hash: successor_hash,
            family_id: record.family_id.clone(),
            issued_at: now,
            expires_at: (now + self.settings.refresh_idle).min(record.family_expires_at),
            access_jti: Some(issued.jti.clone()),
            access_expires_at: Some(now + issued.expires_in),
        };
        if !self.store.rotate_refresh(&hash, &successor).await? {
            // Another refresh used the token first. A race between two requests of the owner
            // and a replay by a thief look the same, so the family ends either way.
            self.revoke_replayed(&record.family_id, &client_id, now)
                .await?;
            return Err(OAuthError::InvalidGrant);
        }
        issued.refresh_token = Some(token);
        Ok(issued)
    }

    /// RFC 9700 §4.14.2: a refresh token presented after it was used revokes its family.
    async fn revoke_replayed(
        &self,
        family: &str,
        client_id: &str,
        now: i64,
    ) -> Result<(), OAuthError> {
        if self.store.revoke_family(family, now).await? {
            tracing::info!(
                client.id = %client_id,
                refresh.family = %family,
                "used refresh token presented again; family revoked"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_long_random_and_recognised_by_form() {
        let (token, stored) = generate();
        let token = token.expose();
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(token.starts_with("ghr_"));
        assert_eq!(presented_hash(token), Some(stored));
        assert_ne!(generate().1, stored);
        assert_eq!(presented_hash("eyJhbGciOiJSUzI1NiJ9.e30.sig"), None);
        assert_eq!(presented_hash(&format!("{token}x")), None);
        assert_eq!(presented_hash(&token.replace("ghr_", "ghx_")), None);
    }
}
