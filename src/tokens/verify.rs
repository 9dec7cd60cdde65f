//! Strict verification of compact RS256 access tokens, against every trusted issuer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::ACCESS_TOKEN_TYPE;
use super::claims::{DB_MARKER, Grants, VerifiedToken};
use super::json::parse_object;
use super::trust::TrustSet;

/// Header parameters that would let a token choose its own key or key source.
const KEY_SOURCE_PARAMETERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

/// What a verifier accepts, fixed by configuration.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// The exact `iss` value.
    pub issuer: String,
    /// The audience that must appear in `aud`.
    pub audience: String,
    /// Clock-skew leeway in seconds for `exp`, `nbf` and `iat`.
    pub leeway: i64,
    /// The longest lifetime (`exp − iat`) accepted, in seconds.
    pub max_lifetime: i64,
    /// Tokens longer than this many bytes are refused before any decoding.
    pub max_token_bytes: usize,
    /// Whether tokens must carry gatehouse's own claims (`pver`, `grants`).
    pub own_claims: OwnClaims,
}

/// Whether an issuer's tokens must carry gatehouse's own claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnClaims {
    /// gatehouse's own tokens: `pver` and `grants` are required.
    Required,
    /// An external issuer's tokens: without `grants` the check asks the database for the
    /// account named by `sub`, without `pver` no staleness check applies, and without `scope`
    /// no resource type is excluded. Where the claims are present they are used as on
    /// gatehouse's own tokens.
    Optional,
}

/// Why a token was refused. Every variant but [`TokenError::KeysUnavailable`] (503) is
/// answered 401 `invalid_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is larger than allowed")]
    TooLarge,
    #[error("token is not a canonical compact JWS")]
    Malformed,
    #[error("token algorithm is not the configured one")]
    Algorithm,
    #[error("token type is not at+jwt")]
    Type,
    #[error("token header is not acceptable")]
    Header,
    #[error("token key id is unknown")]
    UnknownKey,
    #[error("token signature is invalid")]
    Signature,
    #[error("token claims are malformed")]
    Claims,
    #[error("token issuer is not trusted")]
    Issuer,
    #[error("token audience does not match")]
    Audience,
    #[error("token has expired")]
    Expired,
    #[error("token is not yet valid")]
    NotYetValid,
    #[error("token lifetime is longer than allowed")]
    Lifetime,
    #[error("the keys of the token's issuer are unavailable")]
    KeysUnavailable,
}

impl TokenError {
    /// A short, stable reason code, safe to show the client.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::TooLarge => "token_too_large",
            TokenError::Malformed => "token_malformed",
            TokenError::Algorithm => "token_algorithm_refused",
            TokenError::Type => "token_type_refused",
            TokenError::Header => "token_header_refused",
            TokenError::UnknownKey => "token_key_unknown",
            TokenError::Signature => "token_signature_invalid",
            TokenError::Claims => "token_claims_invalid",
            TokenError::Issuer => "token_issuer_mismatch",
            TokenError::Audience => "token_audience_mismatch",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::Lifetime => "token_lifetime_too_long",
            TokenError::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// Verifies a compact access token at time `now` (Unix seconds) against the trust set.
///
/// The order is chosen so that cheap checks run first and attacker-supplied claims are parsed
/// only after the signature is known to be good; the key is chosen by `kid` alone, and `iss`
/// must then name the issuer that owns it.
pub fn verify(token: &str, trust: &TrustSet, now: i64) -> Result<VerifiedToken, TokenError> {
    if token.len() > trust.max_token_bytes() {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if header_b64.is_empty() || payload_b64.is_empty() || signature_b64.is_empty() {
        return Err(TokenError::Malformed);
    }

    let header = decode_object(header_b64)?;
    let kid = check_header(&header)?;

    // Everything that can be checked without a key is, so that malformed input never makes
    // the adapter fetch keys: the payload is decoded (not yet parsed), and the signature must
    // have the length of an RSA-2048 to RSA-8192 signature.
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| TokenError::Malformed)?;
    if !(256..=1024).contains(&signature.len()) {
        return Err(TokenError::Malformed);
    }
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    let signers = trust.signers(kid, signing_input.as_bytes(), &signature, now)?;

    let claims = parse_object(&payload).ok_or(TokenError::Malformed)?;
    let issuer = signers.owner(claims.get("iss").and_then(Value::as_str))?;
    check_claims(&claims, &issuer.policy, now as f64)
}

fn decode_object(segment: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)?;
    parse_object(&bytes).ok_or(TokenError::Malformed)
}

