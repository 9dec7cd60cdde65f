//! The embedded OAuth 2.0 issuer: client authentication, grants and access-token minting.
//!
//! This layer knows OAuth and the store trait, not HTTP: the adapter hands it the
//! `authorization` values and the form body, and maps [`OAuthError`] onto a response.

mod request;

use std::sync::Arc;

pub use request::{BasicCredentials, TokenForm, parse_basic};

use crate::catalogue::Subject;
use crate::clock::Clock;
use crate::credentials::{verify_client_secret, verify_password};
use crate::keyring::SigningKeys;
use crate::policy::{ClientKind, GrantType};
use crate::resources::Resource;
use crate::secret::Secret;
use crate::store::{ClientRecord, Store, StoreError};
use crate::tokens::{AccessClaims, Grants, encode};

/// Errors of the token endpoint, named after RFC 6749 §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request")]
    InvalidRequest(&'static str),
    #[error("invalid_client")]
    InvalidClient,
    #[error("invalid_grant")]
    InvalidGrant,
    #[error("unauthorized_client")]
    UnauthorizedClient,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope")]
    InvalidScope,
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
    #[error("server_error")]
    ServerError,
}

impl OAuthError {
    /// The `error` code on the wire.
    pub fn code(self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant => "invalid_grant",
            OAuthError::UnauthorizedClient => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope => "invalid_scope",
            OAuthError::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthError::ServerError => "server_error",
        }
    }

    /// The HTTP status: 401 for `invalid_client`, 503 and 500 for our faults, else 400.
    pub fn status(self) -> u16 {
        match self {
            OAuthError::InvalidClient => 401,
            OAuthError::TemporarilyUnavailable => 503,
            OAuthError::ServerError => 500,
            _ => 400,
        }
    }

    /// A human-readable `error_description`, when it helps the client fix the request.
    pub fn description(self) -> Option<&'static str> {
        match self {
            OAuthError::InvalidRequest(text) => Some(text),
            OAuthError::InvalidClient => Some("client authentication failed"),
            OAuthError::UnauthorizedClient => Some("the client may not use this grant type"),
            OAuthError::InvalidScope => Some("the requested scope is not allowed for this client"),
            _ => None,
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(_: StoreError) -> Self {
        OAuthError::TemporarilyUnavailable
    }
}

/// Issuer settings, fixed by configuration.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    pub issuer: String,
    pub audience: String,
    /// Access-token lifetime in seconds.
    pub ttl: i64,
    /// Above this many grants a token carries the database marker instead of the ids.
    pub grants_in_token_max: usize,
}

/// A minted access token and what the client may do with it.
#[derive(Debug)]
pub struct Issued {
    pub access_token: Secret,
    pub expires_in: i64,
    pub scope: String,
    /// Every resource the subject may use, even when the token carries none.
    pub resources: Vec<Resource>,
    pub subject: String,
    pub client_id: String,
    pub grant_type: GrantType,
}

/// The token endpoint's logic.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub settings: IssuerSettings,
    pub store: Arc<dyn Store>,
    pub key: Arc<SigningKeys>,
    pub clock: Arc<dyn Clock>,
}

