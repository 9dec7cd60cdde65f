//! The embedded OAuth 2.0 issuer: client authentication, grants and access-token minting.
//!
//! This layer knows OAuth and the store trait, not HTTP: the adapter hands it the
//! `authorization` values and the form body, and maps [`OAuthError`] onto a response.

mod cache;
mod client_auth;
mod code;
mod introspect;
mod password_threads;
mod refresh;
mod request;
mod throttle;

use std::sync::Arc;

pub use cache::IssuerCache;
pub use code::{AuthorizationRequest, AuthorizeError, SignInFailure};
pub use introspect::{Introspection, Revocation};
pub use request::{BasicCredentials, TokenForm, parse_basic};

use crate::catalogue::Subject;
use crate::clock::Clock;
use crate::credentials::verify_password;
use crate::keyring::SigningKeys;
use crate::policy::{ClientKind, GrantType};
use crate::resources::Resource;
use crate::secret::Secret;
use crate::store::{
    AccountRecord, ClientRecord, Store, StoreError, ThrottleKey, ThrottleKind, ThrottlePolicy,
};
use crate::tokens::{AccessClaims, Grants, IdClaims, encode, encode_id_token};

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
    /// RFC 8707 §2: a `resource` this issuer does not mint tokens for.
    #[error("invalid_target")]
    InvalidTarget,
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
    /// Too many failed attempts for this client id or username: refused before any check,
    /// with 429 and `Retry-After`, under the error code of the credential that is locked.
    #[error("too many failed attempts")]
    Throttled {
        kind: ThrottleKind,
        /// Seconds until the lock ends.
        retry_after: i64,
    },
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
            OAuthError::InvalidTarget => "invalid_target",
            OAuthError::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthError::ServerError => "server_error",
            OAuthError::Throttled {
                kind: ThrottleKind::Client,
                ..
            } => "invalid_client",
            OAuthError::Throttled {
                kind: ThrottleKind::Account,
                ..
            } => "invalid_grant",
        }
    }

    /// The HTTP status: 401 for `invalid_client`, 429 while throttled, 503 and 500 for our
    /// faults, else 400.
    pub fn status(self) -> u16 {
        match self {
            OAuthError::InvalidClient => 401,
            OAuthError::Throttled { .. } => 429,
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
            OAuthError::InvalidTarget => {
                Some("resource must be the audience this issuer mints tokens for")
            }
            OAuthError::Throttled { .. } => Some("too many failed attempts; retry later"),
            _ => None,
        }
    }

    /// Seconds the client should wait before trying again (`Retry-After`), when throttled.
    pub fn retry_after(self) -> Option<i64> {
        match self {
            OAuthError::Throttled { retry_after, .. } => Some(retry_after.max(1)),
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
    /// Brute-force limits on client secrets and passwords.
    pub throttle: ThrottlePolicy,
    /// A refresh token unused for this many seconds expires.
    pub refresh_idle: i64,
    /// No refresh token of a family is honoured this many seconds after the family began.
    pub refresh_absolute: i64,
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
    /// The access token's `jti` and `exp`, for revocation.
    pub jti: String,
    pub expires_at: i64,
    /// RFC 6749 §6: only for confidential clients, never on `client_credentials`.
    pub refresh_token: Option<Secret>,
    /// OpenID Connect Core §2: when `openid` was requested on a user grant.
    pub id_token: Option<Secret>,
}

/// What an access token is minted for.
#[derive(Debug)]
struct Minting {
    client: ClientRecord,
    subject: Subject,
    /// The subject's permission version.
    pver: u64,
    /// For account tokens, the client's permission version.
    cver: Option<u64>,
    /// The store generation read at the start of the request, when the caller read one: the
    /// granted resources then come from [`IssuerCache`].
    generation: Option<i64>,
    scopes: Vec<String>,
    grant_type: GrantType,
    /// Set on user grants: an ID token is added when `openid` is among the scopes.
    openid: Option<OpenIdRequest>,
}

/// What an ID token needs from the sign-in.
#[derive(Debug, Clone)]
struct OpenIdRequest {
    nonce: Option<String>,
    auth_time: i64,
}

/// The scope that asks for an ID token (OpenID Connect Core §3.1.2.1).
pub const OPENID: &str = "openid";

/// The token endpoint's logic.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub settings: IssuerSettings,
    pub store: Arc<dyn Store>,
    pub key: Arc<SigningKeys>,
    pub clock: Arc<dyn Clock>,
    /// Client records and granted resources per store generation.
    pub cache: IssuerCache,
}

impl Issuer {
    /// Handles one `/token` request given its `authorization` values and form body.
    pub async fn token(&self, authorization: &[&str], body: &[u8]) -> Result<Issued, OAuthError> {
        let form = TokenForm::parse(body)?;
        if form.contains("client_secret") {
            // RFC 6749 §2.3.1: only HTTP Basic. With Basic as well it is two methods at once
            // (§5.2 invalid_request); alone it is an unsupported method (invalid_client).
            if authorization.is_empty() {
                return Err(OAuthError::InvalidClient);
            }
            return Err(OAuthError::InvalidRequest(
                "client_secret is not accepted in the body; use HTTP Basic authentication",
            ));
        }
        let grant_type = form
            .get("grant_type")
            .ok_or(OAuthError::InvalidRequest("grant_type is required"))?;
        let (client, generation) = self.authenticate(authorization, &form).await?;
        let grant_type = GrantType::parse(grant_type).ok_or(OAuthError::UnsupportedGrantType)?;
        if grant_type == GrantType::RefreshToken && client.kind == ClientKind::Public {
            // RFC 9700 §4.14.2: refreshing needs an authenticated (confidential) client.
            return Err(OAuthError::InvalidClient);
        }
        if !client.grant_types.contains(&grant_type) {
            return Err(OAuthError::UnauthorizedClient);
        }
        // RFC 8707: `resource` may narrow the audience; this issuer mints for one audience, so
        // the only resource it accepts is that audience itself.
        if form
            .get("resource")
            .is_some_and(|resource| resource != self.settings.audience)
        {
            return Err(OAuthError::InvalidTarget);
        }
        match grant_type {
            GrantType::ClientCredentials => {
                self.client_credentials(client, generation, &form).await
            }
            GrantType::Password => self.password(client, &form).await,
            GrantType::AuthorizationCode => self.authorization_code(client, &form).await,
            GrantType::RefreshToken => self.refresh(client, &form).await,
        }
    }

