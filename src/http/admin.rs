//! `/admin/...`: the CLI's administration as a JSON API, authorised by gatehouse's own access
//! tokens (RFC 6750) whose scope includes `[admin] scope`. Every change goes through
//! [`crate::admin::apply`], so permission versions bump and older tokens go stale exactly as
//! after `gatehouse apply`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Serialize;
use serde_json::json;

use crate::admin::AdminError;
use crate::catalogue::Subject;
use crate::check::{Credential, is_stale, read_credential};
use crate::server::Gatehouse;
use crate::store::StoreError;
use crate::tokens::{TokenError, VerifiedToken, verify};

/// Why an admin request was refused; each maps to one status, challenge and JSON body.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    /// No bearer token (RFC 6750 §3.1: a challenge without an error code).
    #[error("missing_credentials")]
    MissingToken,
    /// Several credentials or a malformed bearer value.
    #[error("invalid_request")]
    InvalidRequest,
    /// A token that failed verification or is stale.
    #[error("invalid_token")]
    InvalidToken(&'static str),
    /// A good token without the admin scope.
    #[error("insufficient_scope")]
    InsufficientScope,
    /// A policy that does not validate.
    #[error("invalid_policy")]
    InvalidPolicy(String),
    /// The store (or the keys) did not answer.
    #[error("temporarily_unavailable")]
    Unavailable,
}

impl ApiError {
    fn into_response(self, gatehouse: &Gatehouse) -> Response {
        let realm = &gatehouse.config.check.realm;
        let scope = &gatehouse.config.admin.scope;
        let (status, challenge, body) = match &self {
            ApiError::MissingToken => (
                StatusCode::UNAUTHORIZED,
                Some(format!("Bearer realm=\"{realm}\"")),
                json!({"error": "invalid_token", "error_description": "a bearer token is required"}),
            ),
            ApiError::InvalidRequest => (
                StatusCode::BAD_REQUEST,
                Some(format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_request\""
                )),
                json!({"error": "invalid_request"}),
            ),
            ApiError::InvalidToken(reason) => (
                StatusCode::UNAUTHORIZED,
                Some(format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")),
                json!({"error": "invalid_token", "reason": reason}),
            ),
            ApiError::InsufficientScope => (
                StatusCode::FORBIDDEN,
                Some(format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{scope}\""
                )),
                json!({"error": "insufficient_scope", "scope": scope}),
            ),
            ApiError::InvalidPolicy(problem) => (
                StatusCode::BAD_REQUEST,
                None,
                json!({"error": "invalid_policy", "error_description": problem}),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                json!({"error": "temporarily_unavailable"}),
            ),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        no_store(response)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        // Our fault: logged once here with the cause, never sent to the caller.
        tracing::warn!(error = %error, "admin API store error");
        ApiError::Unavailable
    }
}

/// The admin routes; mounted only when `[admin] enabled = true`.
pub(super) fn routes() -> Router<Arc<Gatehouse>> {
    Router::new()
        .route("/admin/policy", put(apply_policy))
        .route("/admin/clients", get(clients))
        .route("/admin/accounts", get(accounts))
        .route("/admin/resources", get(resources))
        .route("/admin/roles", get(roles))
        .route("/admin/grants", get(grants))
}

/// The caller's verified token, if it is a fresh gatehouse token carrying the admin scope.
fn authorise(gatehouse: &Gatehouse, headers: &HeaderMap) -> Result<VerifiedToken, ApiError> {
    let mut values = Vec::new();
    for value in headers.get_all(header::AUTHORIZATION) {
        values.push(value.to_str().map_err(|_| ApiError::InvalidRequest)?);
    }
    let token = match read_credential(&values) {
        Credential::Bearer(token) => token,
        Credential::Absent | Credential::OtherScheme => return Err(ApiError::MissingToken),
        Credential::Multiple | Credential::MalformedBearer => return Err(ApiError::InvalidRequest),
    };
    let trust = gatehouse
        .own_trust_set()
        .ok_or(ApiError::InvalidToken("token_issuer_untrusted"))?;
    let verified = verify(token, &trust, gatehouse.clock.now()).map_err(|error| match error {
        TokenError::KeysUnavailable => ApiError::Unavailable,
        error => ApiError::InvalidToken(error.reason()),
    })?;
    let subject = if verified.is_account_token() {
        Subject::Account(verified.subject.clone())
    } else {
        Subject::Client(verified.subject.clone())
    };
    let snapshot = gatehouse.snapshot();
    if snapshot.revoked.contains(&verified.jti) {
        return Err(ApiError::InvalidToken("token_revoked"));
    }
    if is_stale(&verified, &subject, &snapshot) {
        return Err(ApiError::InvalidToken("permissions_changed"));
    }
    let scope = &gatehouse.config.admin.scope;
    let has_scope = verified
        .scopes
        .as_ref()
        .is_some_and(|scopes| scopes.iter().any(|s| s == scope));
    if !has_scope {
        return Err(ApiError::InsufficientScope);
    }
    Ok(verified)
}

