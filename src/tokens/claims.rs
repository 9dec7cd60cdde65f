//! The claims gatehouse puts in access tokens, and what a verified token yields.

use serde::{Deserialize, Serialize};

/// The `grants` value that tells the check path to ask the database.
pub const DB_MARKER: &str = "db";

/// Where a token's grants live: listed in the token, or in the database.
///
/// "No grants" (`[]`) and "look them up" (`"db"`) are distinct on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Grants {
    /// The ids of every resource the subject may use, at most the configured threshold.
    Listed(Vec<String>),
    /// More grants than the threshold: the token carries [`DB_MARKER`].
    Lookup(String),
}

impl Grants {
    /// The database marker.
    pub fn lookup() -> Self {
        Grants::Lookup(DB_MARKER.to_owned())
    }
}

/// Claims of an access token as minted (RFC 9068 §2.2 plus gatehouse's own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// The subject's permission version when the token was minted.
    pub pver: u64,
    /// The client's permission version, on tokens minted for an account.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cver: Option<u64>,
    pub grants: Grants,
}

/// Claims of an OpenID Connect ID token (Core §2): who signed in, for which client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    /// The client the ID token is for.
    pub aud: String,
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
}

/// What the check path learns from a token that passed verification.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub subject: String,
    pub client_id: String,
    pub jti: String,
    /// The resource types the token covers; `None` (an external token without `scope`)
    /// excludes none.
    pub scopes: Option<Vec<String>>,
    pub expires_at: f64,
    /// The subject's permission version; `None` on external tokens, which their lifetime bounds.
    pub pver: Option<u64>,
    pub cver: Option<u64>,
    pub grants: Grants,
}

impl VerifiedToken {
    /// Whether the token speaks for an account rather than a client acting for itself: minted
    /// by the password grant (it carries `cver`), or an external token without gatehouse's
    /// `pver`, whose `sub` names an account.
    pub fn is_account_token(&self) -> bool {
        self.cver.is_some() || self.pver.is_none()
    }
}
