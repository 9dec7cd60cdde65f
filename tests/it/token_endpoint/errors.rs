//! Every malformed `/token` request gets the RFC 6749 §5.2 answer for its fault (B25, B29),
//! against the OAuth fixture; every answer is `Cache-Control: no-store`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::support::{ALICE_CANARY, BOB_CANARY, TestGatehouse, oauth_policy};

const FORM: &str = "application/x-www-form-urlencoded";

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// One raw request to `/token`.
struct Raw<'a> {
    method: &'a str,
    query: &'a str,
    content_type: Option<&'a str>,
    authorization: Vec<String>,
    body: String,
}

impl<'a> Raw<'a> {
    fn post(authorization: Vec<String>, body: &str) -> Self {
        Raw {
            method: "POST",
            query: "",
            content_type: Some(FORM),
            authorization,
            body: body.to_owned(),
        }
    }
}

/// Status, headers and body bytes.
async fn send(g: &TestGatehouse, raw: &Raw<'_>) -> (u16, HeaderMap, Vec<u8>) {
    let method = reqwest::Method::from_bytes(raw.method.as_bytes()).unwrap();
    let mut request = g
        .http
        .request(method, g.url(&format!("/token{}", raw.query)))
        .body(raw.body.clone());
    if let Some(content_type) = raw.content_type {
        request = request.header("content-type", content_type);
    }
    for value in &raw.authorization {
        // `header` appends: two values are two header lines.
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

/// Asserts status and error code, the no-store header, and the challenge on 401.
fn assert_error(answer: &(u16, HeaderMap, Vec<u8>), status: u16, error: &str, case: &str) {
    let (got, headers, body) = answer;
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    assert_eq!(
        (*got, json["error"].as_str()),
        (status, Some(error)),
        "{case}: {json}"
    );
    assert_eq!(headers["cache-control"], "no-store", "{case}");
    if status == 401 {
        assert_eq!(
            headers["www-authenticate"], "Basic realm=\"gatehouse\"",
            "{case}"
        );
    } else {
        assert!(headers.get("www-authenticate").is_none(), "{case}");
    }
}

#[tokio::test]
async fn b25_client_credentials_only_via_basic_one_method_per_request() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let reports = g.clients["svc-reports"].clone();
    let audit = g.clients["svc-audit"].id.clone();
    let secret = reports.secret.clone().unwrap();
    let id = reports.id.as_str();
    let auth = || vec![basic(id, &secret)];

    // 1. Body credentials, no Authorization: 401 invalid_client with a Basic challenge.
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    assert_error(
        &send(&g, &Raw::post(vec![], &body)).await,
        401,
        "invalid_client",
        "1",
    );

    // 2. Basic plus a body secret: two methods at once.
    let body = format!("grant_type=client_credentials&client_secret={secret}");
    assert_error(
        &send(&g, &Raw::post(auth(), &body)).await,
        400,
        "invalid_request",
        "2",
    );

    // 3. Basic names one client, the body another.
    let body = format!("grant_type=client_credentials&client_id={audit}");
    assert_error(
        &send(&g, &Raw::post(auth(), &body)).await,
        400,
        "invalid_request",
        "3",
    );

    // 4. The control: a token, no refresh token (RFC 6749 §4.4.3).
    let (status, headers, body) =
        send(&g, &Raw::post(auth(), "grant_type=client_credentials")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert!(json["access_token"].is_string(), "{json}");
    assert_eq!(json["token_type"], "Bearer");
    assert!(json["expires_in"].is_i64());
    assert!(json.get("refresh_token").is_none());

    // 5. Credentials in the query string.
    let query = format!("?client_id={id}&client_secret={secret}");
    let raw = Raw {
        query: &query,
        ..Raw::post(vec![], "grant_type=client_credentials")
    };
    assert_error(&send(&g, &raw).await, 400, "invalid_request", "5");

    // 6. GET /token: 405, and which method is allowed.
    let raw = Raw {
        method: "GET",
        content_type: None,
        ..Raw::post(vec![], "")
    };
    let answer = send(&g, &raw).await;
    assert_error(&answer, 405, "invalid_request", "6");
    assert_eq!(answer.1["allow"], "POST");
}

#[tokio::test]
async fn each_malformed_request_gets_the_rfc6749_error_for_its_fault() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let reports = g.clients["svc-reports"].clone();
    let secret = reports.secret.clone().unwrap();
    let id = reports.id.as_str();
    let good = basic(id, &secret);
    let cc = "grant_type=client_credentials";

    let cases: Vec<(&str, Raw<'_>, u16, &str)> = vec![
        (
            "repeated parameter",
            Raw::post(
                vec![good.clone()],
                "grant_type=client_credentials&scope=a&scope=b",
            ),
            400,
            "invalid_request",
        ),
        (
            "repeated grant_type",
            Raw::post(vec![good.clone()], &format!("{cc}&{cc}")),
            400,
            "invalid_request",
        ),
        (
            "missing grant_type",
            Raw::post(vec![good.clone()], "scope=documents"),
            400,
            "invalid_request",
        ),
        (
            "empty grant_type",
            Raw::post(vec![good.clone()], "grant_type="),
            400,
            "invalid_request",
        ),
        (
            "unknown grant_type",
            Raw::post(vec![good.clone()], "grant_type=magic"),
            400,
            "unsupported_grant_type",
        ),
        (
            "JSON body",
            Raw {
                content_type: Some("application/json"),
                ..Raw::post(vec![good.clone()], r#"{"grant_type":"client_credentials"}"#)
            },
            400,
            "invalid_request",
        ),
        (
            "no content type",
            Raw {
                content_type: None,
                ..Raw::post(vec![good.clone()], cc)
            },
            400,
            "invalid_request",
        ),
        (
            "PUT",
            Raw {
                method: "PUT",
                ..Raw::post(vec![good.clone()], cc)
            },
            405,
            "invalid_request",
        ),
        (
            "secret in the body, no Basic",
            Raw::post(
                vec![],
                &format!("{cc}&client_id={id}&client_secret={secret}"),
            ),
            401,
            "invalid_client",
        ),
        (
            "secret in the body and Basic",
            Raw::post(vec![good.clone()], &format!("{cc}&client_secret={secret}")),
            400,
            "invalid_request",
        ),
        (
            "secret in the query",
            Raw {
                query: "?client_secret=x",
                ..Raw::post(vec![good.clone()], cc)
            },
            400,
            "invalid_request",
        ),
        (
            "Basic and a different body client_id",
            Raw::post(vec![good.clone()], &format!("{cc}&client_id=gh-other")),
            400,
            "invalid_request",
        ),
        (
            "two Authorization headers",
            Raw::post(vec![good.clone(), good.clone()], cc),
            400,
            "invalid_request",
        ),
        (
            "Basic not base64",
            Raw::post(vec!["Basic !!!".into()], cc),
            401,
            "invalid_client",
        ),
        (
            "Basic without a colon",
            Raw::post(vec![format!("Basic {}", STANDARD.encode(id))], cc),
            401,
            "invalid_client",
        ),
        (
            "Basic with an empty client id",
            Raw::post(vec![basic("", &secret)], cc),
            401,
            "invalid_client",
        ),
        (
            "Basic without credentials",
            Raw::post(vec!["Basic".into()], cc),
            401,
            "invalid_client",
        ),
        (
            "a Bearer token instead",
            Raw::post(vec!["Bearer abc".into()], cc),
            401,
            "invalid_client",
        ),
        (
            "wrong secret",
            Raw::post(vec![basic(id, "wrong")], cc),
            401,
            "invalid_client",
        ),
        (
            "a confidential client naming itself in the body",
            Raw::post(vec![], &format!("{cc}&client_id={id}")),
            401,
            "invalid_client",
        ),
        (
            "a scope the client may not have",
            Raw::post(vec![good.clone()], &format!("{cc}&scope=admin")),
            400,
            "invalid_scope",
        ),
        (
            "a public client asking for client_credentials",
            Raw::post(
                vec![],
                &format!("{cc}&client_id={}", g.clients["spa-web"].id),
            ),
            400,
            "unauthorized_client",
        ),
    ];
    for (case, raw, status, error) in &cases {
        assert_error(&send(&g, raw).await, *status, error, case);
    }
}

#[tokio::test]
async fn b29_credential_failures_are_identical_and_malformed_input_is_invalid_request() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let reports = g.clients["svc-reports"].clone();
    let auth = || vec![basic(&reports.id, reports.secret.as_deref().unwrap())];
    let grant = |rest: &str| format!("grant_type=password&{rest}");

    // Unknown user, wrong password, disabled account with the right password: one answer.
    let mut failures = Vec::new();
    for rest in [
        "username=alice&password=wrong".to_owned(),
        "username=nobody&password=wrong".to_owned(),
        format!("username=bob&password={BOB_CANARY}"),
    ] {
        let (status, headers, body) = send(&g, &Raw::post(auth(), &grant(&rest))).await;
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .filter(|(name, _)| *name != "date")
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        failures.push((status, headers, body));
    }
    assert_eq!(failures[0].0, 400);
    assert_eq!(failures[0].2, br#"{"error":"invalid_grant"}"#);
    assert_eq!(failures[0], failures[1]);
    assert_eq!(failures[0], failures[2]);

    // Missing or repeated parameters: invalid_request, whether or not the user exists.
    for user in ["alice", "nobody"] {
        for rest in [
            format!("username={user}&password="),
            format!("username={user}&password=a&password=b"),
            format!("username={user}"),
            format!("password={ALICE_CANARY}"),
            format!("username={user}&username={user}&password={ALICE_CANARY}"),
        ] {
            let answer = send(&g, &Raw::post(auth(), &grant(&rest))).await;
            assert_error(&answer, 400, "invalid_request", &rest);
        }
    }

    // And the right password still works: none of the above counted as a failure.
    let answer = send(
        &g,
        &Raw::post(
            auth(),
            &grant(&format!("username=alice&password={ALICE_CANARY}")),
        ),
    )
    .await;
    assert_eq!(answer.0, 200);
}

/// RFC 8707: `resource` may only name the audience gatehouse mints for; anything else is
/// `invalid_target` and mints nothing.
#[tokio::test]
async fn resource_indicator_narrows_to_the_configured_audience_or_is_invalid_target() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let reports = &g.clients["svc-reports"];
    let basic = Some((reports.id.as_str(), reports.secret.as_deref().unwrap()));

    let (status, body) = g
        .token_request(
            basic,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "invoices-api"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(crate::support::forge::payload(token)["aud"], "invoices-api");

    for resource in ["https://other.example/api", "invoices-api/", "INVOICES-API"] {
        let (status, body) = g
            .token_request(
                basic,
                &[("grant_type", "client_credentials"), ("resource", resource)],
            )
            .await;
        assert_eq!(status, 400, "{resource}");
        assert_eq!(body["error"], "invalid_target", "{resource}");
        assert!(body.get("access_token").is_none());
    }
}
