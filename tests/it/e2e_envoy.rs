//! End to end: tokens from `/token`, requests through a real Envoy, decisions at the upstream.

use serde_json::Value;

use crate::support::envoy::{Echo, Envoy};
use crate::support::{
    ALICE_PASSWORD, AUDITOR_PASSWORD, Backend, TestGatehouse, example_policy, on_both_backends,
};

struct Stack {
    gatehouse: TestGatehouse,
    echo: Echo,
    envoy: Envoy,
    http: reqwest::Client,
}

async fn stack() -> Stack {
    stack_on(Backend::Sqlite).await
}

async fn stack_on(backend: Backend) -> Stack {
    let gatehouse = TestGatehouse::start_on(backend, &example_policy()).await;
    let echo = Echo::start().await;
    let envoy = Envoy::start(gatehouse.dir.path(), gatehouse.running.grpc_addr, echo.addr).await;
    Stack {
        gatehouse,
        echo,
        envoy,
        http: reqwest::Client::new(),
    }
}

impl Stack {
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, self.envoy.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn permitted_request_reaches_upstream_with_decision_headers_and_spoofed_copies_removed() {
    let s = stack().await;
    let token = s
        .gatehouse
        .user_token("invoices-web", "alice", ALICE_PASSWORD)
        .await;
    let token = token["access_token"].as_str().unwrap();
    let auth = bearer(token);

    let (status, _, _) = s
        .send(
            "GET",
            "/v1/invoices/inv-1001",
            &[
                ("authorization", &auth),
                ("x-gatehouse-subject", "acct-0001"),
                ("x-gatehouse-decision", "Permit"),
                ("x-gatehouse-obligations", "forged"),
                ("x-gatehouse-advice", "forged"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let seen = s.echo.last();
    assert_eq!(seen.values("x-gatehouse-subject"), ["alice"]);
    assert_eq!(seen.values("x-gatehouse-decision"), ["Permit"]);
    assert_eq!(seen.values("x-gatehouse-policy-id"), ["invoices-rbac-v1"]);
    assert_eq!(
        seen.values("x-gatehouse-client-id"),
        [s.gatehouse.clients["invoices-web"].id.as_str()]
    );
    assert!(
        seen.values("x-gatehouse-obligations").is_empty(),
        "{seen:?}"
    );
    assert!(seen.values("x-gatehouse-advice").is_empty(), "{seen:?}");
    let decision_id = seen.values("x-gatehouse-decision-id")[0].to_owned();
    assert_eq!(decision_id.len(), 32);

    // The same decision id is in Envoy's access log (written asynchronously).
    assert!(
        s.envoy.logs_decision(&decision_id).await,
        "decision id missing from Envoy's access log"
    );
}

#[tokio::test]
async fn deny_bodies_through_envoy_equal_the_decision_model() {
    let s = stack().await;
    let token = s
        .gatehouse
        .user_token("invoices-web", "alice", ALICE_PASSWORD)
        .await;
    let auth = bearer(token["access_token"].as_str().unwrap());

    let (status, headers, body) = s
        .send(
            "DELETE",
            "/v1/invoices/inv-1001",
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        headers["www-authenticate"],
        "Bearer realm=\"gatehouse\", error=\"insufficient_scope\""
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "advice",
            "authenticated",
            "decision",
            "obligations",
            "policyId",
            "reason"
        ]
    );
    assert_eq!(body["decision"], "Deny");
    assert_eq!(body["authenticated"], true);
    assert_eq!(body["reason"], "not_granted");

    let (status, headers, body) = s.send("GET", "/v1/invoices/inv-1001", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"gatehouse\"");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["authenticated"], false);
    assert_eq!(body["reason"], "missing_credentials");

    let (status, headers, _) = s
        .send(
            "GET",
            "/v1/invoices/inv-1001",
            &[("authorization", "Bearer not.a.token")],
        )
        .await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    // Envoy joins the two credentials with a comma; gatehouse refuses the ambiguity.
    let (status, headers, body) = s
        .send(
            "GET",
            "/v1/invoices/inv-1001",
            &[
                ("authorization", &auth),
                ("authorization", "Basic dXNlcjpwdw=="),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_request\"")
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["reason"], "multiple_credentials");

    assert_eq!(s.echo.count(), 0, "no denied request reached the upstream");
}

on_both_backends!(small_account_is_decided_from_the_token_and_large_one_by_one_query);
async fn small_account_is_decided_from_the_token_and_large_one_by_one_query(backend: Backend) {
    let s = stack_on(backend).await;
    let alice = s
        .gatehouse
        .user_token("invoices-web", "alice", ALICE_PASSWORD)
        .await;
    let auditor = s
        .gatehouse
        .user_token("invoices-web", "bulk-auditor", AUDITOR_PASSWORD)
        .await;
    let alice = bearer(alice["access_token"].as_str().unwrap());
    let auditor = bearer(auditor["access_token"].as_str().unwrap());

    let before = s.gatehouse.grant_queries();
    for _ in 0..3 {
        let (status, _, _) = s
            .send("GET", "/v1/invoices/inv-7", &[("authorization", &alice)])
            .await;
        assert_eq!(status, 200);
        let (status, _, _) = s
            .send("DELETE", "/v1/invoices/inv-7", &[("authorization", &alice)])
            .await;
        assert_eq!(status, 403);
    }
    assert_eq!(
        s.gatehouse.grant_queries(),
        before,
        "the claims path never queries"
    );

    let (status, _, _) = s
        .send("GET", "/v1/invoices/inv-7", &[("authorization", &auditor)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.gatehouse.grant_queries(), before + 1);
    let (status, _, _) = s
        .send(
            "GET",
            "/v1/ledgers/2019-04/entries/e-1",
            &[("authorization", &auditor)],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.gatehouse.grant_queries(), before + 2);
    let (status, _, _) = s
        .send(
            "DELETE",
            "/v1/invoices/inv-7",
            &[("authorization", &auditor)],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(s.gatehouse.grant_queries(), before + 3);
    assert_eq!(
        s.echo.last().values("x-gatehouse-subject"),
        ["bulk-auditor"]
    );
}

#[tokio::test]
async fn service_token_from_client_credentials_is_checked_on_the_whole_tuple() {
    let s = stack().await;
    let token = s.gatehouse.service_token("invoice-service").await;
    let auth = bearer(&token);
    let (status, _, _) = s
        .send("POST", "/v1/invoices", &[("authorization", &auth)])
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = s
        .send("DELETE", "/v1/invoices/inv-1", &[("authorization", &auth)])
        .await;
    assert_eq!(status, 403);
    // The service's scope does not include ledgers.
    let (status, _, body) = s
        .send(
            "GET",
            "/v1/ledgers/2019-04/entries/e-1",
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(status, 403, "{body}");
}

/// Sends `GET target` to Envoy byte for byte (an HTTP client library would resolve dot
/// segments first) and returns the status Envoy answers.
async fn raw_get(envoy: &Envoy, target: &str, authorization: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let url = envoy.url("");
    let authority = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nhost: {authority}\r\nauthorization: {authorization}\r\n\
         connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text.split(' ').nth(1).unwrap_or_default();
    status
        .parse()
        .unwrap_or_else(|_| panic!("no status line: {text}"))
}

/// B16 through Envoy: targets that leave alice's invoices for the ledgers she may not read,
/// however they are spelled, are never permitted — Envoy normalises or rejects them first, and
/// gatehouse decides on what the upstream would serve — and none reaches the upstream.
#[tokio::test]
async fn non_canonical_targets_through_envoy_never_reach_what_the_token_does_not_grant() {
    let s = stack().await;
    let token = s
        .gatehouse
        .user_token("invoices-web", "alice", ALICE_PASSWORD)
        .await;
    let auth = bearer(token["access_token"].as_str().unwrap());
    assert_eq!(raw_get(&s.envoy, "/v1/invoices/inv-1001", &auth).await, 200);
    assert_eq!(s.echo.count(), 1);
    assert_eq!(
        raw_get(&s.envoy, "/v1/ledgers/2016-01/entries/1", &auth).await,
        403,
        "the canonical form is not granted"
    );

    for target in [
        "/v1/invoices/inv-1001/../../ledgers/2016-01/entries/1",
        "/v1/invoices/inv-1001/%2e%2e/%2e%2e/ledgers/2016-01/entries/1",
        "/v1/invoices/inv-1001/%2E%2E/%2E%2E/ledgers/2016-01/entries/1",
        "/v1/invoices/inv-1001%2F..%2F..%2Fledgers/2016-01/entries/1",
        "/v1/invoices%2F..%2Fledgers/2016-01/entries/1",
        "//v1/ledgers/2016-01/entries/1",
        "/v1//ledgers/2016-01/entries/1",
        "/v1/invoices/inv-1001/./../../ledgers/2016-01/entries/1",
        "/v1/invoices/inv-1001\\..\\..\\ledgers/2016-01/entries/1",
        "/v1/invoices/inv-1001%5C..%5C..%5Cledgers/2016-01/entries/1",
        "/v1/invoices/..;/..;/ledgers/2016-01/entries/1",
        "/v1/invoices/inv-1001%00/../../ledgers/2016-01/entries/1",
    ] {
        let status = raw_get(&s.envoy, target, &auth).await;
        assert!(matches!(status, 400 | 403), "{target}: {status}");
    }
    assert_eq!(s.echo.count(), 1, "only the control reached the upstream");
}

/// B24 through Envoy with `validate_mutations` on: a validly signed token whose identity
/// claims hold control bytes is refused by gatehouse (401), so no such value ever becomes a
/// header mutation and Envoy never answers 500 because of one.
#[tokio::test]
async fn identity_claims_with_control_bytes_are_refused_before_they_can_become_headers() {
    let s = stack().await;
    let token = s
        .gatehouse
        .user_token("invoices-web", "alice", ALICE_PASSWORD)
        .await;
    let token = token["access_token"].as_str().unwrap();
    let key = s.gatehouse.signing_key();
    let claims = crate::support::forge::payload(token);
    let mut hostile = Vec::new();
    for claim in ["sub", "client_id"] {
        for value in [
            "alice\r\nx-admin: true",
            "alice\nx-admin: true",
            "alice\u{0}admin",
            "alice\u{7f}",
            "alic\u{e9}",
        ] {
            let claims = crate::support::forge::with(&claims, claim, Some(value.into()));
            let forged = crate::support::forge::rs256(
                &key,
                &crate::support::forge::access_header(&key),
                &claims,
            );
            hostile.push((format!("{claim} {value:?}"), forged));
        }
    }
    for (case, forged) in &hostile {
        let (status, headers, body) = s
            .send(
                "GET",
                "/v1/invoices/inv-1001",
                &[("authorization", &bearer(forged))],
            )
            .await;
        assert_eq!(status, 401, "{case}: {body}");
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("error=\"invalid_token\""),
            "{case}"
        );
        assert!(!headers.contains_key("x-admin"), "{case}");
    }
    assert_eq!(s.echo.count(), 0);

    // The control: every decision header the upstream sees is visible ASCII.
    let (status, _, _) = s
        .send(
            "GET",
            "/v1/invoices/inv-1001",
            &[("authorization", &bearer(token))],
        )
        .await;
    assert_eq!(status, 200);
    let seen = s.echo.last();
    for (name, value) in seen
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-gatehouse-"))
    {
        assert!(
            !value.is_empty() && value.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{name}: {value:?}"
        );
    }
}
