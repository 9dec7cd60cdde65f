//! HTTP: `/token`, `/authorize`, `/revoke`, `/introspect`, `/jwks`, discovery, `/healthz`,
//! `/readyz`, `/metrics`,
//! `/admin/...`. Handlers convert and delegate.

mod admin;
mod authorize;
pub mod authz;
pub mod discovery;
mod revoke;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::{Gatehouse, Readiness};

/// The router, built without a socket so tests can call it directly. A decide-only
/// gatehouse has no `/token`, `/authorize`, `/revoke`, `/introspect`, `/jwks` and no discovery
/// documents (404).
pub fn router(gatehouse: Arc<Gatehouse>) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(authz::routes());
    if gatehouse.issuer.is_some() {
        router = router
            .merge(token::routes())
            .merge(authorize::routes())
            .merge(discovery::routes())
            .merge(revoke::routes())
            .route("/jwks", get(jwks));
    }
    if gatehouse.config.admin.enabled {
        router = router.merge(admin::routes());
    }
    router.with_state(gatehouse)
}

/// Serves HTTP on `listener` until `stopped` turns true.
pub async fn serve(
    gatehouse: Arc<Gatehouse>,
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
) {
    let result = axum::serve(
        listener,
        // The peer address decides whose forwarding headers `/ext_authz` believes.
        router(gatehouse).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    })
    .await;
    if let Err(error) = result {
        tracing::error!(error = %error, "HTTP server stopped");
    }
}

/// Public keys only. Clients may cache them for `[keys] jwks_max_age_seconds`, or until the
/// next scheduled key change if that comes sooner.
async fn jwks(axum::extract::State(gatehouse): axum::extract::State<Arc<Gatehouse>>) -> Response {
    let Some((jwks, max_age)) = gatehouse.jwks() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = axum::Json(jwks).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// Prometheus scrape: every metric of this process.
async fn metrics() -> Response {
    let mut response = crate::metrics::encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when every trusted issuer's keys have loaded once and the store answered the reload
/// loop's last round: the same readiness `grpc.health.v1` reports.
async fn readyz(axum::extract::State(gatehouse): axum::extract::State<Arc<Gatehouse>>) -> Response {
    let (status, text) = match gatehouse.readiness() {
        Readiness::Ready => (StatusCode::OK, "ready"),
        Readiness::KeysNotLoaded => (StatusCode::SERVICE_UNAVAILABLE, "issuer keys not loaded"),
        Readiness::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable"),
    };
    (status, text).into_response()
}
