//! The trust set: every issuer whose tokens are accepted, with its policy and current keys.
//!
//! A token's key is found by its `kid` across all issuers, never by its claims: claims are
//! read only after a key has verified the signature, and then `iss` must name the issuer that
//! owns that key. Which issuers exist and when their keys were fetched is the adapter's
//! business (`crate::jwks`); this module only decides with what it is handed.

use std::sync::Arc;

use super::verify::{TokenError, VerifyPolicy};
use crate::keys::VerificationKeys;

/// One trusted issuer: what its tokens must satisfy and the keys it signs with.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    pub policy: VerifyPolicy,
    /// The issuer's keys; `None` until they were loaded once.
    pub keys: Option<Arc<VerificationKeys>>,
    /// The keys are honoured up to this time (Unix seconds); `None` for keys that never go
    /// stale (gatehouse's own). Past it, the issuer's tokens are answered 503, not 401.
    pub honoured_until: Option<i64>,
}

impl TrustedIssuer {
    /// Whether the keys may be used at `now`.
    fn usable(&self, now: i64) -> bool {
        self.keys.is_some() && self.honoured_until.is_none_or(|until| now <= until)
    }
}

/// Every trusted issuer. An empty set refuses every token.
#[derive(Debug, Clone, Default)]
pub struct TrustSet {
    issuers: Vec<TrustedIssuer>,
    max_token_bytes: usize,
}

/// The issuers whose key named by the token's `kid` verified its signature.
#[derive(Debug)]
pub(super) struct Signers<'a> {
    matches: Vec<(&'a TrustedIssuer, bool)>,
}

impl TrustSet {
    /// A trust set of `issuers`.
    pub fn new(issuers: Vec<TrustedIssuer>) -> Self {
        let max_token_bytes = issuers
            .iter()
            .map(|issuer| issuer.policy.max_token_bytes)
            .max()
            .unwrap_or(0);
        Self {
            issuers,
            max_token_bytes,
        }
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[TrustedIssuer] {
        &self.issuers
    }

    /// Tokens longer than this are refused before decoding.
    pub(super) fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// Verifies `signature` over `message` with every key named `kid`.
    ///
    /// Fails with [`TokenError::KeysUnavailable`] when no key verified it and some issuer's keys
    /// are missing or too stale (the token may be that issuer's), with
    /// [`TokenError::Signature`] when a key of that name exists but did not verify it, and with
    /// [`TokenError::UnknownKey`] otherwise — the one error after which fetching keys again can
    /// help.
    pub(super) fn signers(
        &self,
        kid: &str,
        message: &[u8],
        signature: &[u8],
        now: i64,
    ) -> Result<Signers<'_>, TokenError> {
        let mut matches = Vec::new();
        let mut kid_known = false;
        let mut unavailable = false;
        for issuer in &self.issuers {
            let usable = issuer.usable(now);
            unavailable |= !usable;
            let Some(keys) = &issuer.keys else { continue };
            match keys.verify(kid, message, signature) {
                None => {}
                Some(false) => kid_known = true,
                Some(true) => matches.push((issuer, usable)),
            }
        }
        if !matches.is_empty() {
            Ok(Signers { matches })
        } else if unavailable {
            Err(TokenError::KeysUnavailable)
        } else if kid_known {
            Err(TokenError::Signature)
        } else {
            Err(TokenError::UnknownKey)
        }
    }
}

