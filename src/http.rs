//! HTTP: `/token`, `/jwks`, `/healthz`, `/readyz`. Handlers convert and delegate.

mod token;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::Gatehouse;

/// The router, built without a socket so tests can call it directly. A decide-only
/// gatehouse has no `/token` and no `/jwks` (404).
pub fn router(gatehouse: Arc<Gatehouse>) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if gatehouse.issuer.is_some() {
        router = router.merge(token::routes()).route("/jwks", get(jwks));
    }
    router.with_state(gatehouse)
}

/// Serves HTTP on `listener` until `stopped` turns true.
pub async fn serve(
    gatehouse: Arc<Gatehouse>,
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
) {
    let result = axum::serve(listener, router(gatehouse))
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(error) = result {
        tracing::error!(error = %error, "HTTP server stopped");
    }
}

/// Public keys only; clients may cache them for five minutes.
async fn jwks(axum::extract::State(gatehouse): axum::extract::State<Arc<Gatehouse>>) -> Response {
    let Some(jwks) = &gatehouse.jwks else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = axum::Json(jwks).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when every trusted issuer's keys have loaded once and the store answers (the own
/// signing key is loaded before the listeners start).
async fn readyz(axum::extract::State(gatehouse): axum::extract::State<Arc<Gatehouse>>) -> Response {
    if !gatehouse.keys_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "issuer keys not loaded").into_response();
    }
    match gatehouse.store.generation().await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response(),
    }
}
