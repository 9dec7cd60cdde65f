//! Discovery: `/.well-known/oauth-authorization-server` (RFC 8414) and
//! `/.well-known/openid-configuration` tell the truth about gatehouse, and a decide-only
//! gatehouse can find another's keys through them.

use gatehouse::config::{Config, KeySource, TrustedIssuerConfig};
use serde_json::Value;

use crate::support::{TestGatehouse, answer, assert_permit, example_policy, oauth_policy};

const PATHS: [&str; 2] = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
];

async fn fetch(g: &TestGatehouse, path: &str) -> (u16, Option<String>, Value) {
    let response = g.http.get(g.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, cache, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn both_documents_describe_the_configured_issuer_and_its_endpoints() {
    let g = TestGatehouse::start_at_own_url(&oauth_policy()).await;
    let issuer = g.config().tokens.issuer.clone();
    let (status, cache, oauth) = fetch(&g, PATHS[0]).await;
    assert_eq!(status, 200);
    assert_eq!(cache.as_deref(), Some("public, max-age=300"));
    let (_, _, openid) = fetch(&g, PATHS[1]).await;
    assert_eq!(oauth, openid);

    // RFC 8414 §3.3: exactly the configured issuer; every endpoint under it.
    assert_eq!(oauth["issuer"], issuer.as_str());
    for (member, path) in [
        ("token_endpoint", "/token"),
        ("jwks_uri", "/jwks"),
        ("authorization_endpoint", "/authorize"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(oauth[member], format!("{issuer}{path}"), "{member}");
    }
    let list = |member: &str| -> Vec<&str> {
        oauth[member]
            .as_array()
            .unwrap_or_else(|| panic!("{member} missing"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect()
    };
    assert_eq!(
        list("grant_types_supported"),
        [
            "authorization_code",
            "client_credentials",
            "refresh_token",
            "password"
        ]
    );
    assert_eq!(list("response_types_supported"), ["code"]);
    assert_eq!(list("response_modes_supported"), ["query"]);
    assert_eq!(
        list("token_endpoint_auth_methods_supported"),
        ["client_secret_basic", "none"]
    );
    assert_eq!(
        list("introspection_endpoint_auth_methods_supported"),
        ["client_secret_basic"]
    );
    assert_eq!(list("code_challenge_methods_supported"), ["S256"]);
    assert_eq!(list("subject_types_supported"), ["public"]);
    assert_eq!(list("id_token_signing_alg_values_supported"), ["RS256"]);
    // The fixture's one resource type, and openid.
    assert_eq!(list("scopes_supported"), ["documents", "openid"]);
    assert_eq!(
        oauth["authorization_response_iss_parameter_supported"],
        true
    );
    assert!(
        oauth
            .get("token_endpoint_auth_signing_alg_values_supported")
            .is_none()
    );

    // What it names is really there.
    let jwks = g
        .http
        .get(oauth["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    let token = g
        .http
        .post(oauth["token_endpoint"].as_str().unwrap())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        token.status(),
        401,
        "the token endpoint, asking for a client"
    );
}

#[tokio::test]
async fn a_decide_only_gatehouse_serves_no_discovery_and_trusts_one_found_through_it() {
    let central = TestGatehouse::start_at_own_url(&example_policy()).await;
    let issuer = central.config().tokens.issuer.clone();
    let discovery = central.url(PATHS[1]);
    let sidecar = central
        .replica(move |config: &mut Config| {
            config.issuer.enabled = false;
            config.server.http_addr = "127.0.0.1:0".parse().unwrap();
            config.issuers = vec![TrustedIssuerConfig::new(
                issuer,
                KeySource::Discovery(discovery),
            )];
        })
        .await;
    for path in PATHS {
        assert_eq!(fetch(&sidecar, path).await.0, 404, "{path}");
    }

    // The sidecar found the central gatehouse's keys through its discovery document.
    let body = central
        .user_token("invoices-web", "alice", crate::support::ALICE_PASSWORD)
        .await;
    let auth = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let started = std::time::Instant::now();
    loop {
        let a = answer(
            &sidecar
                .check(
                    "GET",
                    "/v1/invoices/inv-1",
                    &[("authorization", &auth)],
                    &[("resource_type", "invoices")],
                )
                .await,
        );
        if a.http_status == 200 || started.elapsed() > std::time::Duration::from_secs(5) {
            assert_permit(&a);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
