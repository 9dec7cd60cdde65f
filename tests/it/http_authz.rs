//! The HTTP ext_authz protocol (`/ext_authz/…`), forwarding headers, the decision API
//! (`POST /v1/decision`), and a real Envoy configured for HTTP ext_authz (`envoy/http-authz.yaml`).

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::support::envoy::{Echo, Envoy};
use crate::support::{ALICE_PASSWORD, TestGatehouse, example_policy};

async fn alice(gatehouse: &TestGatehouse) -> String {
    let token = gatehouse
        .user_token("invoices-web", "alice", ALICE_PASSWORD)
        .await;
    format!("Bearer {}", token["access_token"].as_str().unwrap())
}

/// Sends `method url` with `headers`; returns status, headers and body.
async fn send(
    gatehouse: &TestGatehouse,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = gatehouse.http.request(method, gatehouse.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|value| value.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn ext_authz_permit_is_200_with_decision_headers_and_the_names_to_remove() {
    let g = TestGatehouse::start(&example_policy()).await;
    let auth = alice(&g).await;

    let (status, headers, body) = send(
        &g,
        "GET",
        "/ext_authz/v1/invoices/inv-1001?expand=lines",
        &[
            ("authorization", &auth),
            ("x-gatehouse-resource-type", "invoices"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-gatehouse-decision"), "Permit");
    assert_eq!(header(&headers, "x-gatehouse-subject"), "alice");
    assert_eq!(
        header(&headers, "x-gatehouse-policy-id"),
        "invoices-rbac-v1"
    );
    assert_eq!(
        header(&headers, "x-gatehouse-client-id"),
        g.clients["invoices-web"].id
    );
    assert_eq!(header(&headers, "x-gatehouse-decision-id").len(), 32);
    // Names this decision does not set, for Envoy to strip from the upstream request.
    assert_eq!(
        header(&headers, "x-envoy-auth-headers-to-remove"),
        "x-gatehouse-obligations,x-gatehouse-advice"
    );
}

#[tokio::test]
async fn ext_authz_denies_carry_status_challenge_and_the_decision_body() {
    let g = TestGatehouse::start(&example_policy()).await;
    let auth = alice(&g).await;

    let (status, headers, body) = send(
        &g,
        "DELETE",
        "/ext_authz/v1/invoices/inv-1001",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        header(&headers, "www-authenticate"),
        "Bearer realm=\"gatehouse\", error=\"insufficient_scope\""
    );
    assert_eq!(header(&headers, "content-type"), "application/json");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["decision"], "Deny");
    assert_eq!(body["authenticated"], true);
    assert_eq!(body["reason"], "not_granted");

    // A context header that does not match the granted resource's type denies.
    let (status, _, _) = send(
        &g,
        "GET",
        "/ext_authz/v1/invoices/inv-1001",
        &[
            ("authorization", &auth),
            ("x-gatehouse-resource-type", "ledger"),
        ],
    )
    .await;
    assert_eq!(status, 403);

    let (status, headers, body) = send(&g, "GET", "/ext_authz/v1/invoices/inv-1001", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate"),
        "Bearer realm=\"gatehouse\""
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["reason"],
        "missing_credentials"
    );

    let (status, headers, _) = send(
        &g,
        "GET",
        "/ext_authz/v1/invoices/inv-1001",
        &[("authorization", "Bearer not.a.token")],
    )
    .await;
    assert_eq!(status, 401);
    assert!(header(&headers, "www-authenticate").contains("error=\"invalid_token\""));

    for target in [
        "/ext_authz/v1//invoices",
        "/ext_authz/v1/invoices/a%2fb",
        "/ext_authz",
    ] {
        let (status, headers, body) = send(&g, "GET", target, &[("authorization", &auth)]).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(header(&headers, "www-authenticate").contains("error=\"invalid_request\""));
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["reason"],
            "non_canonical_path"
        );
    }
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    // trusted_proxies is empty by default: nobody's forwarding headers count.
    let g = TestGatehouse::start(&example_policy()).await;
    let auth = alice(&g).await;
    let spoof = [
        ("x-forwarded-uri", "/v1/invoices/inv-1001"),
        ("x-original-uri", "/v1/invoices/inv-1001"),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", "billing.example.com"),
    ];

    // The path and method gatehouse was called with decide, not the headers.
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(spoof);
    let (status, _, _) = send(&g, "DELETE", "/ext_authz/v1/invoices/inv-1001", &headers).await;
    assert_eq!(status, 403);
    let (status, _, _) = send(&g, "GET", "/ext_authz/v1/payroll/1", &headers).await;
    assert_eq!(status, 403);
    let (status, _, _) = send(&g, "GET", "/ext_authz", &headers).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_decide() {
    let g = TestGatehouse::start_with(&example_policy(), |config| {
        config.http_authz.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let auth = alice(&g).await;

    // As Traefik ForwardAuth and Caddy forward_auth call: a fixed address, the request in
    // headers.
    let forward = |method: &'static str, uri: &'static str| {
        [
            ("x-forwarded-method", method),
            ("x-forwarded-uri", uri),
            ("x-forwarded-host", "billing.example.com"),
        ]
    };
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(forward("GET", "/v1/invoices/inv-1001"));
    let (status, response, _) = send(&g, "GET", "/ext_authz", &headers).await;
    assert_eq!(status, 200);
    assert_eq!(header(&response, "x-gatehouse-subject"), "alice");

    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(forward("DELETE", "/v1/invoices/inv-1001"));
    let (status, _, _) = send(&g, "GET", "/ext_authz", &headers).await;
    assert_eq!(status, 403);

    // As nginx auth_request is usually configured: X-Original-URI.
    let headers = [
        ("authorization", auth.as_str()),
        ("x-original-uri", "/v1/invoices/inv-1001/lines"),
    ];
    let (status, _, _) = send(&g, "GET", "/ext_authz", &headers).await;
    assert_eq!(status, 200);

    // Forwarded targets are held to the same canonical-path rules.
    let headers = [
        ("authorization", auth.as_str()),
        ("x-forwarded-uri", "/v1/invoices/../payroll"),
    ];
    let (status, _, _) = send(&g, "GET", "/ext_authz", &headers).await;
    assert_eq!(status, 400);
}

/// `POST /v1/decision` with an optional bearer header and a JSON body.
async fn decide(g: &TestGatehouse, auth: Option<&str>, body: &str) -> (u16, HeaderMap, Value) {
    let mut request = g
        .http
        .post(g.url("/v1/decision"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

#[tokio::test]
async fn decision_api_answers_the_decision_model_with_the_mapped_status() {
    let g = TestGatehouse::start(&example_policy()).await;
    let auth = alice(&g).await;

    let permit = json!({"method": "GET", "path": "/v1/invoices/inv-1001"}).to_string();
    let (status, headers, body) = decide(&g, Some(&auth), &permit).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert_eq!(
        body,
        json!({"decision": "Permit", "authenticated": true, "obligations": [], "advice": [],
               "policyId": "invoices-rbac-v1", "reason": "granted"})
    );

    let tuple = json!({"method": "GET", "path": "/v1/invoices/inv-1001/attachments/a.pdf",
                       "resource_type": "invoices", "resource_name": "attachment"});
    let (status, _, _) = decide(&g, Some(&auth), &tuple.to_string()).await;
    assert_eq!(status, 200);
    let wrong_name = json!({"method": "GET", "path": "/v1/invoices/inv-1001",
                            "resource_type": "invoices", "resource_name": "attachment"});
    let (status, _, _) = decide(&g, Some(&auth), &wrong_name.to_string()).await;
    assert_eq!(status, 403);

    let deny = json!({"method": "DELETE", "path": "/v1/invoices/inv-1001"}).to_string();
    let (status, headers, body) = decide(&g, Some(&auth), &deny).await;
    assert_eq!(status, 403);
    assert!(header(&headers, "www-authenticate").contains("insufficient_scope"));
    assert_eq!(
        (body["decision"].as_str(), body["reason"].as_str()),
        (Some("Deny"), Some("not_granted"))
    );

    let (status, headers, body) = decide(&g, None, &permit).await;
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate"),
        "Bearer realm=\"gatehouse\""
    );
    assert_eq!(body["authenticated"], false);

    let (status, _, body) = decide(&g, Some("Bearer not.a.token"), &permit).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn decision_api_resolves_a_resource_id_to_its_whole_tuple() {
    let g = TestGatehouse::start(&example_policy()).await;
    let auth = alice(&g).await;

    for (id, expected) in [
        ("invoices.read", 200),
        ("invoices.attachments.read", 200),
        ("invoices.delete", 403),
        ("invoices.create", 403),
        ("ledger.2016-01.read", 403),
    ] {
        let body = json!({"resource_id": id}).to_string();
        let (status, _, answer) = decide(&g, Some(&auth), &body).await;
        assert_eq!(status, expected, "{id}: {answer}");
    }
    let (status, _, answer) =
        decide(&g, Some(&auth), &json!({"resource_id": "nope"}).to_string()).await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (403, Some("no_matching_resource"))
    );
    // Without a valid token an unknown id and a known one get the same answer.
    for id in ["nope", "invoices.read"] {
        let (status, _, answer) = decide(&g, None, &json!({"resource_id": id}).to_string()).await;
        assert_eq!(
            (status, answer["reason"].as_str()),
            (401, Some("missing_credentials")),
            "{id}"
        );
    }
}

#[tokio::test]
async fn decision_api_refuses_identity_and_unknown_members_in_the_body() {
    let g = TestGatehouse::start(&example_policy()).await;
    let auth = alice(&g).await;

    for (body, reason) in [
        (
            json!({"method": "GET", "path": "/v1/invoices/1", "client_id": "x"}),
            "identity_in_body",
        ),
        (
            json!({"method": "GET", "path": "/v1/invoices/1", "username": "alice"}),
            "identity_in_body",
        ),
        (
            json!({"resource_id": "invoices.read", "client_secret": "s"}),
            "identity_in_body",
        ),
        (
            json!({"method": "GET", "path": "/v1/invoices/1", "extra": 1}),
            "invalid_body",
        ),
        (json!({"method": "GET"}), "invalid_body"),
        (
            json!({"resource_id": "invoices.read", "method": "GET"}),
            "invalid_body",
        ),
        (json!(["GET", "/v1/invoices/1"]), "invalid_body"),
    ] {
        let (status, headers, answer) = decide(&g, Some(&auth), &body.to_string()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["reason"], reason, "{body}");
        assert_eq!(answer["decision"], "Deny");
        assert!(header(&headers, "www-authenticate").contains("invalid_request"));
    }
    let (status, _, answer) = decide(&g, Some(&auth), "not json").await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (400, Some("invalid_body"))
    );
}

#[tokio::test]
async fn envoy_in_http_mode_forwards_permits_and_answers_denies() {
    let g = TestGatehouse::start(&example_policy()).await;
    let echo = Echo::start().await;
    let envoy = Envoy::start_config(
        g.dir.path(),
        "http-authz.yaml",
        &[(9000, g.running.http_addr.port()), (8081, echo.addr.port())],
    )
    .await;
    let auth = alice(&g).await;
    let http = reqwest::Client::new();

    let response = http
        .get(envoy.url("/v1/invoices/inv-1001"))
        .header("authorization", &auth)
        .header("x-gatehouse-subject", "mallory")
        .header("x-gatehouse-advice", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = echo.last();
    assert_eq!(seen.path, "/v1/invoices/inv-1001");
    assert_eq!(seen.values("x-gatehouse-subject"), ["alice"]);
    assert_eq!(seen.values("x-gatehouse-decision"), ["Permit"]);
    assert!(seen.values("x-gatehouse-advice").is_empty(), "{seen:?}");
    let decision_id = seen.values("x-gatehouse-decision-id")[0].to_owned();

    let response = http
        .delete(envoy.url("/v1/invoices/inv-1001"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(header(response.headers(), "www-authenticate").contains("insufficient_scope"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["decision"].as_str(), body["reason"].as_str()),
        (Some("Deny"), Some("not_granted"))
    );

    let response = http
        .get(envoy.url("/v1/invoices/inv-1001"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        header(response.headers(), "www-authenticate"),
        "Bearer realm=\"gatehouse\""
    );
    assert_eq!(echo.count(), 1, "denied requests never reach the upstream");

    assert!(
        envoy.logs_decision(&decision_id).await,
        "decision id missing from Envoy's access log"
    );
}

#[tokio::test]
async fn envoy_in_http_mode_fails_closed_when_gatehouse_is_down() {
    let echo = Echo::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let envoy = Envoy::start_config(
        dir.path(),
        "http-authz.yaml",
        &[(9000, dead_port), (8081, echo.addr.port())],
    )
    .await;
    let response = reqwest::get(envoy.url("/v1/invoices/inv-1001"))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(echo.count(), 0);
}