impl Issuer {
    /// Handles one `/token` request given its `authorization` values and form body.
    pub async fn token(&self, authorization: &[&str], body: &[u8]) -> Result<Issued, OAuthError> {
        let form = TokenForm::parse(body)?;
        if form.contains("client_secret") {
            return Err(OAuthError::InvalidRequest(
                "client_secret is not accepted in the body; use HTTP Basic authentication",
            ));
        }
        let grant_type = form
            .get("grant_type")
            .ok_or(OAuthError::InvalidRequest("grant_type is required"))?;
        let client = self.authenticate_client(authorization, &form).await?;
        let grant_type = GrantType::parse(grant_type).ok_or(OAuthError::UnsupportedGrantType)?;
        if !client.grant_types.contains(&grant_type) {
            return Err(OAuthError::UnauthorizedClient);
        }
        let scopes = allowed_scopes(&client, form.get("scope"))?;

        let (subject, pver, cver) = match grant_type {
            GrantType::ClientCredentials => {
                (Subject::Client(client.id.clone()), client.version, None)
            }
            GrantType::Password => {
                let username = form
                    .get("username")
                    .ok_or(OAuthError::InvalidRequest("username is required"))?;
                let password = form
                    .get("password")
                    .ok_or(OAuthError::InvalidRequest("password is required"))?;
                let account = self.store.account(username).await?;
                let hash = account
                    .as_ref()
                    .and_then(|a| a.password_hash.as_ref())
                    .map(|hash| hash.expose().to_owned());
                let password = password.to_owned();
                // argon2 is deliberately slow: keep it off the async workers.
                let matches = tokio::task::spawn_blocking(move || {
                    verify_password(hash.as_deref(), &password)
                })
                .await
                .map_err(|_| OAuthError::ServerError)?;
                match account {
                    Some(account) if matches && !account.disabled => (
                        Subject::Account(account.username),
                        account.version,
                        Some(client.version),
                    ),
                    _ => return Err(OAuthError::InvalidGrant),
                }
            }
        };

        let resources: Vec<Resource> = self
            .store
            .granted_resources(&subject)
            .await?
            .into_iter()
            .filter(|resource| scopes.contains(&resource.kind))
            .collect();
        let grants = if resources.len() <= self.settings.grants_in_token_max {
            Grants::Listed(resources.iter().map(|r| r.id.clone()).collect())
        } else {
            Grants::lookup()
        };

        let now = self.clock.now();
        let scope = scopes.join(" ");
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: subject.id().to_owned(),
            aud: self.settings.audience.clone(),
            exp: now + self.settings.ttl,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: client.id.clone(),
            scope: scope.clone(),
            pver,
            cver,
            grants,
        };
        let key = self.key.signer(now).map_err(|error| {
            tracing::error!(error = %error, "no signing key");
            OAuthError::ServerError
        })?;
        let access_token = encode(&claims, &key).map_err(|_| OAuthError::ServerError)?;
        Ok(Issued {
            access_token,
            expires_in: self.settings.ttl,
            scope,
            resources,
            subject: claims.sub,
            client_id: claims.client_id,
            grant_type,
        })
    }

    /// RFC 6749 §2.3: confidential clients authenticate with HTTP Basic only; public clients
    /// name themselves with `client_id` in the body.
    async fn authenticate_client(
        &self,
        authorization: &[&str],
        form: &TokenForm,
    ) -> Result<ClientRecord, OAuthError> {
        match authorization {
            [] => {
                let client_id = form.get("client_id").ok_or(OAuthError::InvalidClient)?;
                match self.store.client(client_id).await? {
                    Some(client) if client.kind == ClientKind::Public && !client.disabled => {
                        Ok(client)
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
                let client = self.store.client(&basic.client_id).await?;
                let stored = client
                    .as_ref()
                    .and_then(|c| c.secret_hash.clone())
                    .unwrap_or_default();
                let verified =
                    verify_client_secret(&basic.client_id, basic.secret.expose(), &stored);
                match client {
                    Some(client)
                        if verified
                            && client.kind == ClientKind::Confidential
                            && !client.disabled =>
                    {
                        Ok(client)
                    }
                    _ => Err(OAuthError::InvalidClient),
                }
            }
            _ => Err(OAuthError::InvalidRequest(
                "more than one authorization header",
            )),
        }
    }
}

/// The resource types a token may cover: the client's scopes, narrowed by `scope` if given.
fn allowed_scopes(
    client: &ClientRecord,
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    let mut scopes: Vec<String> = match requested {
        None => client.scopes.clone(),
        Some(requested) => {
            let mut scopes = Vec::new();
            for scope in requested.split(' ').filter(|s| !s.is_empty()) {
                if !client.scopes.iter().any(|allowed| allowed == scope) {
                    return Err(OAuthError::InvalidScope);
                }
                scopes.push(scope.to_owned());
            }
            scopes
        }
    };
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}
