//! The test harness: a gatehouse on ephemeral ports, a token client, a raw `Check` client.

#![allow(dead_code)]

pub mod backend;
pub mod binary;
pub mod envoy;
pub mod forge;
pub mod proxy;

pub(crate) use backend::on_both_backends;
pub use backend::{Backend, TestDatabase, postgres_enabled};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use gatehouse::clock::{Clock, ManualClock, SystemClock};
use gatehouse::config::Config;
use gatehouse::keys::SigningKey;
use gatehouse::server::{Running, spawn};
use serde_json::Value;

/// The example policy shipped in the repository.
pub fn example_policy() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy.yaml")).unwrap()
}

/// The token-endpoint fixture of the hostile-input cases (svc-reports, svc-audit, spa-web,
/// alice, disabled bob).
pub fn oauth_policy() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/fixtures/oauth.yaml"
    ))
    .unwrap()
}

/// Passwords of the OAuth fixture.
pub const ALICE_CANARY: &str = "P@ss-CANARY-1";
pub const BOB_CANARY: &str = "Bob-CANARY-4";

/// Demo passwords of the example policy.
pub const ALICE_PASSWORD: &str = "alice-demo-password";
pub const AUDITOR_PASSWORD: &str = "auditor-demo-password";

/// A client created by `apply`.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

/// A gatehouse running in this process.
pub struct TestGatehouse {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub clients: HashMap<String, TestClient>,
    pub http: reqwest::Client,
    /// The Postgres database, shared with replicas; dropped after the last of them.
    pub database: Option<Arc<TestDatabase>>,
}

impl TestGatehouse {
    /// Starts gatehouse on ephemeral ports with `policy` applied.
    pub async fn start(policy: &str) -> Self {
        Self::start_with(policy, |_| {}).await
    }

    /// Like [`TestGatehouse::start`], with a chance to adjust the configuration.
    pub async fn start_with(policy: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_on_with(Backend::Sqlite, policy, adjust).await
    }

    /// Starts gatehouse on `backend` (a fresh database) with `policy` applied.
    pub async fn start_on(backend: Backend, policy: &str) -> Self {
        Self::start_on_with(backend, policy, |_| {}).await
    }

