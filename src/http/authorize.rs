//! `GET /authorize` and the sign-in form it shows; `POST /authorize` signs the person in and
//! sends the browser back to the client with a code. Handlers convert and delegate to
//! [`crate::issuer::Issuer`].

mod page;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::issuer::{AuthorizeError, Issuer, SignInFailure, TokenForm};
use crate::server::Gatehouse;

pub(super) fn routes() -> Router<Arc<Gatehouse>> {
    Router::new().route("/authorize", get(show).post(sign_in))
}

/// Checks the authorization request and shows the sign-in form.
async fn show(State(gatehouse): State<Arc<Gatehouse>>, uri: Uri) -> Response {
    let Some(issuer) = &gatehouse.issuer else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let params = match TokenForm::parse(uri.query().unwrap_or_default().as_bytes()) {
        Ok(params) => params,
        Err(_) => return refused(AuthorizeError::Untrusted("a parameter is repeated")),
    };
    match issuer.authorization_request(&params).await {
        Ok(request) => page_response(StatusCode::OK, page::sign_in(&request, None)),
        Err(error) => refused(error),
    }
}

/// Checks the submitted credentials; on success redirects with a fresh code.
async fn sign_in(
    State(gatehouse): State<Arc<Gatehouse>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(issuer) = &gatehouse.issuer else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !is_form(&headers) {
        return refused(AuthorizeError::Untrusted(
            "the sign-in form must be sent as application/x-www-form-urlencoded",
        ));
    }
    let form = match TokenForm::parse(&body) {
        Ok(form) => form,
        Err(_) => return refused(AuthorizeError::Untrusted("a parameter is repeated")),
    };
    approve(issuer, &form).await
}

async fn approve(issuer: &Issuer, form: &TokenForm) -> Response {
    let request = match issuer.authorization_request(form).await {
        Ok(request) => request,
        Err(error) => return refused(error),
    };
    match issuer
        .approve(&request, form.get("username"), form.get("password"))
        .await
    {
        Ok(location) => {
            tracing::info!(client.id = %request.client.id, "sign-in approved");
            redirect(&location)
        }
        Err(failure) => {
            tracing::info!(client.id = %request.client.id, reason = %failure, "sign-in refused");
            let status = match failure {
                SignInFailure::BadCredentials | SignInFailure::Incomplete => {
                    StatusCode::BAD_REQUEST
                }
                SignInFailure::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
                SignInFailure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            };
            let mut response = page_response(status, page::sign_in(&request, Some(failure)));
            if let SignInFailure::Throttled(seconds) = failure
                && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|value| {
            value
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// An error page, or a redirect carrying the error back to the client.
fn refused(error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::Redirect { location, .. } => redirect(&location),
        AuthorizeError::Untrusted(problem) => {
            page_response(StatusCode::BAD_REQUEST, page::error(problem))
        }
        AuthorizeError::Unavailable => page_response(
            StatusCode::SERVICE_UNAVAILABLE,
            page::error("sign-in is temporarily unavailable; try again shortly"),
        ),
    }
}

/// 303 See Other: the browser follows with a GET, whatever the form's method was.
fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    protect(response)
}

fn page_response(status: StatusCode, html: String) -> Response {
    protect((status, Html(html)).into_response())
}

/// Sign-in pages are never cached, framed, or sniffed, and send no referrer.
fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
