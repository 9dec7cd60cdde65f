//! `POST /revoke` (RFC 7009) and `POST /introspect` (RFC 7662): the adapters around
//! [`crate::issuer::Issuer::revoke`] and [`crate::issuer::Issuer::introspect`]. Requests are
//! read and refused exactly as at `/token`; answers are never cached.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::token::{error_response, form_request, no_store};
use crate::issuer::{OAuthError, Revocation};
use crate::server::Gatehouse;

pub(super) fn routes() -> Router<Arc<Gatehouse>> {
    let not_allowed = || async { no_store(StatusCode::METHOD_NOT_ALLOWED.into_response()) };
    Router::new()
        .route("/revoke", post(revoke).fallback(not_allowed))
        .route("/introspect", post(introspect).fallback(not_allowed))
}

async fn revoke(
    State(gatehouse): State<Arc<Gatehouse>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = async {
        let authorization = form_request(&uri, &headers)?;
        let (issuer, trust) = own_issuer(&gatehouse)?;
        issuer.revoke(&authorization, &body, &trust).await
    }
    .await;
    match outcome {
        Ok(revocation) => {
            match revocation {
                Revocation::Nothing => tracing::debug!("revocation changed nothing"),
                Revocation::AccessToken { jti } => {
                    tracing::info!(jti = %jti, "access token revoked");
                }
                Revocation::RefreshFamily { family } => {
                    tracing::info!(refresh.family = %family, "refresh token family revoked");
                }
            }
            // RFC 7009 §2.2: 200 whether or not there was anything to revoke.
            no_store(StatusCode::OK.into_response())
        }
        Err(error) => refused(&gatehouse, error, "revoke"),
    }
}

async fn introspect(
    State(gatehouse): State<Arc<Gatehouse>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = async {
        let authorization = form_request(&uri, &headers)?;
        let (issuer, trust) = own_issuer(&gatehouse)?;
        let snapshot = gatehouse.snapshot();
        issuer
            .introspect(&authorization, &body, &trust, &snapshot)
            .await
    }
    .await;
    match outcome {
        Ok(answer) => no_store(axum::Json(answer).into_response()),
        Err(error) => refused(&gatehouse, error, "introspect"),
    }
}

/// The issuer and a trust set of gatehouse's own keys alone (the routes exist only when it
/// issues).
fn own_issuer(
    gatehouse: &Gatehouse,
) -> Result<(&crate::issuer::Issuer, crate::tokens::TrustSet), OAuthError> {
    let issuer = gatehouse.issuer.as_ref().ok_or(OAuthError::ServerError)?;
    let trust = gatehouse.own_trust_set().ok_or(OAuthError::ServerError)?;
    Ok((issuer, trust))
}

/// The error answer; client mistakes are logged at debug, our own faults at warn.
fn refused(gatehouse: &Gatehouse, error: OAuthError, endpoint: &'static str) -> Response {
    match error {
        OAuthError::TemporarilyUnavailable | OAuthError::ServerError => {
            tracing::warn!(endpoint, error = error.code(), "OAuth request failed");
        }
        _ => tracing::debug!(endpoint, error = error.code(), "OAuth request refused"),
    }
    error_response(error, &gatehouse.config.check.realm)
}
