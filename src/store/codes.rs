//! Authorization codes: stored hashed, redeemed at most once, remembering what they issued.
//!
//! The SQL is the same on both backends (sqlx binds `$N` on SQLite too), so one macro writes
//! the implementation for each store type.

use async_trait::async_trait;

use super::StoreError;

/// What a sign-in approved, kept under the code's digest until the client redeems it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    pub client_id: String,
    pub username: String,
    pub redirect_uri: String,
    /// `BASE64URL(SHA-256(code_verifier))` (RFC 7636 §4.2, S256).
    pub code_challenge: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// What the tokens minted for a code were, so that a replay can revoke them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeIssue {
    /// The access token's `jti` and `exp`.
    pub access: Option<(String, i64)>,
    /// The refresh-token family.
    pub family: Option<String>,
}

/// The outcome of redeeming a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// First use: the grant, now marked redeemed.
    Redeemed(CodeGrant),
    /// The code was redeemed before: what it issued then.
    Replayed(CodeIssue),
    /// No such code.
    Unknown,
}

/// Storage of authorization codes.
#[async_trait]
pub trait CodeStore {
    /// Stores a new code's digest with its grant; codes expired for a day are purged.
    async fn insert_code(
        &self,
        code_hash: &[u8],
        grant: &CodeGrant,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Marks the code redeemed, exactly once even under concurrent calls.
    async fn redeem_code(&self, code_hash: &[u8], now: i64) -> Result<Redemption, StoreError>;

    /// Remembers what the redeemed code issued.
    async fn record_code_issue(
        &self,
        code_hash: &[u8],
        issue: &CodeIssue,
    ) -> Result<(), StoreError>;
}

/// Expired codes are kept this long, so that a late replay is still recognised.
pub(crate) const KEEP_EXPIRED_SECONDS: i64 = 86_400;

pub(crate) fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

/// Implements [`CodeStore`] for a store type with a `pool` field.
macro_rules! impl_code_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::codes::CodeStore for $store {
            async fn insert_code(
                &self,
                code_hash: &[u8],
                grant: &$crate::store::codes::CodeGrant,
                now: i64,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::codes::{KEEP_EXPIRED_SECONDS, unavailable};
                sqlx::query("DELETE FROM authorization_codes WHERE expires_at < $1")
                    .bind(now - KEEP_EXPIRED_SECONDS)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
                sqlx::query(
                    "INSERT INTO authorization_codes (code_hash, client_id, username, \
                     redirect_uri, code_challenge, scope, nonce, auth_time, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(code_hash)
                .bind(&grant.client_id)
                .bind(&grant.username)
                .bind(&grant.redirect_uri)
                .bind(&grant.code_challenge)
                .bind(&grant.scope)
                .bind(&grant.nonce)
                .bind(grant.auth_time)
                .bind(grant.expires_at)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
                Ok(())
            }

            async fn redeem_code(
                &self,
                code_hash: &[u8],
                now: i64,
            ) -> Result<$crate::store::codes::Redemption, $crate::store::StoreError> {
                use $crate::store::codes::{CodeGrant, CodeIssue, Redemption, unavailable};
                type GrantRow = (String, String, String, String, String, Option<String>, i64, i64);
                // One conditional update: of two concurrent redemptions exactly one sees the row.
                let redeemed: Option<GrantRow> = sqlx::query_as(
                    "UPDATE authorization_codes SET redeemed_at = $2 \
                     WHERE code_hash = $1 AND redeemed_at IS NULL \
                     RETURNING client_id, username, redirect_uri, code_challenge, scope, nonce, \
                     auth_time, expires_at",
                )
                .bind(code_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
                if let Some(row) = redeemed {
                    let (client_id, username, redirect_uri, code_challenge, scope, nonce) =
                        (row.0, row.1, row.2, row.3, row.4, row.5);
                    return Ok(Redemption::Redeemed(CodeGrant {
                        client_id,
                        username,
                        redirect_uri,
                        code_challenge,
                        scope,
                        nonce,
                        auth_time: row.6,
                        expires_at: row.7,
                    }));
                }
                let earlier: Option<(Option<String>, Option<i64>, Option<String>)> =
                    sqlx::query_as(
                        "SELECT issued_jti, issued_exp, issued_family FROM authorization_codes \
                         WHERE code_hash = $1",
                    )
                    .bind(code_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(match earlier {
                    None => Redemption::Unknown,
                    Some((jti, exp, family)) => Redemption::Replayed(CodeIssue {
                        access: jti.zip(exp),
                        family,
                    }),
                })
            }

            async fn record_code_issue(
                &self,
                code_hash: &[u8],
                issue: &$crate::store::codes::CodeIssue,
            ) -> Result<(), $crate::store::StoreError> {
                let (jti, exp) = issue.access.clone().unzip();
                sqlx::query(
                    "UPDATE authorization_codes SET issued_jti = $2, issued_exp = $3, \
                     issued_family = $4 WHERE code_hash = $1",
                )
                .bind(code_hash)
                .bind(jti)
                .bind(exp)
                .bind(&issue.family)
                .execute(&self.pool)
                .await
                .map_err(crate::store::codes::unavailable)?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_code_store;
