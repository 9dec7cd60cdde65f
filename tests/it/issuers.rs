//! External issuers and their keys: rotation in and removal out (B12), JWKS outages (B13,
//! B30 c), malformed tokens never fetching (B01), against an in-process JWKS endpoint whose
//! requests are counted and whose behaviour the test switches. `decide_only` covers the
//! decide-only sidecar, discovery documents and tokens claiming another issuer's name.
//!
//! The gatehouse under test is decide-only and trusts one external issuer, `IDP`, whose tokens
//! are plain RFC 9068 access tokens for alice without gatehouse's claims: no `grants` (decided
//! on the database path), no `pver`, no `scope`.

mod decide_only;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse::config::{Config, KeySource, TrustedIssuerConfig};
use gatehouse::keys::{Jwk, JwkSet, SigningKey};
use serde_json::{Value, json};

use crate::support::{
    Answer, TestGatehouse, answer, assert_deny, assert_permit, check_request, example_policy, forge,
};

/// The external issuer's name.
const IDP: &str = "https://idp.test";
/// A route alice's grants cover.
const TARGET: &str = "/v1/invoices/inv-1001";
const INVOICES: [(&str, &str); 1] = [("resource_type", "invoices")];
/// Generous bounds: nothing here asserts a tight timing.
const EVENTUALLY: Duration = Duration::from_secs(20);
const PROMPTLY: Duration = Duration::from_millis(1500);

/// What the mock JWKS endpoint does with the next request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    Serve(Vec<Jwk>),
    /// 503.
    Unavailable,
    /// 500.
    Failing,
    /// Accept the request and never answer.
    Hang,
    /// Serve these keys, after this delay.
    Slow(Duration, Vec<Jwk>),
}

#[derive(Debug)]
struct MockState {
    behaviour: Mutex<Behaviour>,
    /// `GET /jwks` requests received, whatever the answer.
    hits: AtomicU64,
    /// `issuer` of the discovery document.
    discovery_issuer: Mutex<String>,
    jwks_uri: String,
}

/// An issuer's key endpoint: `GET /jwks` and `GET /.well-known/openid-configuration`.
pub struct MockJwks {
    state: Arc<MockState>,
    base: String,
}

impl MockJwks {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(MockState {
            behaviour: Mutex::new(behaviour),
            hits: AtomicU64::new(0),
            discovery_issuer: Mutex::new(IDP.to_owned()),
            jwks_uri: format!("{base}/jwks"),
        });
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .route("/.well-known/openid-configuration", get(serve_discovery))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { state, base }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().unwrap() = behaviour;
    }

    pub fn set_discovery_issuer(&self, issuer: &str) {
        *self.state.discovery_issuer.lock().unwrap() = issuer.to_owned();
    }

    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.base)
    }
}

async fn serve_jwks(State(state): State<Arc<MockState>>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let behaviour = state.behaviour.lock().unwrap().clone();
    match behaviour {
        Behaviour::Serve(keys) => axum::Json(JwkSet { keys }).into_response(),
        Behaviour::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Behaviour::Failing => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Slow(delay, keys) => {
            tokio::time::sleep(delay).await;
            axum::Json(JwkSet { keys }).into_response()
        }
    }
}

async fn serve_discovery(State(state): State<Arc<MockState>>) -> Response {
    let issuer = state.discovery_issuer.lock().unwrap().clone();
    axum::Json(json!({"issuer": issuer, "jwks_uri": state.jwks_uri})).into_response()
}

/// `Serve` of these keys' public halves.
pub fn serve(keys: &[&SigningKey]) -> Behaviour {
    Behaviour::Serve(keys.iter().map(|key| key.jwk().clone()).collect())
}

/// An RFC 9068 access token for alice from `IDP`, signed with `key`, issued at `now`.
pub fn external_token(key: &SigningKey, now: i64) -> String {
    let claims = json!({
        "iss": IDP,
        "sub": "alice",
        "aud": "invoices-api",
        "client_id": "idp-web",
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "exp": now + 600,
    });
    forge::rs256(key, &forge::access_header(key), &claims)
}

/// A trusted-issuer entry for `IDP` at `mock`, adjusted.
pub fn trusting(
    mock: &MockJwks,
    adjust: impl FnOnce(&mut TrustedIssuerConfig),
) -> TrustedIssuerConfig {
    let mut trusted = TrustedIssuerConfig::new(IDP, KeySource::Jwks(mock.jwks_url()));
    adjust(&mut trusted);
    trusted
}

