//! `POST /token` and `GET /jwks`.

mod errors;

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

    // B25.1: body credentials without Basic: an unsupported authentication method.
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
        (401, Some("invalid_client"))
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

#[tokio::test]
async fn client_authentication_is_basic_only_and_unambiguous() {
    let g = TestGatehouse::start(&example_policy()).await;
    let service = g.clients["invoice-service"].clone();
    let web = g.clients["invoices-web"].clone();
    let secret = service.secret.clone().unwrap();
    let cc = [("grant_type", "client_credentials")];

    // B25.4: the control.
    let (status, body) = g.token_request(Some((&service.id, &secret)), &cc).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none());

    // B25.3: Basic names one client, the body another.
    let (status, body) = g
        .token_request(
            Some((&service.id, &secret)),
            &[("grant_type", "client_credentials"), ("client_id", &web.id)],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Wrong secret and unknown client: 401 invalid_client with a Basic challenge.
    for (id, secret) in [(service.id.as_str(), "wrong"), ("gh-unknown", "whatever")] {
        let response = g
            .http
            .post(g.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&cc)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"gatehouse\""
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }

    // A confidential client that names itself in the body is not authenticated.
    let (status, body) = g
        .token_request(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &service.id),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // B27: a public client may not use client_credentials.
    let (status, body) = g
        .token_request(
            None,
            &[("grant_type", "client_credentials"), ("client_id", &web.id)],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );

    // The service client is not allowed the password grant.
    let (status, body) = g
        .token_request(
            Some((&service.id, &secret)),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", ALICE_PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
}

#[tokio::test]
async fn malformed_token_requests_get_rfc6749_errors() {
    let g = TestGatehouse::start(&example_policy()).await;
    let web = g.clients["invoices-web"].id.clone();
    let cases: [(&str, u16, &str); 6] = [
        (
            "grant_type=password&client_id=WEB&username=alice",
            400,
            "invalid_request",
        ),
        (
            "grant_type=password&client_id=WEB&username=alice&password=a&password=b",
            400,
            "invalid_request",
        ),
        (
            "client_id=WEB&username=alice&password=x",
            400,
            "invalid_request",
        ),
        (
            "grant_type=magic&client_id=WEB",
            400,
            "unsupported_grant_type",
        ),
        (
            "grant_type=password&client_id=WEB&username=alice&password=x&scope=admin",
            400,
            "invalid_scope",
        ),
        (
            "grant_type=password&client_id=nobody&username=alice&password=x",
            401,
            "invalid_client",
        ),
    ];
    for (body, status, error) in cases {
        let response = g
            .http
            .post(g.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.replace("WEB", &web))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let json: serde_json::Value = response.json().await.unwrap();
        assert_eq!(json["error"], error, "{body}");
    }

    let response = g
        .http
        .post(g.url("/token"))
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"password"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_account_get_identical_answers() {
    let hash = gatehouse::credentials::hash_password("bob-real-password").unwrap();
    let policy = example_policy().replace(
        "accounts:\n",
        &format!(
            "accounts:\n  - username: bob\n    password_hash: \"{hash}\"\n    disabled: true\n"
        ),
    );
    let g = TestGatehouse::start(&policy).await;
    let web = g.clients["invoices-web"].id.clone();

    let mut answers = Vec::new();
    for (username, password) in [
        ("alice", "wrong"),
        ("nobody", "wrong"),
        ("bob", "bob-real-password"),
    ] {
        let response = g
            .http
            .post(g.url("/token"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", web.as_str()),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| *name != "date")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        answers.push((
            response.status().as_u16(),
            headers,
            response.bytes().await.unwrap(),
        ));
    }
    assert_eq!(answers[0].0, 400);
    assert_eq!(&answers[0].2[..], br#"{"error":"invalid_grant"}"#);
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
}

#[test]
fn example_configuration_lists_the_defaults() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/gatehouse.toml"
    ));
    let loaded = gatehouse::config::Config::load(Some(path)).unwrap();
    let defaults = gatehouse::config::Config::default();
    assert_eq!(format!("{loaded:?}"), format!("{defaults:?}"));
}