    /// RFC 6749 §4.4: the client acts for itself; never a refresh token (§4.4.3).
    async fn client_credentials(
        &self,
        client: ClientRecord,
        generation: i64,
        form: &TokenForm,
    ) -> Result<Issued, OAuthError> {
        let scopes = allowed_scopes(&client, form.get("scope"), false)?;
        let subject = Subject::Client(client.id.clone());
        let version = client.version;
        self.mint(Minting {
            client,
            subject,
            pver: version,
            cver: None,
            generation: Some(generation),
            scopes,
            grant_type: GrantType::ClientCredentials,
            openid: None,
        })
        .await
    }

    /// RFC 6749 §4.3: legacy, for clients explicitly allowed it.
    async fn password(&self, client: ClientRecord, form: &TokenForm) -> Result<Issued, OAuthError> {
        let scopes = allowed_scopes(&client, form.get("scope"), true)?;
        let username = form
            .get("username")
            .ok_or(OAuthError::InvalidRequest("username is required"))?;
        let password = form
            .get("password")
            .ok_or(OAuthError::InvalidRequest("password is required"))?;
        let account = self.sign_in(username, password).await?;
        let cver = Some(client.version);
        let mut issued = self
            .mint(Minting {
                client: client.clone(),
                subject: Subject::Account(account.username),
                pver: account.version,
                cver,
                generation: None,
                scopes,
                grant_type: GrantType::Password,
                openid: Some(OpenIdRequest {
                    nonce: None,
                    auth_time: self.clock.now(),
                }),
            })
            .await?;
        self.issue_refresh(&client, &mut issued).await?;
        Ok(issued)
    }

    /// Checks a person's password: the one place every grant and page that takes a password
    /// goes through. Unknown user, wrong password and disabled account all answer
    /// `invalid_grant`, after the same argon2 work (a dummy hash for unknown users), and all
    /// count toward the username's brute-force limit alike.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
    ) -> Result<AccountRecord, OAuthError> {
        self.throttled(
            ThrottleKey::account(username),
            self.check_password(username, password),
        )
        .await
    }

    async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<AccountRecord, OAuthError> {
        let account = self.store.account(username).await?;
        let hash = account
            .as_ref()
            .and_then(|a| a.password_hash.as_ref())
            .map(|hash| hash.expose().to_owned());
        let password = password.to_owned();
        // argon2 is deliberately slow and large: off the async workers, on threads of its own.
        let matches = password_threads::run(move || verify_password(hash.as_deref(), &password))
            .await
            .ok_or(OAuthError::ServerError)?;
        match account {
            Some(account) if matches && !account.disabled => Ok(account),
            _ => Err(OAuthError::InvalidGrant),
        }
    }

    /// Signs an access token for `minting` and lists the subject's resources.
    async fn mint(&self, minting: Minting) -> Result<Issued, OAuthError> {
        let Minting {
            client,
            subject,
            pver,
            cver,
            generation,
            scopes,
            grant_type,
            openid,
        } = minting;
        let granted = match generation {
            Some(generation) => {
                self.cache
                    .granted_resources(&self.store, generation, &subject)
                    .await?
            }
            None => Arc::new(self.store.granted_resources(&subject).await?),
        };
        let resources: Vec<Resource> = granted
            .iter()
            .filter(|resource| scopes.contains(&resource.kind))
            .cloned()
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
        // OpenID Connect Core §3.1.3.3: an ID token when a person signed in and asked for one.
        let id_token = match openid {
            Some(request)
                if matches!(subject, Subject::Account(_)) && scopes.iter().any(|s| s == OPENID) =>
            {
                let id_claims = IdClaims {
                    iss: self.settings.issuer.clone(),
                    sub: claims.sub.clone(),
                    aud: client.id.clone(),
                    azp: client.id.clone(),
                    exp: claims.exp,
                    iat: now,
                    auth_time: request.auth_time,
                    nonce: request.nonce,
                };
                let token =
                    encode_id_token(&id_claims, &key).map_err(|_| OAuthError::ServerError)?;
                Some(token)
            }
            _ => None,
        };
        Ok(Issued {
            access_token,
            expires_in: self.settings.ttl,
            scope,
            resources,
            subject: claims.sub,
            client_id: claims.client_id,
            grant_type,
            jti: claims.jti,
            expires_at: claims.exp,
            refresh_token: None,
            id_token,
        })
    }
}

/// The resource types a token may cover: the client's scopes, narrowed by `scope` if given.
/// On user grants (`person`) the `openid` scope is allowed too.
fn allowed_scopes(
    client: &ClientRecord,
    requested: Option<&str>,
    person: bool,
) -> Result<Vec<String>, OAuthError> {
    let mut scopes: Vec<String> = match requested {
        None => client.scopes.clone(),
        Some(requested) => {
            let mut scopes = Vec::new();
            for scope in requested.split(' ').filter(|s| !s.is_empty()) {
                let openid = person && scope == OPENID;
                if !openid && !client.scopes.iter().any(|allowed| allowed == scope) {
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
