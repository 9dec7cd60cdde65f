//! The authorization-code grant with PKCE (RFC 6749 §4.1, RFC 7636 S256 only, RFC 9700 §2.1.1):
//! checking an authorization request, turning a sign-in into a single-use code, and redeeming
//! the code at `/token`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Issued, Issuer, Minting, OAuthError, OpenIdRequest, TokenForm, allowed_scopes};
use crate::catalogue::Subject;
use crate::policy::GrantType;
use crate::secret::Secret;
use crate::store::ClientRecord;
use crate::store::codes::{CodeGrant, CodeIssue, Redemption};

/// How long a code may wait for its redemption (RFC 6749 §4.1.2 recommends at most ten minutes).
pub const CODE_TTL_SECONDS: i64 = 60;

/// Longest `state` and `nonce` accepted: the values travel back in a URL and a token.
const MAX_ECHOED_BYTES: usize = 512;

/// An authorization request that passed every check: safe to show the sign-in page for.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client: ClientRecord,
    pub redirect_uri: String,
    /// Granted scopes, `openid` included when asked for.
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub code_challenge: String,
    pub nonce: Option<String>,
}

impl AuthorizationRequest {
    /// The request's parameters, to carry through the sign-in form unchanged.
    pub fn parameters(&self) -> Vec<(&'static str, String)> {
        let mut parameters = vec![
            ("response_type", "code".to_owned()),
            ("client_id", self.client.id.clone()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("scope", self.scopes.join(" ")),
            ("code_challenge", self.code_challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
        ];
        if let Some(state) = &self.state {
            parameters.push(("state", state.clone()));
        }
        if let Some(nonce) = &self.nonce {
            parameters.push(("nonce", nonce.clone()));
        }
        parameters
    }

    /// Where the browser goes back to with `code` or `error` (RFC 6749 §4.1.2), `state` and
    /// `iss` (RFC 9207).
    pub fn redirect(&self, issuer: &str, outcome: &[(&str, &str)]) -> String {
        redirect_to(&self.redirect_uri, issuer, outcome, self.state.as_deref())
    }
}

/// Why an authorization request cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// The client or the redirect URI cannot be trusted: tell the person, never redirect
    /// (RFC 6749 §4.1.2.1).
    #[error("invalid authorization request: {0}")]
    Untrusted(&'static str),
    /// Tell the client, at its registered redirect URI.
    #[error("{error}")]
    Redirect {
        location: String,
        error: &'static str,
    },
    /// The store did not answer.
    #[error("temporarily unavailable")]
    Unavailable,
}

/// Why a sign-in on the form did not produce a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignInFailure {
    /// Unknown user, wrong password or disabled account: one answer for all three.
    #[error("the username or password is incorrect")]
    BadCredentials,
    /// Username or password missing.
    #[error("enter a username and a password")]
    Incomplete,
    /// Too many failures: try again after this many seconds.
    #[error("too many failed attempts")]
    Throttled(u64),
    #[error("temporarily unavailable")]
    Unavailable,
}

impl Issuer {
    /// Checks `/authorize` parameters, in the order RFC 6749 §4.1.2.1 requires: the client and
    /// redirect URI first (errors shown, never redirected), then the rest (errors redirected).
    pub async fn authorization_request(
        &self,
        params: &TokenForm,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let client_id = params
            .get("client_id")
            .ok_or(AuthorizeError::Untrusted("client_id is missing"))?;
        let client = match self.store.client(client_id).await {
            Ok(Some(client)) if !client.disabled => client,
            Ok(_) => return Err(AuthorizeError::Untrusted("unknown client")),
            Err(_) => return Err(AuthorizeError::Unavailable),
        };
        if !client.grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(AuthorizeError::Untrusted(
                "this client does not sign people in here",
            ));
        }
        let redirect_uri = match (params.get("redirect_uri"), client.redirect_uris.as_slice()) {
            // Exact string comparison (RFC 9700 §2.1): no prefix, no normalisation.
            (Some(given), registered) if registered.iter().any(|uri| uri == given) => {
                given.to_owned()
            }
            (Some(_), _) => {
                return Err(AuthorizeError::Untrusted(
                    "redirect_uri is not registered for this client",
                ));
            }
            (None, [only]) => only.clone(),
            (None, _) => return Err(AuthorizeError::Untrusted("redirect_uri is missing")),
        };

