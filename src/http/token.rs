//! `POST /token` (RFC 6749 §3.2): the adapter around [`crate::issuer::Issuer`].

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;

use crate::issuer::OAuthError;
use crate::resources::Resource;
use crate::server::Gatehouse;

/// The successful token response (RFC 6749 §5.1) plus the resources the subject may use.
#[derive(Debug, Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
    resources: &'a [Resource],
}

/// The error response (RFC 6749 §5.2).
#[derive(Debug, Serialize)]
struct ErrorResponse {
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'static str>,
}

pub(super) fn routes() -> Router<Arc<Gatehouse>> {
    Router::new().route("/token", post(token).fallback(method_not_allowed))
}

/// RFC 9110 §15.5.6: any method but POST, with the methods that are allowed.
async fn method_not_allowed() -> Response {
    let body = ErrorResponse {
        error: "invalid_request",
        error_description: Some("the token endpoint accepts POST only"),
    };
    let mut response = (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    no_store(response)
}

async fn token(
    State(gatehouse): State<Arc<Gatehouse>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match issue(&gatehouse, &uri, &headers, &body).await {
        Ok(response) => response,
        Err(error) => {
            crate::metrics::token_error(error.code());
            error_response(error, &gatehouse.config.check.realm)
        }
    }
}

async fn issue(
    gatehouse: &Gatehouse,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let authorization = form_request(uri, headers)?;

    let Some(issuer) = &gatehouse.issuer else {
        // Decide-only: the route is not even mounted.
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    let issued = issuer.token(&authorization, body).await;
    match &issued {
        Ok(issued) => tracing::info!(
            grant_type = issued.grant_type.as_str(),
            client.id = %issued.client_id,
            subject = %issued.subject,
            resources = issued.resources.len(),
            "token issued"
        ),
        Err(error) => tracing::info!(
            error = error.code(),
            status = error.status(),
            "token request refused"
        ),
    }
    let issued = issued?;
    crate::metrics::token_issued(issued.grant_type.as_str());
    let body = TokenResponse {
        access_token: issued.access_token.expose(),
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope: &issued.scope,
        refresh_token: issued.refresh_token.as_ref().map(|t| t.expose()),
        id_token: issued.id_token.as_ref().map(|t| t.expose()),
        resources: &issued.resources,
    };
    Ok(no_store(axum::Json(body).into_response()))
}

/// What every OAuth endpoint requires of a request (RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662
/// §2.1): parameters in a form body, never the query string. Returns the `authorization`
/// values for client authentication.
pub(super) fn form_request<'a>(
    uri: &Uri,
    headers: &'a HeaderMap,
) -> Result<Vec<&'a str>, OAuthError> {
    if uri.query().is_some_and(|query| !query.is_empty()) {
        return Err(OAuthError::InvalidRequest(
            "parameters must be sent in the request body, not the query string",
        ));
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| {
            value
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if form_type != Some(true) {
        return Err(OAuthError::InvalidRequest(
            "content type must be application/x-www-form-urlencoded",
        ));
    }
    let mut authorization = Vec::new();
    for value in headers.get_all(header::AUTHORIZATION) {
        authorization.push(value.to_str().map_err(|_| OAuthError::InvalidClient)?);
    }
    Ok(authorization)
}

/// The one mapping of [`OAuthError`] onto a response for every OAuth endpoint: status,
/// RFC 6749 §5.2 body, the Basic challenge on 401 (RFC 6749 §5.2, RFC 7235) and `Retry-After`
/// on 429 (RFC 6585 §4).
pub(super) fn error_response(error: OAuthError, realm: &str) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = ErrorResponse {
        error: error.code(),
        error_description: error.description(),
    };
    let mut response = (status, axum::Json(body)).into_response();
    if error == OAuthError::InvalidClient
        && let Ok(value) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
    {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    if let Some(seconds) = error.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    no_store(response)
}

/// RFC 6749 §5.1: token responses are never cached.
pub(super) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