/// A decide-only gatehouse with the example policy that trusts `trusted` only.
async fn sidecar(trusted: TrustedIssuerConfig) -> TestGatehouse {
    TestGatehouse::start_with(&example_policy(), |config: &mut Config| {
        config.issuer.enabled = false;
        config.issuers = vec![trusted];
    })
    .await
}

fn now(g: &TestGatehouse) -> i64 {
    gatehouse::clock::Clock::now(&*g.clock)
}

/// `GET TARGET` with `Bearer token`, sent as Envoy does: with a gRPC deadline.
async fn check_within(g: &TestGatehouse, token: &str, deadline: Duration) -> (Answer, Duration) {
    let auth = format!("Bearer {token}");
    let mut request = tonic::Request::new(check_request(
        "GET",
        TARGET,
        &[("authorization", &auth)],
        &INVOICES,
    ));
    request.set_timeout(deadline);
    let mut client = g.check_client().await;
    let started = Instant::now();
    let response = client
        .check(request)
        .await
        .expect("a decision is never a gRPC error")
        .into_inner();
    (answer(&response), started.elapsed())
}

async fn check(g: &TestGatehouse, token: &str) -> Answer {
    check_within(g, token, Duration::from_secs(10)).await.0
}

async fn wait_until_ready(g: &TestGatehouse) {
    let started = Instant::now();
    while !g.running.gatehouse.keys_ready() {
        assert!(started.elapsed() < EVENTUALLY, "issuer keys never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the endpoint has answered a fetch since now, so that no fetch begun earlier
/// can still install keys (fetches of one issuer are serialised).
async fn wait_for_next_fetch(mock: &MockJwks) {
    let hits = mock.hits();
    let started = Instant::now();
    while mock.hits() == hits {
        assert!(
            started.elapsed() < EVENTUALLY,
            "the endpoint was never asked again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readyz(g: &TestGatehouse) -> u16 {
    let response = g.http.get(g.url("/readyz")).send().await.unwrap();
    response.status().as_u16()
}

/// Asks about `token` until `done` holds for the answer; returns that answer.
async fn eventually(g: &TestGatehouse, token: &str, done: impl Fn(&Answer) -> bool) -> Answer {
    let started = Instant::now();
    loop {
        let a = check(g, token).await;
        if done(&a) {
            return a;
        }
        assert!(started.elapsed() < EVENTUALLY, "still {a:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_permits_alice(a: &Answer) {
    assert_permit(a);
    assert_eq!(a.headers["x-gatehouse-subject"], "alice", "{a:?}");
}

fn assert_unavailable(a: &Answer) {
    assert_deny(a, 503);
    assert_eq!(a.reason(), "keys_unavailable", "{a:?}");
    assert_eq!(a.body["authenticated"], false, "{a:?}");
    assert!(!a.www_authenticate().contains("invalid_token"), "{a:?}");
}

fn assert_unknown_key(a: &Answer) {
    assert_deny(a, 401);
    assert_eq!(a.reason(), "token_key_unknown", "{a:?}");
    assert!(a.www_authenticate().contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn external_token_without_gatehouse_claims_is_decided_on_the_database_path() {
    let k1 = SigningKey::generate().unwrap();
    let mock = MockJwks::start(serve(&[&k1])).await;
    let g = sidecar(trusting(&mock, |_| {})).await;
    wait_until_ready(&g).await;

    let queries = g.grant_queries();
    assert_permits_alice(&check(&g, &external_token(&k1, now(&g))).await);
    assert!(
        g.grant_queries() > queries,
        "no grants claim: the database decides"
    );
}

#[tokio::test]
async fn external_token_for_a_disabled_account_is_refused() {
    let k1 = SigningKey::generate().unwrap();
    let mock = MockJwks::start(serve(&[&k1])).await;
    let g = sidecar(trusting(&mock, |_| {})).await;
    wait_until_ready(&g).await;
    assert_permits_alice(&check(&g, &external_token(&k1, now(&g))).await);

    let disabled = example_policy().replace(
        "  - username: alice\n",
        "  - username: alice\n    disabled: true\n",
    );
    g.reapply(&disabled).await;
    let a = check(&g, &external_token(&k1, now(&g))).await;
    crate::support::assert_deny(&a, 403);
    assert_eq!(a.reason(), "subject_unknown_or_disabled");
}

#[tokio::test]
async fn rotated_in_key_is_trusted_after_exactly_one_shared_refetch() {
    let (k1, k2) = (
        SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
    );
    let mock = MockJwks::start(serve(&[&k1])).await;
    // No background refresh during the test: every fetch after the first is a refetch.
    let g = sidecar(trusting(&mock, |t| t.refresh_interval_seconds = 3600)).await;
    wait_until_ready(&g).await;
    assert_eq!(mock.hits(), 1);
    assert_permits_alice(&check(&g, &external_token(&k1, now(&g))).await);

    mock.set(serve(&[&k1, &k2]));
    let client = g.check_client().await;
    let mut checks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut client = client.clone();
        let auth = format!("Bearer {}", external_token(&k2, now(&g)));
        let request = check_request("GET", TARGET, &[("authorization", &auth)], &INVOICES);
        checks.spawn(async move { client.check(request).await.unwrap().into_inner() });
    }
    while let Some(response) = checks.join_next().await {
        assert_permits_alice(&answer(&response.unwrap()));
    }
    assert_eq!(mock.hits(), 2, "eight concurrent checks share one refetch");

    assert_permits_alice(&check(&g, &external_token(&k2, now(&g))).await);
    assert_permits_alice(&check(&g, &external_token(&k1, now(&g))).await);
    assert_eq!(mock.hits(), 2, "known keys fetch nothing");
}

#[tokio::test]
async fn removed_key_is_refused_once_the_refresh_interval_has_passed() {
    let (k1, k2) = (
        SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
    );
    let mock = MockJwks::start(serve(&[&k1, &k2])).await;
    let g = sidecar(trusting(&mock, |t| {
        t.refresh_interval_seconds = 1;
        t.refetch_cooldown_seconds = 1;
    }))
    .await;
    wait_until_ready(&g).await;
    let t0 = external_token(&k1, now(&g));
    assert_permits_alice(&check(&g, &t0).await);

    // Emergency removal: the next refresh (at most 1 s away) drops k1.
    mock.set(serve(&[&k2]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = eventually(&g, &t0, |a| a.http_status != 200).await;
    assert_unknown_key(&a);
    assert_permits_alice(&check(&g, &external_token(&k2, now(&g))).await);
}

#[tokio::test]
async fn outage_with_warm_keys_keeps_permitting_promptly_and_unknown_kids_get_401() {
    let (k1, k3) = (
        SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
    );
    let mock = MockJwks::start(serve(&[&k1])).await;
    let g = sidecar(trusting(&mock, |t| {
        t.refresh_interval_seconds = 1;
        t.refetch_cooldown_seconds = 1;
        // Longer than any answer below may take: no check waits on the dead endpoint.
        t.fetch_timeout_ms = 5000;
    }))
    .await;
    wait_until_ready(&g).await;
    let t0 = external_token(&k1, now(&g));

    for behaviour in [Behaviour::Unavailable, Behaviour::Hang] {
        mock.set(behaviour.clone());
        let hits = mock.hits();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) || mock.hits() == hits {
            let (a, took) = check_within(&g, &t0, Duration::from_secs(2)).await;
            assert_permits_alice(&a);
            assert!(took < PROMPTLY, "{behaviour:?}: {took:?}");
            assert!(
                started.elapsed() < EVENTUALLY,
                "the endpoint was never retried"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        // (d) A kid nobody has, during the outage: 401 within Envoy's deadline.
        let (a, took) = check_within(
            &g,
            &external_token(&k3, now(&g)),
            Duration::from_millis(500),
        )
        .await;
        assert_unknown_key(&a);
        assert!(took < PROMPTLY, "{behaviour:?}: {took:?}");
    }
}

#[tokio::test]
async fn outage_past_max_staleness_is_503_not_401_and_recovers_without_restart() {
    let k1 = SigningKey::generate().unwrap();
    let mock = MockJwks::start(serve(&[&k1])).await;
    let g = sidecar(trusting(&mock, |t| {
        t.refresh_interval_seconds = 1;
        t.refetch_cooldown_seconds = 1;
        t.max_stale_seconds = 120;
        t.fetch_timeout_ms = 1000;
    }))
    .await;
    wait_until_ready(&g).await;
    let t0 = external_token(&k1, now(&g));
    assert_permits_alice(&check(&g, &t0).await);

    mock.set(Behaviour::Unavailable);
    wait_for_next_fetch(&mock).await;
    g.clock.advance(119);
    assert_permits_alice(&check(&g, &t0).await);
    // Past max staleness: the still-valid token is answered 503, not 401.
    g.clock.advance(2);
    assert_unavailable(&check(&g, &t0).await);
    mock.set(Behaviour::Hang);
    let (a, took) = check_within(&g, &t0, Duration::from_millis(500)).await;
    assert_unavailable(&a);
    assert!(took < PROMPTLY, "{took:?}");
    assert_eq!(
        readyz(&g).await,
        200,
        "readiness is about the first load only"
    );

    mock.set(serve(&[&k1]));
    eventually(&g, &t0, |a| a.http_status == 200).await;
}

#[tokio::test]
async fn start_with_jwks_down_is_503_and_unready_until_it_comes_up() {
    let k1 = SigningKey::generate().unwrap();
    let mock = MockJwks::start(Behaviour::Unavailable).await;
    let g = sidecar(trusting(&mock, |t| {
        t.refresh_interval_seconds = 1;
        t.refetch_cooldown_seconds = 1;
    }))
    .await;
    let t0 = external_token(&k1, now(&g));

    assert_eq!(readyz(&g).await, 503);
    assert!(!g.running.gatehouse.keys_ready());
    assert_unavailable(&check(&g, &t0).await);

    mock.set(serve(&[&k1]));
    assert_permits_alice(&eventually(&g, &t0, |a| a.http_status == 200).await);
    assert_eq!(readyz(&g).await, 200);
}

#[tokio::test]
async fn cold_keys_with_a_hanging_endpoint_answer_503_inside_the_deadline() {
    let k1 = SigningKey::generate().unwrap();
    let mock = MockJwks::start(Behaviour::Hang).await;
    let g = sidecar(trusting(&mock, |t| t.fetch_timeout_ms = 10_000)).await;
    // Envoy's ext_authz timeout of 250 ms: gatehouse answers within its share of it.
    let (a, took) = check_within(
        &g,
        &external_token(&k1, now(&g)),
        Duration::from_millis(250),
    )
    .await;
    assert_unavailable(&a);
    assert!(took < PROMPTLY, "{took:?}");
}

#[tokio::test]
async fn malformed_tokens_never_trigger_a_fetch() {
    let k1 = SigningKey::generate().unwrap();
    let mock = MockJwks::start(serve(&[&k1])).await;
    let g = sidecar(trusting(&mock, |t| t.refresh_interval_seconds = 3600)).await;
    wait_until_ready(&g).await;
    assert_eq!(mock.hits(), 1);

    let t0 = external_token(&k1, now(&g));
    let claims = forge::payload(&t0);
    // A kid nobody has, so that only the token's malformation stands between it and a fetch.
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "kid-nobody-has"});
    let unknown = forge::rs256(&k1, &header, &claims);
    let (input, signature) = unknown.rsplit_once('.').unwrap();
    let with = |field: &str, value: Value| forge::with(&header, field, Some(value));
    let mut malformed = vec![
        input.to_owned(),
        format!("{unknown}=="),
        format!("{unknown}.x"),
        format!("{input}.{}+", signature.replace('-', "+").replace('_', "/")),
        format!("{input}.{} {}", &signature[..10], &signature[10..]),
        forge::unsigned(&header, &claims),
        forge::hs256(b"secret", &with("alg", json!("HS256")), &claims),
        forge::rs256(&k1, &with("typ", json!("JWT")), &claims),
        forge::rs256(&k1, &with("crit", json!(["exp"])), &claims),
        forge::rs256(
            &k1,
            &with("jku", json!("https://attacker.example/jwks")),
            &claims,
        ),
        format!("{}.{}.{}.{}.{}", forge::b64("{}"), "a", "b", "c", "d"),
        format!("{}.!!!.{signature}", forge::b64(header.to_string())),
        format!("{input}.{}", forge::b64("short")),
        "not-a-token".to_owned(),
    ];
    for alg in ["none", "None", "NONE", "nOnE"] {
        malformed.push(forge::unsigned(&with("alg", json!(alg)), &claims));
    }
    for token in &malformed {
        let a = check(&g, token).await;
        assert_deny(&a, 401);
        assert_ne!(a.reason(), "token_key_unknown", "{token}");
    }
    assert_permits_alice(&check(&g, &t0).await);
    assert_eq!(mock.hits(), 1, "malformed input fetched keys");

    // The counter does count: a well-formed token with an unknown kid refetches once.
    assert_unknown_key(&check(&g, &unknown).await);
    assert_eq!(mock.hits(), 2);
}
