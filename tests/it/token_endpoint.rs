//! `POST /token` and `GET /jwks`.

use crate::support::{ALICE_PASSWORD, AUDITOR_PASSWORD, TestGatehouse, example_policy, forge};

#[tokio::test]
async fn jwks_serves_public_members_only() {
    let g = TestGatehouse::start(&example_policy()).await;
    let response = g.http.get(g.url("/jwks")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    for key in keys {
        let mut names: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"]);
        assert_eq!(key["kid"], g.signing_key().kid());
    }
    let post = g.http.post(g.url("/jwks")).send().await.unwrap();
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn token_response_lists_every_resource_and_the_token_carries_ids_or_the_marker() {
    let g = TestGatehouse::start(&example_policy()).await;
    let alice = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
    assert_eq!(alice["token_type"], "Bearer");
    assert_eq!(alice["expires_in"], 600);
    assert!(alice.get("refresh_token").is_none());
    let resources = alice["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 4);
    for resource in resources {
        for field in ["id", "name", "action", "url", "type", "description"] {
            assert!(resource[field].is_string(), "{field} missing in {resource}");
        }
    }
    let token = alice["access_token"].as_str().unwrap();
    let claims = forge::payload(token);
    assert_eq!(claims["grants"].as_array().unwrap().len(), 4);
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "scope",
        "pver",
    ] {
        assert!(claims.get(claim).is_some(), "{claim} missing");
    }
    assert_eq!(claims["iss"], "https://auth.test");
    assert_eq!(claims["aud"], "invoices-api");
    assert_eq!(claims["sub"], "alice");

    let header = token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], g.signing_key().kid());

    let auditor = g
        .user_token("invoices-web", "bulk-auditor", AUDITOR_PASSWORD)
        .await;
    assert_eq!(auditor["resources"].as_array().unwrap().len(), 124);
    let claims = forge::payload(auditor["access_token"].as_str().unwrap());
    assert_eq!(claims["grants"], "db");
}

#[tokio::test]
async fn client_secret_in_body_or_query_is_refused() {
    let g = TestGatehouse::start(&example_policy()).await;
    let service = g.clients["invoice-service"].clone();
    let secret = service.secret.clone().unwrap();

    // B25.1: body credentials without Basic.
    let (status, body) = g
        .token_request(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &service.id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // B25.2: Basic plus a body secret.
    let (status, body) = g
        .token_request(
            Some((&service.id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // B25.5: credentials in the query string.
    let response = g
        .http
        .post(g.url(&format!(
            "/token?client_id={}&client_secret={secret}",
            service.id
        )))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["cache-control"], "no-store");

    // B25.6: GET /token.
    let response = g.http.get(g.url("/token")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["cache-control"], "no-store");
}