/// Runs `action` for an authorised caller and answers its JSON, or the refusal.
async fn admin<T: Serialize, F: Future<Output = Result<T, ApiError>>>(
    gatehouse: &Gatehouse,
    headers: &HeaderMap,
    action: impl FnOnce(VerifiedToken) -> F,
) -> Response {
    let result = match authorise(gatehouse, headers) {
        Ok(caller) => action(caller).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(body) => no_store(axum::Json(body).into_response()),
        Err(error) => error.into_response(gatehouse),
    }
}

#[derive(Debug, Serialize)]
struct CreatedClient<'a> {
    name: &'a str,
    client_id: &'a str,
    /// Shown once, here; only its hash is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct SubjectRef<'a> {
    kind: &'static str,
    id: &'a str,
}

/// `PUT /admin/policy`: a whole policy (YAML, or JSON, which is YAML too) applied atomically.
async fn apply_policy(
    State(gatehouse): State<Arc<Gatehouse>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (gatehouse, body) = (&*gatehouse, &body);
    admin(gatehouse, &headers, |caller| async move {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::InvalidPolicy("the body is not UTF-8".into()))?;
        let report = match crate::admin::apply(gatehouse.store.as_ref(), text).await {
            Ok(report) => report,
            Err(AdminError::Store(error)) => return Err(error.into()),
            Err(error) => return Err(ApiError::InvalidPolicy(error.to_string())),
        };
        tracing::info!(
            subject = caller.subject.as_str(),
            client.id = caller.client_id.as_str(),
            generation = report.generation,
            created = report.created_clients.len(),
            bumped = report.bumped.len(),
            "policy applied through the admin API"
        );
        // This replica answers with the new policy at once; others follow their reload loop.
        if let Err(error) = gatehouse.reload().await {
            tracing::warn!(error = %error, "snapshot reload after admin apply failed");
        }
        let created: Vec<CreatedClient> = report
            .created_clients
            .iter()
            .map(|client| CreatedClient {
                name: &client.name,
                client_id: &client.id,
                client_secret: client.secret.as_ref().map(|secret| secret.expose()),
            })
            .collect();
        Ok(json!({
            "generation": report.generation,
            "created_clients": created,
            "bumped": subjects(&report.bumped),
        }))
    })
    .await
}

fn subjects(list: &[Subject]) -> Vec<SubjectRef<'_>> {
    list.iter()
        .map(|subject| SubjectRef {
            kind: subject.kind(),
            id: subject.id(),
        })
        .collect()
}

/// `GET /admin/clients`: never a secret or its hash.
async fn clients(State(gatehouse): State<Arc<Gatehouse>>, headers: HeaderMap) -> Response {
    admin(&gatehouse, &headers, |_| async {
        let clients = gatehouse.store.list_clients().await?;
        Ok(clients
            .iter()
            .map(|c| {
                json!({
                    "client_id": c.id,
                    "name": c.name,
                    "kind": c.kind.as_str(),
                    "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                    "scopes": c.scopes,
                    "version": c.version,
                    "disabled": c.disabled,
                })
            })
            .collect::<Vec<_>>())
    })
    .await
}

/// `GET /admin/accounts`: never a password hash.
async fn accounts(State(gatehouse): State<Arc<Gatehouse>>, headers: HeaderMap) -> Response {
    admin(&gatehouse, &headers, |_| async {
        let accounts = gatehouse.store.list_accounts().await?;
        Ok(accounts
            .iter()
            .map(|a| json!({"username": a.username, "version": a.version, "disabled": a.disabled}))
            .collect::<Vec<_>>())
    })
    .await
}

/// `GET /admin/resources`.
async fn resources(State(gatehouse): State<Arc<Gatehouse>>, headers: HeaderMap) -> Response {
    admin(&gatehouse, &headers, |_| async {
        Ok(gatehouse.store.snapshot().await?.resources)
    })
    .await
}

/// `GET /admin/roles`.
async fn roles(State(gatehouse): State<Arc<Gatehouse>>, headers: HeaderMap) -> Response {
    admin(&gatehouse, &headers, |_| async {
        let roles = gatehouse.store.list_roles().await?;
        Ok(roles
            .iter()
            .map(|(id, resources)| json!({"id": id, "resources": resources}))
            .collect::<Vec<_>>())
    })
    .await
}

/// `GET /admin/grants`.
async fn grants(State(gatehouse): State<Arc<Gatehouse>>, headers: HeaderMap) -> Response {
    admin(&gatehouse, &headers, |_| async {
        let grants = gatehouse.store.list_grants().await?;
        Ok(grants
            .iter()
            .map(|g| json!({"subject": {"kind": g.subject.kind(), "id": g.subject.id()}, "role": g.role}))
            .collect::<Vec<_>>())
    })
    .await
}

/// Admin answers may carry one-time secrets: never cached.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