    /// Like [`TestGatehouse::start_on`], with a chance to adjust the configuration.
    pub async fn start_on_with(
        backend: Backend,
        policy: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Arc::new(TestDatabase::create().await)),
        };
        let mut config = Config::default();
        config.server.grpc_addr = "127.0.0.1:0".parse().unwrap();
        config.server.http_addr = "127.0.0.1:0".parse().unwrap();
        config.store.url = match &database {
            None => format!("sqlite://{}", dir.path().join("gatehouse.db").display()),
            Some(database) => database.url.clone(),
        };
        config.store.reload_interval_ms = 50;
        config.keys.encryption_key_path = dir.path().join("encryption-key");
        config.tokens.issuer = "https://auth.test".into();
        config.tokens.audience = "invoices-api".into();
        adjust(&mut config);
        config.validate().unwrap();

        let store = gatehouse::server::open_store(&config).await.unwrap();
        let report = gatehouse::admin::apply(store.as_ref(), policy)
            .await
            .unwrap();
        let clients = report
            .created_clients
            .iter()
            .map(|c| {
                let client = TestClient {
                    id: c.id.clone(),
                    secret: c.secret.as_ref().map(|s| s.expose().to_owned()),
                };
                (c.name.clone(), client)
            })
            .collect();

        Self::launch(config, dir, clients, database).await
    }

    /// Like [`TestGatehouse::start`], on a free port chosen first so that `[tokens] issuer` can
    /// be the gatehouse's own base URL (`http://127.0.0.1:PORT`): its discovery document then
    /// names endpoints a client can reach.
    pub async fn start_at_own_url(policy: &str) -> Self {
        let port = binary::free_port();
        Self::start_with(policy, |config| {
            config.server.http_addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            config.tokens.issuer = format!("http://127.0.0.1:{port}");
        })
        .await
    }

    /// A second gatehouse on the same store and the same key-encryption key file (as replicas
    /// mount one Kubernetes Secret), on ports of its own, with `adjust` applied to its
    /// configuration.
    pub async fn replica(&self, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = self.config().clone();
        config.server.grpc_addr = "127.0.0.1:0".parse().unwrap();
        config.server.http_addr = "127.0.0.1:0".parse().unwrap();
        adjust(&mut config);
        config.validate().unwrap();
        Self::launch(config, dir, self.clients.clone(), self.database.clone()).await
    }

    async fn launch(
        config: Config,
        dir: tempfile::TempDir,
        clients: HashMap<String, TestClient>,
        database: Option<Arc<TestDatabase>>,
    ) -> Self {
        let clock = Arc::new(ManualClock::at(SystemClock.now()));
        let running = spawn(config, clock.clone()).await.unwrap();
        Self {
            running,
            dir,
            clock,
            clients,
            http: reqwest::Client::new(),
            database,
        }
    }

    /// Stops this gatehouse and starts another with the same configuration on the same store,
    /// as a restart of the process would.
    pub async fn restart(self) -> Self {
        let Self {
            running,
            dir,
            clock,
            clients,
            http,
            database,
        } = self;
        let config = running.gatehouse.config.clone();
        running.stop().await;
        let running = spawn(config, clock.clone()).await.unwrap();
        Self {
            running,
            dir,
            clock,
            clients,
            http,
            database,
        }
    }

    pub fn config(&self) -> &Config {
        &self.running.gatehouse.config
    }

    /// The key gatehouse signs with now (kept in its store), for forging tokens in tests.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        self.running
            .gatehouse
            .signing_key()
            .expect("gatehouse has a signing key")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("gatehouse.db")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.running.http_addr, path)
    }

    /// Database-path queries so far.
    pub fn grant_queries(&self) -> u64 {
        self.running.gatehouse.store.stats().grant_queries()
    }

    /// Applies a new policy and waits until the running snapshot has it.
    pub async fn reapply(&self, policy: &str) -> gatehouse::store::ApplyReport {
        let report = gatehouse::admin::apply(self.running.gatehouse.store.as_ref(), policy)
            .await
            .unwrap();
        self.running.gatehouse.reload().await.unwrap();
        report
    }

    /// `POST /token` with optional Basic credentials and a form body; returns status and JSON.
    pub async fn token_request(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self.http.post(self.url("/token")).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A client_credentials access token for the named confidential client.
    pub async fn service_token(&self, client: &str) -> String {
        let c = &self.clients[client];
        let (status, body) = self
            .token_request(
                Some((&c.id, c.secret.as_deref().unwrap())),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A password-grant access token through the named public client.
    pub async fn user_token(&self, client: &str, username: &str, password: &str) -> Value {
        let c = &self.clients[client];
        let (status, body) = self
            .token_request(
                None,
                &[
                    ("grant_type", "password"),
                    ("client_id", &c.id),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A raw ext_authz client to this gatehouse.
    pub async fn check_client(&self) -> AuthorizationClient<tonic::transport::Channel> {
        AuthorizationClient::connect(format!("http://{}", self.running.grpc_addr))
            .await
            .unwrap()
    }

    /// Calls `Check` as Envoy would for `method target` with these headers and extensions.
    pub async fn check(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        extensions: &[(&str, &str)],
    ) -> CheckResponse {
        let request = check_request(method, target, headers, extensions);
        self.check_client()
            .await
            .check(request)
            .await
            .expect("a decision is never a gRPC error")
            .into_inner()
    }
}

/// Builds a `CheckRequest` as Envoy does: lower-case header names, the query inside `path`.
pub fn check_request(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    extensions: &[(&str, &str)],
) -> CheckRequest {
    let http = HttpRequest {
        method: method.to_owned(),
        path: target.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
            .collect(),
        ..HttpRequest::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Request::default()
            }),
            context_extensions: extensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..AttributeContext::default()
        }),
    }
}

/// What a `CheckResponse` says, flattened for assertions.
#[derive(Debug)]
pub struct Answer {
    /// `google.rpc.Code` of `status`.
    pub code: i32,
    /// HTTP status Envoy will send: 200 on permit.
    pub http_status: i32,
    /// Headers set (permit: toward the upstream; deny: toward the client).
    pub headers: HashMap<String, String>,
    /// Headers removed from the upstream request on permit.
    pub removed: Vec<String>,
    /// Headers added to the client response on permit.
    pub response_headers: HashMap<String, String>,
    /// The JSON decision body on deny.
    pub body: Value,
}

impl Answer {
    pub fn www_authenticate(&self) -> &str {
        self.headers
            .get("www-authenticate")
            .map(String::as_str)
            .unwrap_or("")
    }
    pub fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or("")
    }
}

/// Flattens a `CheckResponse`.
pub fn answer(response: &CheckResponse) -> Answer {
    use envoy_types::ext_authz::v3::pb::HttpResponse;
    let code = response.status.as_ref().map(|s| s.code).unwrap_or(-1);
    let pairs = |options: &[envoy_types::ext_authz::v3::pb::HeaderValueOption]| {
        options
            .iter()
            .filter_map(|o| o.header.as_ref())
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect::<HashMap<_, _>>()
    };
    match response.http_response.as_ref() {
        Some(HttpResponse::OkResponse(ok)) => Answer {
            code,
            http_status: 200,
            headers: pairs(&ok.headers),
            removed: ok.headers_to_remove.clone(),
            response_headers: pairs(&ok.response_headers_to_add),
            body: Value::Null,
        },
        Some(HttpResponse::DeniedResponse(denied)) => Answer {
            code,
            http_status: denied.status.as_ref().map(|s| s.code).unwrap_or(-1),
            headers: pairs(&denied.headers),
            removed: Vec::new(),
            response_headers: HashMap::new(),
            body: serde_json::from_str(&denied.body).unwrap_or(Value::Null),
        },
        other => panic!("unexpected http_response {other:?}"),
    }
}

/// Asserts the contract's outcome classes.
pub fn assert_permit(a: &Answer) {
    assert_eq!((a.code, a.http_status), (0, 200), "{a:?}");
}
pub fn assert_deny(a: &Answer, http_status: i32) {
    let code = match http_status {
        400 => 3,
        401 => 16,
        403 => 7,
        503 => 14,
        other => panic!("no contract outcome for {other}"),
    };
    assert_eq!((a.code, a.http_status), (code, http_status), "{a:?}");
    assert_eq!(a.body["decision"], "Deny", "{a:?}");
}