/// Checks the JOSE header and returns the `kid`.
fn check_header(header: &Map<String, Value>) -> Result<&str, TokenError> {
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(TokenError::Algorithm);
    }
    let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
    let typ = typ.to_ascii_lowercase();
    if typ != ACCESS_TOKEN_TYPE && typ != "application/at+jwt" {
        return Err(TokenError::Type);
    }
    if header.contains_key("crit")
        || KEY_SOURCE_PARAMETERS
            .iter()
            .any(|p| header.contains_key(*p))
    {
        return Err(TokenError::Header);
    }
    match header.get("kid").and_then(Value::as_str) {
        Some(kid) if !kid.is_empty() && kid.len() <= 256 => Ok(kid),
        _ => Err(TokenError::Header),
    }
}

fn check_claims(
    claims: &Map<String, Value>,
    policy: &VerifyPolicy,
    now: f64,
) -> Result<VerifiedToken, TokenError> {
    if claims.get("iss").and_then(Value::as_str) != Some(policy.issuer.as_str()) {
        return Err(TokenError::Issuer);
    }
    if !audience_matches(claims.get("aud"), &policy.audience) {
        return Err(TokenError::Audience);
    }

    let leeway = policy.leeway as f64;
    let exp = numeric_date(claims.get("exp"))?.ok_or(TokenError::Claims)?;
    let iat = numeric_date(claims.get("iat"))?.ok_or(TokenError::Claims)?;
    let nbf = numeric_date(claims.get("nbf"))?;
    if exp <= 0.0 || now >= exp + leeway {
        return Err(TokenError::Expired);
    }
    if iat > now + leeway || nbf.is_some_and(|nbf| nbf > now + leeway) {
        return Err(TokenError::NotYetValid);
    }
    if exp - iat > policy.max_lifetime as f64 || exp - iat <= 0.0 {
        return Err(TokenError::Lifetime);
    }

    let subject = visible_string(claims.get("sub"))?;
    let client_id = visible_string(claims.get("client_id"))?;
    let jti = visible_string(claims.get("jti"))?;
    let required = policy.own_claims == OwnClaims::Required;
    let scopes = match claims.get("scope") {
        // gatehouse's own tokens always carry `scope`; one without covers nothing.
        None if required => Some(Vec::new()),
        None => None,
        Some(Value::String(scope)) if scope.bytes().all(|b| (0x20..0x7f).contains(&b)) => Some(
            scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        Some(_) => return Err(TokenError::Claims),
    };
    let pver = match claims.get("pver") {
        None if !required => None,
        value => Some(value.and_then(Value::as_u64).ok_or(TokenError::Claims)?),
    };
    let cver = match claims.get("cver") {
        None => None,
        Some(value) => Some(value.as_u64().ok_or(TokenError::Claims)?),
    };
    let grants = match claims.get("grants") {
        None if !required => Grants::lookup(),
        Some(Value::String(marker)) if marker == DB_MARKER => Grants::lookup(),
        Some(Value::Array(ids)) => Grants::Listed(
            ids.iter()
                .map(|id| id.as_str().map(str::to_owned).ok_or(TokenError::Claims))
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(TokenError::Claims),
    };

    Ok(VerifiedToken {
        subject,
        client_id,
        jti,
        scopes,
        expires_at: exp,
        pver,
        cver,
        grants,
    })
}

/// `aud` is the configured audience, or an array of strings that contains it (RFC 7519 §4.1.3).
fn audience_matches(aud: Option<&Value>, expected: &str) -> bool {
    match aud {
        Some(Value::String(aud)) => aud == expected,
        Some(Value::Array(values)) => {
            values.iter().all(Value::is_string)
                && values.iter().any(|v| v.as_str() == Some(expected))
        }
        _ => false,
    }
}

/// A NumericDate (RFC 7519 §2): any finite JSON number; absent is `None`, anything else fails.
fn numeric_date(value: Option<&Value>) -> Result<Option<f64>, TokenError> {
    match value {
        None => Ok(None),
        Some(Value::Number(number)) => match number.as_f64() {
            Some(seconds) if seconds.is_finite() => Ok(Some(seconds)),
            _ => Err(TokenError::Claims),
        },
        Some(_) => Err(TokenError::Claims),
    }
}

/// A string claim copied into headers and logs: 1–255 bytes of visible ASCII.
fn visible_string(value: Option<&Value>) -> Result<String, TokenError> {
    match value {
        Some(Value::String(text))
            if !text.is_empty()
                && text.len() <= 255
                && text.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            Ok(text.clone())
        }
        _ => Err(TokenError::Claims),
    }
}
