//! Refresh-token families and revoked access tokens: the storage behind rotation, replay
//! detection, revocation (RFC 7009) and introspection (RFC 7662).
//!
//! Refresh tokens are kept only as the SHA-256 of the token string. Every refresh token belongs
//! to a family (one grant and every token rotated from it); revoking the family ends all of
//! them, and lists the access tokens issued with them as revoked too.

use async_trait::async_trait;

use super::StoreError;
use crate::catalogue::Subject;

/// How long after its `exp` a revoked access token stays listed: the largest `leeway_seconds`
/// the configuration allows, during which verification may still accept the token.
pub const REVOCATION_MARGIN_SECONDS: i64 = 300;

/// The SHA-256 of a refresh token: all the store ever sees of it.
pub type RefreshHash = [u8; 32];

/// A refresh-token family about to start.
#[derive(Debug, Clone)]
pub struct NewFamily {
    pub id: String,
    /// The client the family is bound to: no other client may use its tokens.
    pub client_id: String,
    pub subject: Subject,
    /// The scope granted at the start, space-separated.
    pub scope: String,
    pub created_at: i64,
    /// The absolute lifetime (Unix seconds).
    pub expires_at: i64,
}

/// A refresh token about to be stored in a family.
#[derive(Debug, Clone)]
pub struct NewRefresh {
    pub hash: RefreshHash,
    pub family_id: String,
    pub issued_at: i64,
    /// The idle lifetime (Unix seconds), never past the family's.
    pub expires_at: i64,
    /// The access token issued together with this refresh token, and its `exp`.
    pub access_jti: Option<String>,
    pub access_expires_at: Option<i64>,
}

/// A stored refresh token with what its family says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub family_id: String,
    pub client_id: String,
    pub subject: Subject,
    pub scope: String,
    /// The token's idle expiry.
    pub expires_at: i64,
    /// The family's absolute expiry.
    pub family_expires_at: i64,
    /// Whether a refresh already rotated this token.
    pub used: bool,
    /// Whether the family was revoked.
    pub revoked: bool,
}

impl RefreshRecord {
    /// When the token stops being usable: the earlier of its idle and its family's expiry.
    pub fn expiry(&self) -> i64 {
        self.expires_at.min(self.family_expires_at)
    }

    /// Whether the token may still be exchanged at `now`.
    pub fn usable_at(&self, now: i64) -> bool {
        !self.used && !self.revoked && now < self.expiry()
    }
}

/// Refresh families and revoked access tokens, implemented once per backend.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new family with its first token, in one transaction. Families past their
    /// absolute lifetime are purged on the way.
    async fn start_family(&self, family: &NewFamily, first: &NewRefresh) -> Result<(), StoreError>;

    /// The refresh token with this hash, whatever its state.
    async fn find_refresh(&self, hash: &RefreshHash) -> Result<Option<RefreshRecord>, StoreError>;

    /// Marks `used` as used and stores `successor` in its family, in one transaction. The mark
    /// is a conditional update (`used_at IS NULL`, unexpired, family neither revoked nor
    /// expired): of several concurrent rotations of one token exactly one returns `true`; the
    /// others change nothing and return `false`.
    async fn rotate_refresh(
        &self,
        used: &RefreshHash,
        successor: &NewRefresh,
    ) -> Result<bool, StoreError>;

    /// Revokes a family and lists the unexpired access tokens issued with its refresh tokens
    /// as revoked (bumping the generation, so every gatehouse reloads). Returns whether the
    /// family was live until now.
    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<bool, StoreError>;

    /// Lists an access token as revoked until `expires_at` (plus the margin) and bumps the
    /// generation. Expired rows are purged on the way.
    async fn revoke_access(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), StoreError>;

    /// Whether the access token with this `jti` is listed as revoked.
    async fn access_revoked(&self, jti: &str) -> Result<bool, StoreError>;
}