        let state = params.get("state").map(str::to_owned);
        let refuse = |error: &'static str| AuthorizeError::Redirect {
            location: redirect_to(
                &redirect_uri,
                &self.settings.issuer,
                &[("error", error)],
                state.as_deref().filter(|s| s.len() <= MAX_ECHOED_BYTES),
            ),
            error,
        };
        if state.as_ref().is_some_and(|s| s.len() > MAX_ECHOED_BYTES) {
            return Err(refuse("invalid_request"));
        }
        match params.get("response_type") {
            Some("code") => {}
            Some(_) => return Err(refuse("unsupported_response_type")),
            None => return Err(refuse("invalid_request")),
        }
        // PKCE is required, and only S256 (RFC 9700 §2.1.1): `plain` or no method is refused.
        let code_challenge = params
            .get("code_challenge")
            .filter(|challenge| is_s256_challenge(challenge))
            .ok_or_else(|| refuse("invalid_request"))?;
        if params.get("code_challenge_method") != Some("S256") {
            return Err(refuse("invalid_request"));
        }
        let nonce = params.get("nonce").map(str::to_owned);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_ECHOED_BYTES) {
            return Err(refuse("invalid_request"));
        }
        let scopes = allowed_scopes(&client, params.get("scope"), true)
            .map_err(|_| refuse("invalid_scope"))?;

        Ok(AuthorizationRequest {
            client,
            redirect_uri,
            scopes,
            state,
            code_challenge: code_challenge.to_owned(),
            nonce,
        })
    }

    /// Signs the person in and, on success, stores a fresh single-use code and answers the
    /// redirect that carries it.
    pub async fn approve(
        &self,
        request: &AuthorizationRequest,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<String, SignInFailure> {
        let (Some(username), Some(password)) = (username, password) else {
            return Err(SignInFailure::Incomplete);
        };
        let account = match self.sign_in(username, password).await {
            Ok(account) => account,
            Err(OAuthError::InvalidGrant) => return Err(SignInFailure::BadCredentials),
            Err(error) => return Err(sign_in_failure(error)),
        };

        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let code = Secret::new(URL_SAFE_NO_PAD.encode(bytes));
        let now = self.clock.now();
        let grant = CodeGrant {
            client_id: request.client.id.clone(),
            username: account.username,
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            scope: request.scopes.join(" "),
            nonce: request.nonce.clone(),
            auth_time: now,
            expires_at: now + CODE_TTL_SECONDS,
        };
        self.store
            .insert_code(&digest(code.expose()), &grant, now)
            .await
            .map_err(|_| SignInFailure::Unavailable)?;
        Ok(request.redirect(&self.settings.issuer, &[("code", code.expose())]))
    }

    /// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
    pub(super) async fn authorization_code(
        &self,
        client: ClientRecord,
        form: &TokenForm,
    ) -> Result<Issued, OAuthError> {
        let code = form
            .get("code")
            .ok_or(OAuthError::InvalidRequest("code is required"))?;
        let verifier = form
            .get("code_verifier")
            .ok_or(OAuthError::InvalidRequest("code_verifier is required"))?;
        if !is_code_verifier(verifier) {
            return Err(OAuthError::InvalidRequest(
                "code_verifier must be 43 to 128 unreserved characters",
            ));
        }
        let redirect_uri = form
            .get("redirect_uri")
            .ok_or(OAuthError::InvalidRequest("redirect_uri is required"))?;

        let code_hash = digest(code);
        let now = self.clock.now();
        let grant = match self.store.redeem_code(&code_hash, now).await? {
            Redemption::Redeemed(grant) => grant,
            Redemption::Unknown => return Err(OAuthError::InvalidGrant),
            Redemption::Replayed(issue) => {
                // RFC 6749 §4.1.2: a code used twice revokes what it issued.
                tracing::warn!(client.id = %client.id, "authorization code replayed");
                self.revoke_code_issue(&issue).await?;
                return Err(OAuthError::InvalidGrant);
            }
        };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let verified = bool::from(challenge.as_bytes().ct_eq(grant.code_challenge.as_bytes()));
        if grant.client_id != client.id
            || grant.expires_at < now
            || grant.redirect_uri != redirect_uri
            || !verified
        {
            return Err(OAuthError::InvalidGrant);
        }
        let account = match self.store.account(&grant.username).await? {
            Some(account) if !account.disabled => account,
            _ => return Err(OAuthError::InvalidGrant),
        };

        let scopes: Vec<String> = grant.scope.split(' ').map(str::to_owned).collect();
        let cver = Some(client.version);
        let mut issued = self
            .mint(Minting {
                client: client.clone(),
                subject: Subject::Account(account.username),
                pver: account.version,
                cver,
                generation: None,
                scopes,
                grant_type: GrantType::AuthorizationCode,
                openid: Some(OpenIdRequest {
                    nonce: grant.nonce,
                    auth_time: grant.auth_time,
                }),
            })
            .await?;
        let family = self.issue_refresh(&client, &mut issued).await?;
        let issue = CodeIssue {
            access: Some((issued.jti.clone(), issued.expires_at)),
            family,
        };
        self.store.record_code_issue(&code_hash, &issue).await?;
        Ok(issued)
    }

    /// Revokes the tokens a replayed code issued: its refresh family and its access token.
    async fn revoke_code_issue(&self, issue: &CodeIssue) -> Result<(), OAuthError> {
        if let Some((jti, exp)) = &issue.access {
            self.revoke_issued(issue.family.as_deref(), jti, *exp)
                .await?;
        }
        Ok(())
    }
}

