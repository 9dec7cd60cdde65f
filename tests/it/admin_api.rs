//! The admin API: `/admin/...` on the HTTP port, authorised by gatehouse's own access tokens
//! carrying the admin scope (RFC 6750 challenges otherwise), and applying through the same
//! `admin::apply` as the CLI, so permission versions bump and older tokens go stale.

use serde_json::Value;

use crate::support::{ALICE_PASSWORD, TestGatehouse, answer, example_policy};

/// The example policy plus a confidential client allowed the admin scope.
pub(crate) fn policy_with_admin() -> String {
    example_policy().replacen(
        "\nclients:\n",
        "\nclients:\n  - { name: gatehouse-admin, kind: confidential, \
         grant_types: [client_credentials], scopes: [gatehouse.admin] }\n",
        1,
    )
}

async fn admin_gatehouse() -> TestGatehouse {
    TestGatehouse::start_with(&policy_with_admin(), |config| config.admin.enabled = true).await
}

/// `method path` with an optional bearer token and body; status, `WWW-Authenticate`, JSON.
async fn call(
    g: &TestGatehouse,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, String, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = g.http.request(method, g.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        challenge,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn admin_endpoints_are_absent_unless_enabled() {
    let g = TestGatehouse::start(&policy_with_admin()).await;
    let token = g.service_token("gatehouse-admin").await;
    let (status, _, _) = call(&g, "GET", "/admin/clients", Some(&token), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn admin_endpoints_refuse_missing_bad_and_unscoped_tokens_with_rfc6750_challenges() {
    let g = admin_gatehouse().await;

    let (status, challenge, body) = call(&g, "GET", "/admin/clients", None, None).await;
    assert_eq!(status, 401);
    assert_eq!(challenge, "Bearer realm=\"gatehouse\"");
    assert_eq!(body["error"], "invalid_token");

    let (status, challenge, _) = call(&g, "GET", "/admin/clients", Some("not.a.jwt"), None).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // A good gatehouse token, but for the invoices scope only.
    let service = g.service_token("invoice-service").await;
    let (status, challenge, body) = call(&g, "GET", "/admin/clients", Some(&service), None).await;
    assert_eq!(status, 403);
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"gatehouse.admin\""),
        "{challenge}"
    );
    assert_eq!(body["error"], "insufficient_scope");
    let (status, _, _) = call(
        &g,
        "PUT",
        "/admin/policy",
        Some(&service),
        Some(example_policy()),
    )
    .await;
    assert_eq!(status, 403, "nothing is applied without the scope");
}

#[tokio::test]
async fn admin_lists_what_the_store_holds_without_secrets() {
    let g = admin_gatehouse().await;
    let token = g.service_token("gatehouse-admin").await;

    let (status, _, clients) = call(&g, "GET", "/admin/clients", Some(&token), None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = clients
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"invoice-service") && names.contains(&"gatehouse-admin"));
    let text = clients.to_string();
    assert!(!text.contains("secret") && !text.contains("hash"), "{text}");

    let (_, _, accounts) = call(&g, "GET", "/admin/accounts", Some(&token), None).await;
    assert!(accounts.to_string().contains("\"alice\""));
    assert!(!accounts.to_string().contains("argon2"));
    let (_, _, resources) = call(&g, "GET", "/admin/resources", Some(&token), None).await;
    assert!(resources.to_string().contains("invoices.read"));
    let (_, _, roles) = call(&g, "GET", "/admin/roles", Some(&token), None).await;
    assert!(roles.to_string().contains("invoice-reader"));
    let (status, _, grants) = call(&g, "GET", "/admin/grants", Some(&token), None).await;
    assert_eq!(status, 200);
    assert!(
        grants
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["subject"]["id"] == "alice" && g["role"] == "invoice-reader"),
        "{grants}"
    );
}

#[tokio::test]
async fn put_policy_applies_atomically_returns_new_secrets_and_makes_old_tokens_stale() {
    let g = admin_gatehouse().await;
    let token = g.service_token("gatehouse-admin").await;
    let alice = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
    let alice_auth = format!("Bearer {}", alice["access_token"].as_str().unwrap());
    let alice_reads = || async {
        answer(
            &g.check(
                "GET",
                "/v1/invoices/inv-1",
                &[("authorization", alice_auth.as_str())],
                &[("resource_type", "invoices")],
            )
            .await,
        )
    };
    assert_eq!(alice_reads().await.http_status, 200);

    // A policy that does not validate changes nothing and says why, as JSON.
    let broken = policy_with_admin().replace(
        "role: invoice-reader, account: alice",
        "role: nope, account: alice",
    );
    let (status, _, body) = call(&g, "PUT", "/admin/policy", Some(&token), Some(broken)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_policy");
    assert_eq!(alice_reads().await.http_status, 200);

    // Alice becomes a clerk, and a new client appears; sent as JSON.
    let changed = policy_with_admin()
        .replace(
            "{ role: invoice-reader, account: alice }",
            "{ role: invoice-clerk, account: alice }",
        )
        .replacen(
            "\nclients:\n",
            "\nclients:\n  - { name: reports, kind: confidential, \
             grant_types: [client_credentials], scopes: [invoices] }\n",
            1,
        );
    let as_json: Value = serde_yaml::from_str(&changed).unwrap();
    let (status, _, report) = call(
        &g,
        "PUT",
        "/admin/policy",
        Some(&token),
        Some(as_json.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let created = report["created_clients"].as_array().unwrap();
    assert_eq!(created.len(), 1, "{report}");
    assert_eq!(created[0]["name"], "reports");
    let (id, secret) = (
        created[0]["client_id"].as_str().unwrap(),
        created[0]["client_secret"].as_str().unwrap(),
    );
    assert!(
        report["bumped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "account" && s["id"] == "alice"),
        "{report}"
    );

    // The one-time secret works at once; alice's old token is stale on the check path.
    let (status, _) = g
        .token_request(Some((id, secret)), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 200);
    let stale = alice_reads().await;
    assert_eq!(stale.http_status, 401);
    assert_eq!(stale.reason(), "permissions_changed");

    // Re-applying the same policy creates nothing and bumps nobody.
    let (status, _, again) = call(&g, "PUT", "/admin/policy", Some(&token), Some(changed)).await;
    assert_eq!(status, 200);
    assert_eq!(again["created_clients"], serde_json::json!([]));
    assert_eq!(again["bumped"], serde_json::json!([]));
}
