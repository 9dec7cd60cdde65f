//! Introspection (RFC 7662) and revocation (RFC 7009) of a client's own tokens.
//!
//! Callers authenticate exactly as at `/token` (HTTP Basic for confidential clients,
//! `client_id` in the body for public ones). A client learns about, and may revoke, only the
//! tokens issued to it: anything else is answered as if the token did not exist. The two kinds
//! of token are told apart by their form (an opaque `ghr_…` refresh token, or a JWT access
//! token), so `token_type_hint` is accepted and never needed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::refresh::presented_hash;
use super::{Issuer, OAuthError, TokenForm};
use crate::catalogue::{PolicySnapshot, Subject};
use crate::check::is_stale;
use crate::policy::GrantType;
use crate::store::ClientRecord;
use crate::store::tokens::RefreshRecord;
use crate::tokens::{AccessClaims, TrustSet, VerifiedToken, verify};

/// The answer of `/introspect` (RFC 7662 §2.2): `{"active":false}` alone, or the token's
/// metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

/// What `/revoke` did; the answer is 200 either way (RFC 7009 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Unknown, invalid, expired or another client's token: nothing to do.
    Nothing,
    /// An access token, now listed as revoked.
    AccessToken { jti: String },
    /// A refresh token: its whole family, with the access tokens issued alongside.
    RefreshFamily { family: String },
}

/// A token presented to `/introspect` or `/revoke`, once recognised as the caller's own.
enum Owned {
    Access(Box<(VerifiedToken, AccessClaims)>),
    Refresh(RefreshRecord),
}

impl Issuer {
    /// RFC 7662: what the caller's own token is, if it is active. `trust` holds gatehouse's
    /// own keys; `snapshot` is the check path's, so a token the check path would refuse as
    /// stale or revoked is inactive here too.
    pub async fn introspect(
        &self,
        authorization: &[&str],
        body: &[u8],
        trust: &TrustSet,
        snapshot: &PolicySnapshot,
    ) -> Result<Introspection, OAuthError> {
        let (client, form) = self.own_token_request(authorization, body).await?;
        let token = form
            .get("token")
            .ok_or(OAuthError::InvalidRequest("token is required"))?;
        let now = self.clock.now();
        let inactive = Introspection::default();
        let answer = match self.owned(&client, token, trust, now).await? {
            None => inactive,
            Some(Owned::Access(access)) => {
                let (verified, claims) = *access;
                let subject = if verified.is_account_token() {
                    Subject::Account(verified.subject.clone())
                } else {
                    Subject::Client(verified.subject.clone())
                };
                let live = now < claims.exp
                    && !snapshot.revoked.contains(&claims.jti)
                    && !is_stale(&verified, &subject, snapshot)
                    && !self.store.access_revoked(&claims.jti).await?;
                if !live {
                    return Ok(inactive);
                }
                Introspection {
                    active: true,
                    scope: Some(claims.scope),
                    client_id: Some(claims.client_id),
                    sub: Some(claims.sub),
                    exp: Some(claims.exp),
                    iat: Some(claims.iat),
                    nbf: Some(claims.nbf),
                    iss: Some(claims.iss),
                    aud: Some(claims.aud),
                    jti: Some(claims.jti),
                    token_type: Some("Bearer"),
                }
            }
            Some(Owned::Refresh(record)) => {
                let live = record.usable_at(now)
                    && client.grant_types.contains(&GrantType::RefreshToken)
                    && snapshot.versions.get(&record.subject).is_some();
                if !live {
                    return Ok(inactive);
                }
                Introspection {
                    active: true,
                    exp: Some(record.expiry()),
                    scope: Some(record.scope),
                    client_id: Some(record.client_id),
                    sub: Some(record.subject.id().to_owned()),
                    token_type: Some("refresh_token"),
                    ..Introspection::default()
                }
            }
        };
        Ok(answer)
    }

    /// RFC 7009: revokes the caller's own token. A refresh token takes its whole family (and
    /// the access tokens issued with it) along; an access token is listed as revoked until it
    /// expires. Anything else is left alone.
    pub async fn revoke(
        &self,
        authorization: &[&str],
        body: &[u8],
        trust: &TrustSet,
    ) -> Result<Revocation, OAuthError> {
        let (client, form) = self.own_token_request(authorization, body).await?;
        let token = form
            .get("token")
            .ok_or(OAuthError::InvalidRequest("token is required"))?;
        let now = self.clock.now();
        let revocation = match self.owned(&client, token, trust, now).await? {
            None => Revocation::Nothing,
            Some(Owned::Access(access)) => {
                let (_, claims) = *access;
                self.store
                    .revoke_access(&claims.jti, claims.exp, now)
                    .await?;
                Revocation::AccessToken { jti: claims.jti }
            }
            Some(Owned::Refresh(record)) => {
                self.store.revoke_family(&record.family_id, now).await?;
                Revocation::RefreshFamily {
                    family: record.family_id,
                }
            }
        };
        Ok(revocation)
    }

    /// Reads the form and authenticates the caller as `/token` does.
    async fn own_token_request(
        &self,
        authorization: &[&str],
        body: &[u8],
    ) -> Result<(ClientRecord, TokenForm), OAuthError> {
        let form = TokenForm::parse(body)?;
        if form.contains("client_secret") {
            return Err(OAuthError::InvalidRequest(
                "client_secret is not accepted in the body; use HTTP Basic authentication",
            ));
        }
        let client = self.authenticate_client(authorization, &form).await?;
        Ok((client, form))
    }

    /// The token, when it is one gatehouse issued to `client` and it still passes
    /// verification (access tokens) or exists (refresh tokens).
    async fn owned(
        &self,
        client: &ClientRecord,
        token: &str,
        trust: &TrustSet,
        now: i64,
    ) -> Result<Option<Owned>, OAuthError> {
        if let Some(hash) = presented_hash(token) {
            let record = self.store.find_refresh(&hash).await?;
            return Ok(record
                .filter(|record| record.client_id == client.id)
                .map(Owned::Refresh));
        }
        let Ok(verified) = verify(token, trust, now) else {
            return Ok(None);
        };
        if verified.client_id != client.id {
            return Ok(None);
        }
        Ok(access_claims(token).map(|claims| Owned::Access(Box::new((verified, claims)))))
    }
}

/// The claims of an access token that already passed verification with gatehouse's own keys.
fn access_claims(token: &str) -> Option<AccessClaims> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}