fn sign_in_failure(error: OAuthError) -> SignInFailure {
    match error {
        OAuthError::InvalidGrant => SignInFailure::BadCredentials,
        OAuthError::Throttled { retry_after, .. } => {
            SignInFailure::Throttled(u64::try_from(retry_after.max(1)).unwrap_or(1))
        }
        _ => SignInFailure::Unavailable,
    }
}

/// SHA-256 of a code: codes are 256-bit random values, so a fast digest is enough.
fn digest(code: &str) -> Vec<u8> {
    Sha256::digest(code.as_bytes()).to_vec()
}

/// `uri` with `outcome`, `state` and `iss` appended to its query.
fn redirect_to(uri: &str, issuer: &str, outcome: &[(&str, &str)], state: Option<&str>) -> String {
    let Ok(mut url) = url::Url::parse(uri) else {
        return uri.to_owned();
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in outcome {
            query.append_pair(name, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    url.into()
}

/// An S256 challenge is the base64url of a SHA-256 digest: 43 characters.
fn is_s256_challenge(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Z] [a-z] [0-9] - . _ ~`.
fn is_code_verifier(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_challenge_matches_its_verifier() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(is_code_verifier(verifier));
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(is_s256_challenge(&challenge));
        assert!(!is_code_verifier("short"));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn redirects_keep_the_registered_query_and_add_state_and_iss() {
        let location = redirect_to(
            "https://app.example/cb?tenant=7",
            "https://auth.test",
            &[("code", "abc")],
            Some("x y"),
        );
        assert_eq!(
            location,
            "https://app.example/cb?tenant=7&code=abc&state=x+y&iss=https%3A%2F%2Fauth.test"
        );
    }
}
