//! `POST /v1/decision`: the decision model for services that are not behind a proxy.
//!
//! The bearer token travels in `Authorization`; the body names only what is asked for —
//! `{"method", "path", "resource_type"?, "resource_name"?}` or `{"resource_id"}` — and never
//! who asks: unknown members, a client id, secret or username among them, are refused.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;

use super::{all_values, insert, new_decision_id, refused, reply_response};
use crate::check::{AccessRequest, read_credential};
use crate::decision::{Checked, Reply};
use crate::resources::Resource;
use crate::server::Gatehouse;

/// The question: a request tuple, or the id of one resource from the catalogue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionQuery {
    method: Option<String>,
    path: Option<String>,
    resource_type: Option<String>,
    resource_name: Option<String>,
    resource_id: Option<String>,
}

/// Members that carry identity; named in the refusal so the caller learns why.
const IDENTITY_MEMBERS: [&str; 5] = [
    "client_id",
    "client_secret",
    "username",
    "password",
    "subject",
];

/// Methods tried, in order, to express a resource's action as a request.
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// The tuple to decide, owned.
struct Question {
    method: String,
    target: String,
    resource_type: Option<String>,
    resource_name: Option<String>,
}

pub(super) async fn decide(
    State(gatehouse): State<Arc<Gatehouse>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let checked = match question(&gatehouse, &body) {
        Err(reason) => refused(reason, gatehouse.snapshot().policy_id.clone()),
        Ok(question) => {
            let authorization = all_values(&headers, header::AUTHORIZATION.as_str());
            let access = AccessRequest {
                method: &question.method,
                target: &question.target,
                host: "",
                credential: read_credential(&authorization),
                resource_type: question.resource_type.as_deref(),
                resource_name: question.resource_name.as_deref(),
            };
            gatehouse.check(&access, None).await
        }
    };
    let decision_id = new_decision_id();
    crate::grpc::log_decision(&checked, &decision_id, started, &gatehouse.config.log);
    answer(&checked, &decision_id, &gatehouse.config.check.realm)
}

/// The decision object as the body, whatever the outcome, with the mapped status.
fn answer(checked: &Checked, decision_id: &str, realm: &str) -> Response {
    let reply = Reply::new(checked, decision_id, realm);
    let mut response = reply_response(&reply, checked.body());
    let headers = response.headers_mut();
    insert(headers, "content-type", "application/json");
    insert(headers, "cache-control", "no-store");
    response
}

/// Reads the body; an error is the deny reason.
fn question(gatehouse: &Gatehouse, body: &[u8]) -> Result<Question, &'static str> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| "invalid_body")?;
    if let Some(object) = value.as_object()
        && IDENTITY_MEMBERS
            .iter()
            .any(|name| object.contains_key(*name))
    {
        return Err("identity_in_body");
    }
    let query: DecisionQuery = serde_json::from_value(value).map_err(|_| "invalid_body")?;
    match query {
        DecisionQuery {
            method: Some(method),
            path: Some(path),
            resource_type,
            resource_name,
            resource_id: None,
        } => Ok(Question {
            method,
            target: path,
            resource_type,
            resource_name,
        }),
        DecisionQuery {
            method: None,
            path: None,
            resource_type: None,
            resource_name: None,
            resource_id: Some(id),
        } => {
            let snapshot = gatehouse.snapshot();
            match snapshot.catalogue.get(&id) {
                Some(resource) => Ok(resource_question(gatehouse, resource)),
                // An unknown id must not be told apart before the token is checked.
                None => Ok(unanswerable()),
            }
        }
        _ => Err("invalid_body"),
    }
}

/// A resource as a request: a method performing its action, its URL template with every
/// variable segment filled in, and its type and name, so only a grant on that whole tuple
/// permits.
fn resource_question(gatehouse: &Gatehouse, resource: &Resource) -> Question {
    let Some(method) = METHODS
        .into_iter()
        .find(|method| gatehouse.settings.methods.action(method) == Some(&resource.action))
    else {
        return unanswerable();
    };
    let target = resource
        .url
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "_"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    Question {
        method: method.to_owned(),
        target,
        resource_type: Some(resource.kind.clone()),
        resource_name: Some(resource.name.clone()),
    }
}

/// A question no resource answers: 401 without a valid token, 403 `no_matching_resource`
/// with one, so unknown ids are indistinguishable from ungranted ones before authentication.
fn unanswerable() -> Question {
    Question {
        method: "GET".to_owned(),
        target: "/".to_owned(),
        // No resource has an empty type (types are identifiers).
        resource_type: Some(String::new()),
        resource_name: None,
    }
}