impl<'a> Signers<'a> {
    /// The issuer named by the verified token's `iss`, provided it owns the key that signed it.
    pub(super) fn owner(&self, iss: Option<&str>) -> Result<&'a TrustedIssuer, TokenError> {
        let mut stale = false;
        for (issuer, usable) in &self.matches {
            if Some(issuer.policy.issuer.as_str()) == iss {
                if *usable {
                    return Ok(issuer);
                }
                stale = true;
            }
        }
        Err(if stale {
            TokenError::KeysUnavailable
        } else {
            TokenError::Issuer
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::super::{OwnClaims, verify};
    use super::*;
    use crate::keys::{JwkSet, SigningKey};

    const NOW: i64 = 1_750_000_000;

    fn policy(issuer: &str, own_claims: OwnClaims) -> VerifyPolicy {
        VerifyPolicy {
            issuer: issuer.into(),
            audience: "api".into(),
            leeway: 60,
            max_lifetime: 86_400,
            max_token_bytes: 16 * 1024,
            own_claims,
        }
    }

    fn keys(key: &SigningKey) -> Arc<VerificationKeys> {
        let set = JwkSet {
            keys: vec![key.jwk().clone()],
        };
        Arc::new(VerificationKeys::from_jwks(&set).unwrap())
    }

    fn issuer(name: &str, key: &SigningKey, honoured_until: Option<i64>) -> TrustedIssuer {
        TrustedIssuer {
            policy: policy(name, OwnClaims::Optional),
            keys: Some(keys(key)),
            honoured_until,
        }
    }

    fn token(key: &SigningKey, iss: &str) -> String {
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": key.kid()});
        let claims = json!({
            "iss": iss, "sub": "alice", "aud": "api", "client_id": "web", "jti": "j1",
            "iat": NOW, "exp": NOW + 600,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).unwrap());
        format!("{input}.{signature}")
    }

    #[test]
    fn a_token_must_name_the_issuer_that_owns_its_key() {
        let (a, b) = (
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
        );
        let trust = TrustSet::new(vec![
            issuer("https://a.test", &a, None),
            issuer("https://b.test", &b, None),
        ]);
        assert_eq!(
            verify(&token(&a, "https://a.test"), &trust, NOW)
                .unwrap()
                .subject,
            "alice"
        );
        assert!(verify(&token(&b, "https://b.test"), &trust, NOW).is_ok());
        // Signed by A's key, claiming B: refused although B is trusted.
        assert_eq!(
            verify(&token(&a, "https://b.test"), &trust, NOW),
            Err(TokenError::Issuer)
        );
    }

    #[test]
    fn unknown_kid_and_unavailable_keys_are_told_apart() {
        let (a, b) = (
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
        );
        let trust = TrustSet::new(vec![issuer("https://a.test", &a, Some(NOW + 10))]);
        assert_eq!(
            verify(&token(&b, "https://a.test"), &trust, NOW),
            Err(TokenError::UnknownKey)
        );
        // Past the staleness bound the issuer's own tokens are unavailable, not invalid.
        assert_eq!(
            verify(&token(&a, "https://a.test"), &trust, NOW + 11),
            Err(TokenError::KeysUnavailable)
        );
        // Keys never loaded: nobody can tell whose the token is.
        let mut cold = issuer("https://a.test", &a, None);
        cold.keys = None;
        let trust = TrustSet::new(vec![cold]);
        assert_eq!(
            verify(&token(&a, "https://a.test"), &trust, NOW),
            Err(TokenError::KeysUnavailable)
        );
    }

    #[test]
    fn external_tokens_without_gatehouse_claims_defer_to_the_database() {
        let a = SigningKey::generate().unwrap();
        let trust = TrustSet::new(vec![issuer("https://a.test", &a, None)]);
        let verified = verify(&token(&a, "https://a.test"), &trust, NOW).unwrap();
        assert_eq!(verified.pver, None);
        assert_eq!(verified.scopes, None);
        assert_eq!(verified.grants, crate::tokens::Grants::lookup());
        assert!(verified.is_account_token());

        // The same token is refused where gatehouse's claims are required.
        let mut own = issuer("https://a.test", &a, None);
        own.policy.own_claims = OwnClaims::Required;
        let trust = TrustSet::new(vec![own]);
        assert_eq!(
            verify(&token(&a, "https://a.test"), &trust, NOW),
            Err(TokenError::Claims)
        );
    }
}
