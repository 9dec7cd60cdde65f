//! Access tokens (RFC 9068 JWT profile): minting and strict verification.
//!
//! Verification is done by hand over the compact serialisation rather than by a general JWT
//! library, so that every rule of the contract is visible in one place: the algorithm is fixed
//! by configuration, `typ` must be `at+jwt`, `crit` and embedded keys are refused, base64url
//! must be canonical, and numeric dates are checked without overflow.

mod claims;
mod json;
mod trust;
mod verify;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use claims::{AccessClaims, DB_MARKER, Grants, IdClaims, VerifiedToken};
pub use trust::{TrustSet, TrustedIssuer};
pub use verify::{OwnClaims, TokenError, VerifyPolicy, verify};

use crate::keys::{KeyError, SigningKey};
use crate::secret::Secret;

/// The JOSE `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The JOSE `typ` of ID tokens: anything but `at+jwt`, so the check path never takes one.
pub const ID_TOKEN_TYPE: &str = "JWT";

/// Signs `claims` as an RS256 access token with header `typ: at+jwt` and the key's `kid`.
pub fn encode(claims: &AccessClaims, key: &SigningKey) -> Result<Secret, KeyError> {
    sign(ACCESS_TOKEN_TYPE, claims, key)
}

/// Signs `claims` as an RS256 OpenID Connect ID token (`typ: JWT`).
pub fn encode_id_token(claims: &IdClaims, key: &SigningKey) -> Result<Secret, KeyError> {
    sign(ID_TOKEN_TYPE, claims, key)
}

fn sign(typ: &str, claims: &impl serde::Serialize, key: &SigningKey) -> Result<Secret, KeyError> {
    let header = serde_json::json!({
        "alg": "RS256",
        "typ": typ,
        "kid": key.kid(),
    });
    let header = serde_json::to_vec(&header).map_err(|_| KeyError::Sign)?;
    let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(Secret::new(token))
}
