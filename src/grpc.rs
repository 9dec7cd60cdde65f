//! Envoy ext_authz v3 over gRPC: convert the `CheckRequest`, delegate, convert the answer.
//!
//! A deny is always an `Ok(CheckResponse)` carrying a `denied_response` and a non-OK status,
//! never a gRPC error: Envoy hands gRPC errors to `failure_mode_allow`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

mod health;

use crate::check::{AccessRequest, read_credential};
use crate::decision::{Checked, Outcome, Reply, Verdict};
use crate::server::Gatehouse;

pub use crate::decision::DECISION_HEADERS;

/// `context_extensions` keys a route may set to supply the resource type and name.
pub const RESOURCE_TYPE_KEY: &str = "resource_type";
pub const RESOURCE_NAME_KEY: &str = "resource_name";

/// The ext_authz service.
#[derive(Debug, Clone)]
pub struct CheckService {
    gatehouse: Arc<Gatehouse>,
}

impl CheckService {
    /// A service deciding with `gatehouse`.
    pub fn new(gatehouse: Arc<Gatehouse>) -> Self {
        Self { gatehouse }
    }
}

/// Serves ext_authz on `listener` until `stopped` turns true.
pub async fn serve(
    gatehouse: Arc<Gatehouse>,
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
) {
    let incoming = tokio_stream_listener(listener);
    let health = health::service(gatehouse.watch_ready(), stopped.clone()).await;
    let result = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(AuthorizationServer::new(CheckService::new(gatehouse)))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(error) = result {
        tracing::error!(error = %error, "gRPC server stopped");
    }
}

/// Accepted connections with Nagle's algorithm off: tonic's own `tcp_nodelay` applies only to
/// listeners it binds, and a small check answer held back for Envoy's delayed ACK costs up to
/// 40 ms (measured in scripts/bench.sh: p90 38 ms, a third of the throughput).
fn tokio_stream_listener(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(error = %error, "cannot set TCP_NODELAY");
        }
        Ok(stream)
    })
}

/// The deadline Envoy sent, from the `grpc-timeout` header (gRPC over HTTP/2 spec).
fn grpc_timeout<T>(request: &Request<T>) -> Option<Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (amount, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = amount.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[tonic::async_trait]
impl Authorization for CheckService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let started = Instant::now();
        // Leave a margin so the answer reaches Envoy before its own timeout fires.
        let budget = grpc_timeout(&request).map(|deadline| deadline.mul_f32(0.6));
        let request = request.into_inner();
        let attributes = request.attributes.unwrap_or_default();
        let http = attributes.request.and_then(|r| r.http).unwrap_or_default();
        let extensions = attributes.context_extensions;

        let authorization = authorization_values(&http.headers, http.header_map.as_ref());
        let access = AccessRequest {
            method: &http.method,
            target: &http.path,
            host: &http.host,
            credential: read_credential(&authorization),
            resource_type: extensions.get(RESOURCE_TYPE_KEY).map(String::as_str),
            resource_name: extensions.get(RESOURCE_NAME_KEY).map(String::as_str),
        };
        let checked = self.gatehouse.check(&access, budget).await;
        let decision_id = uuid::Uuid::new_v4().simple().to_string();
        log_decision(&checked, &decision_id, started, &self.gatehouse.config.log);
        Ok(Response::new(to_check_response(
            &checked,
            &decision_id,
            &self.gatehouse.config.check.realm,
        )))
    }
}

/// Every `authorization` value: from `header_map` when Envoy sends raw headers (one entry per
/// line), otherwise from `headers` (where Envoy joins repeats with commas).
fn authorization_values<'a>(
    headers: &'a HashMap<String, String>,
    header_map: Option<&'a envoy_types::pb::envoy::config::core::v3::HeaderMap>,
) -> Vec<&'a str> {
    if let Some(map) = header_map.filter(|map| !map.headers.is_empty()) {
        return map
            .headers
            .iter()
            .filter(|h| h.key.eq_ignore_ascii_case("authorization"))
            .map(|h| {
                if h.value.is_empty() {
                    std::str::from_utf8(&h.raw_value).unwrap_or("\u{0}")
                } else {
                    h.value.as_str()
                }
            })
            .collect();
    }
    headers
        .get("authorization")
        .map(|value| vec![value.as_str()])
        .unwrap_or_default()
}

