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
