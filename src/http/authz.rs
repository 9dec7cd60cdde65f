//! Deciding over plain HTTP: Envoy's HTTP ext_authz protocol (and the forward-auth proxies
//! that speak it: nginx `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`) under
//! `/ext_authz/…`, and the decision API `POST /v1/decision` for services not behind a proxy.
//!
//! Both convert the request into an [`AccessRequest`], delegate to [`Gatehouse::check`] — the
//! core the gRPC adapter uses — and answer with the same [`Reply`]. Identity comes only from
//! the bearer token in `Authorization`.

mod decision_api;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};

use crate::check::{AccessRequest, read_credential};
use crate::decision::{Checked, Outcome, Reply};
use crate::server::Gatehouse;

/// Envoy's `http_service.path_prefix`: the original path follows it.
pub const PATH_PREFIX: &str = "/ext_authz";

/// Context headers a proxy sets to supply the resource type and name (Envoy's HTTP mode
/// cannot send `context_extensions`).
pub const RESOURCE_TYPE_HEADER: &str = "x-gatehouse-resource-type";
pub const RESOURCE_NAME_HEADER: &str = "x-gatehouse-resource-name";

/// Envoy's HTTP ext_authz removes the upstream request headers this lists (comma-separated).
pub const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// Forwarding headers believed from trusted proxies only, first match wins.
const FORWARDED_TARGET: [&str; 2] = ["x-forwarded-uri", "x-original-uri"];
const FORWARDED_METHOD: [&str; 2] = ["x-forwarded-method", "x-original-method"];
const FORWARDED_HOST: [&str; 1] = ["x-forwarded-host"];

pub(super) fn routes() -> Router<Arc<Gatehouse>> {
    Router::new()
        .route(PATH_PREFIX, any(ext_authz))
        .route(&format!("{PATH_PREFIX}/{{*rest}}"), any(ext_authz))
        .route("/v1/decision", post(decision_api::decide))
}

/// One HTTP ext_authz check: 200 with the decision headers, or the deny response itself.
async fn ext_authz(State(gatehouse): State<Arc<Gatehouse>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, _body) = request.into_parts();
    let trusted = peer(&parts.extensions).is_some_and(|ip| gatehouse.config.http_authz.trusts(ip));
    let headers = &parts.headers;
    let forwarded = |names: &[&str]| {
        if !trusted {
            return None;
        }
        names.iter().find_map(|name| single(headers, name))
    };

    // The original target follows the prefix; a trusted proxy may name it instead.
    let own_target = parts
        .uri
        .path_and_query()
        .map(|target| target.as_str())
        .and_then(|target| target.strip_prefix(PATH_PREFIX))
        .unwrap_or("");
    let authorization = all_values(headers, header::AUTHORIZATION.as_str());
    let access = AccessRequest {
        method: forwarded(&FORWARDED_METHOD).unwrap_or(parts.method.as_str()),
        target: forwarded(&FORWARDED_TARGET).unwrap_or(own_target),
        host: forwarded(&FORWARDED_HOST)
            .or_else(|| single(headers, header::HOST.as_str()))
            .unwrap_or(""),
        credential: read_credential(&authorization),
        resource_type: single(headers, RESOURCE_TYPE_HEADER),
        resource_name: single(headers, RESOURCE_NAME_HEADER),
    };
    let checked = gatehouse.check(&access, None).await;
    let decision_id = new_decision_id();
    crate::grpc::log_decision(&checked, &decision_id, started, &gatehouse.config.log);

    let reply = Reply::new(&checked, &decision_id, &gatehouse.config.check.realm);
    let mut response = reply_response(&reply, reply.body.clone().unwrap_or_default());
    if !reply.remove.is_empty() {
        insert(
            response.headers_mut(),
            HEADERS_TO_REMOVE,
            &reply.remove.join(","),
        );
    }
    response
}

/// The client's address, when the listener recorded it.
fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// The value of a header sent exactly once. A repeated header is ambiguous and yields `""`,
/// which matches nothing (a target `""` is refused with 400, a method `""` maps to no action).
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some("");
    }
    Some(first.to_str().unwrap_or("\u{0}"))
}

/// Every value of a header; a value that is not visible ASCII becomes a NUL, which no reader
/// accepts.
fn all_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .map(|value| value.to_str().unwrap_or("\u{0}"))
        .collect()
}

fn new_decision_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

/// A response with the reply's status and headers and `body`.
fn reply_response(reply: &Reply, body: String) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in &reply.headers {
        insert(headers, name, value);
    }
    response
}

/// A deny the adapter produces itself (the request never reached the core).
fn refused(reason: &'static str, policy_id: String) -> Checked {
    use crate::decision::{Decision, EvaluatedTuple, Verdict};
    Checked {
        decision: Decision {
            decision: Verdict::Deny,
            authenticated: false,
            obligations: Vec::new(),
            advice: Vec::new(),
            policy_id,
            reason,
        },
        outcome: Outcome::InvalidRequest,
        principal: None,
        tuple: EvaluatedTuple::default(),
    }
}