/// The one record per decision, at the level the operator picked for its verdict (our own
/// faults always at `warn`), and its metrics. String fields are recorded as `&str`, which both
/// the plain and the JSON formatter escape, so a CR or LF in a claim never starts a new line.
pub(crate) fn log_decision(
    checked: &Checked,
    decision_id: &str,
    started: Instant,
    log: &crate::config::LogConfig,
) {
    let took = started.elapsed();
    crate::metrics::decision(checked, took);
    let principal = checked.principal.as_ref();
    let subject = principal.map(|p| p.subject.as_str()).unwrap_or("");
    let client_id = principal.map(|p| p.client_id.as_str()).unwrap_or("");
    let tuple = &checked.tuple;
    let latency_us = took.as_micros() as u64;
    macro_rules! record {
        ($level:expr) => {
            tracing::event!(
                $level,
                decision.id = decision_id,
                decision = ?checked.decision.decision,
                decision.reason = checked.decision.reason,
                decision.status = checked.outcome.http_status(),
                policy.id = checked.decision.policy_id.as_str(),
                subject,
                client.id = client_id,
                request.method = tuple.method.as_str(),
                request.path = tuple.path.as_str(),
                resource.action = tuple.action.as_deref().unwrap_or(""),
                resource.r#type = tuple.resource_type.as_deref().unwrap_or(""),
                resource.name = tuple.resource_name.as_deref().unwrap_or(""),
                latency_us,
                "decision"
            )
        };
    }
    let level = match checked.outcome {
        Outcome::Permit => log.permit_level(),
        Outcome::Unavailable => tracing::Level::WARN,
        _ => log.deny_level(),
    };
    // `event!` needs a constant level.
    match level {
        tracing::Level::TRACE => record!(tracing::Level::TRACE),
        tracing::Level::DEBUG => record!(tracing::Level::DEBUG),
        tracing::Level::INFO => record!(tracing::Level::INFO),
        tracing::Level::WARN => record!(tracing::Level::WARN),
        _ => record!(tracing::Level::ERROR),
    }
}

fn header(key: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value,
            ..HeaderValue::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

fn string_value(text: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(text.to_owned())),
    }
}

/// Maps a finished check onto Envoy's `CheckResponse` per the contract's table.
pub fn to_check_response(checked: &Checked, decision_id: &str, realm: &str) -> CheckResponse {
    let decision = &checked.decision;
    let fields = [
        ("decision_id", decision_id),
        (
            "decision",
            if decision.decision == Verdict::Permit {
                "Permit"
            } else {
                "Deny"
            },
        ),
        ("reason", decision.reason),
        ("policy_id", decision.policy_id.as_str()),
    ];
    // Collected from an exact-size iterator: the map is allocated once, at its final size.
    let metadata = Struct {
        fields: fields
            .into_iter()
            .map(|(key, value)| (key.to_owned(), string_value(value)))
            .collect(),
    };

    // The reply's strings move into the response; only the static header names are copied.
    let reply = Reply::new(checked, decision_id, realm);
    let headers = |pairs: Vec<(&str, String)>| {
        pairs
            .into_iter()
            .map(|(key, value)| header(key, value))
            .collect()
    };
    let http_response = if checked.outcome == Outcome::Permit {
        HttpResponse::OkResponse(OkHttpResponse {
            headers: headers(reply.headers),
            headers_to_remove: reply.remove.iter().map(|name| (*name).to_owned()).collect(),
            response_headers_to_add: headers(reply.client_headers),
            ..OkHttpResponse::default()
        })
    } else {
        HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(reply.status),
            }),
            headers: headers(reply.headers),
            body: reply.body.unwrap_or_default(),
        })
    };

    CheckResponse {
        status: Some(rpc::Status {
            code: checked.outcome.grpc_code(),
            message: decision.reason.to_owned(),
            details: Vec::new(),
        }),
        dynamic_metadata: Some(metadata),
        http_response: Some(http_response),
    }
}
