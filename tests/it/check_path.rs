//! The `Check` path: canonical targets (B16), case and methods (B18), credentials in headers
//! (B20, B22) and Envoy's raw `header_map` form. Decisions are asked of gatehouse directly over
//! gRPC, as Envoy would, without Envoy's own path normalisation in front.

mod db_grants;
mod response;

use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use serde_json::json;

use crate::support::{
    ALICE_PASSWORD, AUDITOR_PASSWORD, Answer, TestGatehouse, answer, assert_deny, assert_permit,
    check_request, example_policy, forge,
};

const INVOICE: &str = "/v1/invoices/inv-1001";
const INVOICES: [(&str, &str); 1] = [("resource_type", "invoices")];

/// A gatehouse with the example policy and alice's token (alice reads invoices, writes none).
pub(super) struct Alice {
    pub g: TestGatehouse,
    pub token: String,
    pub auth: String,
}

impl Alice {
    pub async fn start() -> Self {
        let g = TestGatehouse::start(&example_policy()).await;
        let body = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
        let token = body["access_token"].as_str().unwrap().to_owned();
        let auth = format!("Bearer {token}");
        Self { g, token, auth }
    }

    /// `method target` with these headers, on an `invoices` route.
    pub async fn check(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Answer {
        answer(&self.g.check(method, target, headers, &INVOICES).await)
    }

    /// `method target` with alice's token (plus `extra` headers).
    pub async fn as_alice(&self, method: &str, target: &str, extra: &[(&str, &str)]) -> Answer {
        let mut headers = vec![("authorization", self.auth.as_str())];
        headers.extend_from_slice(extra);
        self.check(method, target, &headers).await
    }

    /// Sends a hand-built request.
    pub async fn send(&self, request: CheckRequest) -> Answer {
        let response = self.g.check_client().await.check(request).await;
        answer(
            &response
                .expect("a decision is never a gRPC error")
                .into_inner(),
        )
    }
}

pub(super) fn assert_subject(a: &Answer, subject: &str, case: &str) {
    assert_eq!((a.code, a.http_status), (0, 200), "{case}: {a:?}");
    assert_permit(a);
    assert_eq!(
        a.headers.get("x-gatehouse-subject").map(String::as_str),
        Some(subject),
        "{case}: {a:?}"
    );
}

fn assert_invalid_request(a: &Answer, reason: &str, case: &str) {
    assert_eq!((a.code, a.http_status), (3, 400), "{case}: {a:?}");
    assert_deny(a, 400);
    assert!(
        a.www_authenticate().contains("error=\"invalid_request\""),
        "{case}: {a:?}"
    );
    assert_eq!(a.reason(), reason, "{case}");
}

fn assert_forbidden(a: &Answer, reason: &str, case: &str) {
    assert_eq!((a.code, a.http_status), (7, 403), "{case}: {a:?}");
    assert_deny(a, 403);
    assert!(
        a.www_authenticate()
            .contains("error=\"insufficient_scope\""),
        "{case}: {a:?}"
    );
    assert_eq!(a.reason(), reason, "{case}");
}

#[tokio::test]
async fn non_canonical_targets_are_refused_with_400_never_normalised() {
    let s = Alice::start().await;
    assert_subject(&s.as_alice("GET", INVOICE, &[]).await, "alice", "control");
    assert_subject(
        &s.as_alice("GET", "/v1/invoices/inv-1001?x=1&y=%2F..%2F", &[])
            .await,
        "alice",
        "query stripped",
    );
    let targets = [
        "/v1/invoices/inv-1001/../inv-9999",
        "/v1/invoices/inv-9999/../inv-1001",
        "/v1/invoices/inv-1001/%2e%2e/inv-9999",
        "/v1/invoices/inv-1001/%2E%2E/inv-9999",
        "/v1/invoices/inv-1001%2F..%2Finv-9999",
        "/v1/invoices%2Finv-1001",
        "/v1/invoices%2finv-1001",
        "//v1/invoices/inv-1001",
        "//evil/v1/invoices/inv-1001",
        "/v1/invoices/./inv-1001",
        "/v1//invoices/inv-1001",
        "/v1/invoices/inv-1001\\..\\inv-9999",
        "/v1/invoices/inv-1001%5C..%5Cinv-9999",
        "/v1/invoices/inv-1001%00",
        "/v1/invoices/inv-1001%2500",
        "/v1/invoices/..;/admin/users",
        "/v1/invoices/inv-1001;x=1",
        "/v1/invoices/inv-1001#frag",
        "/v1/invoices/inv-1001\0",
        "/v1/invoices/%69nv-1001",
        "/v1/invoices/inv-1001/.",
        "/v1/invoices/caf\u{e9}",
        "/v1/invoices/a b",
        "http://evil/v1/invoices/inv-1001",
        "*",
        "",
    ];
    for target in targets {
        let a = s.as_alice("GET", target, &[]).await;
        assert_invalid_request(&a, "non_canonical_path", &format!("{target:?}"));
    }
}

#[tokio::test]
async fn path_literals_are_case_sensitive_and_trailing_slash_is_non_canonical() {
    let s = Alice::start().await;
    for target in [
        "/V1/invoices/inv-1001",
        "/v1/Invoices/inv-1001",
        "/V1/INVOICES/INV-1001",
    ] {
        let a = s.as_alice("GET", target, &[]).await;
        assert_forbidden(&a, "no_matching_resource", target);
    }
    let a = s.as_alice("GET", "/v1/invoices/inv-1001/", &[]).await;
    assert_invalid_request(&a, "non_canonical_path", "trailing slash");
}

#[tokio::test]
async fn action_comes_from_the_real_method_and_override_headers_are_ignored() {
    let s = Alice::start().await;
    assert_subject(&s.as_alice("GET", INVOICE, &[]).await, "alice", "GET");
    assert_forbidden(
        &s.as_alice("POST", INVOICE, &[]).await,
        "not_granted",
        "POST",
    );
    for name in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        for method in ["POST", "DELETE", "PUT"] {
            let a = s.as_alice(method, INVOICE, &[(name, "GET")]).await;
            assert_forbidden(&a, "not_granted", &format!("{method} with {name}: GET"));
        }
    }
}

#[tokio::test]
async fn unmapped_or_non_upper_case_methods_are_forbidden_and_head_reads() {
    let s = Alice::start().await;
    for method in ["get", "Get", "PROPFIND", "TRACE", "CONNECT", "OPTIONS", ""] {
        let a = s.as_alice(method, INVOICE, &[]).await;
        assert_forbidden(&a, "method_not_mapped", &format!("method {method:?}"));
    }
    assert_subject(&s.as_alice("HEAD", INVOICE, &[]).await, "alice", "HEAD");
}

#[tokio::test]
async fn options_preflight_without_credentials_gets_a_plain_challenge() {
    let s = Alice::start().await;
    let headers = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "authorization"),
    ];
    let a = s.check("OPTIONS", INVOICE, &headers).await;
    assert_eq!((a.code, a.http_status), (16, 401), "{a:?}");
    assert_deny(&a, 401);
    assert_eq!(a.www_authenticate(), "Bearer realm=\"gatehouse\"");
    assert_eq!(a.reason(), "missing_credentials");
    assert_eq!(a.body["authenticated"], false);
}

#[tokio::test]
async fn comma_joined_credentials_are_refused_as_ambiguous() {
    let s = Alice::start().await;
    let key = s.g.signing_key();
    let attacker = gatehouse::keys::SigningKey::generate().unwrap();
    let claims = forge::with(&forge::payload(&s.token), "sub", Some(json!("acct-0001")));
    let foreign = forge::rs256(&attacker, &forge::access_header(&key), &claims);
    let t = &s.token;
    let cases = [
        (
            "Basic then Bearer",
            format!("Basic dXNlcjpwdw==,Bearer {t}"),
        ),
        (
            "Bearer then Basic",
            format!("Bearer {t},Basic dXNlcjpwdw=="),
        ),
        ("valid then forged", format!("Bearer {t},Bearer {foreign}")),
        ("forged then valid", format!("Bearer {foreign},Bearer {t}")),
        ("same token twice", format!("Bearer {t}, Bearer {t}")),
    ];
    for (case, value) in cases {
        let a = s.check("GET", INVOICE, &[("authorization", &value)]).await;
        assert_invalid_request(&a, "multiple_credentials", case);
    }
}

#[tokio::test]
async fn only_the_authorization_header_is_read() {
    let s = Alice::start().await;
    let auditor =
        s.g.user_token("invoices-web", "bulk-auditor", AUDITOR_PASSWORD)
            .await;
    let other = format!("Bearer {}", auditor["access_token"].as_str().unwrap());
    let a = s
        .as_alice(
            "GET",
            INVOICE,
            &[
                ("x-authorization", &other),
                ("x-forwarded-user", "bulk-auditor"),
            ],
        )
        .await;
    assert_subject(&a, "alice", "x-authorization ignored");
    // And with only the extra header there is no credential at all.
    let a = s
        .check("GET", INVOICE, &[("x-authorization", &other)])
        .await;
    assert_deny(&a, 401);
    assert_eq!(a.www_authenticate(), "Bearer realm=\"gatehouse\"");
}

/// A `GET INVOICE` request carrying `entries` in `header_map` (Envoy's `encode_raw_headers`).
fn raw_headers_request(entries: &[(&str, &str)], raw: bool) -> CheckRequest {
    let mut request = check_request("GET", INVOICE, &[], &INVOICES);
    let headers = entries
        .iter()
        .map(|(key, value)| HeaderValue {
            key: (*key).to_owned(),
            value: if raw {
                String::new()
            } else {
                (*value).to_owned()
            },
            raw_value: if raw {
                value.as_bytes().to_vec()
            } else {
                Vec::new()
            },
        })
        .collect();
    let attributes = request.attributes.as_mut().unwrap();
    let http = attributes.request.as_mut().unwrap().http.as_mut().unwrap();
    http.header_map = Some(HeaderMap { headers });
    request
}

#[tokio::test]
async fn two_authorization_lines_in_raw_header_map_are_refused() {
    let s = Alice::start().await;
    let auditor =
        s.g.user_token("invoices-web", "bulk-auditor", AUDITOR_PASSWORD)
            .await;
    let other = format!("Bearer {}", auditor["access_token"].as_str().unwrap());
    for raw in [true, false] {
        // Control: one line is read from header_map and permitted.
        let one = raw_headers_request(&[("authorization", &s.auth), ("host", "api")], raw);
        assert_subject(&s.send(one).await, "alice", &format!("raw={raw} one line"));

        for (case, entries) in [
            ("alice then auditor", [&s.auth, &other]),
            ("auditor then alice", [&other, &s.auth]),
            ("alice twice", [&s.auth, &s.auth]),
        ] {
            let request = raw_headers_request(
                &[
                    ("authorization", entries[0]),
                    ("host", "api"),
                    ("authorization", entries[1]),
                ],
                raw,
            );
            let a = s.send(request).await;
            assert_invalid_request(&a, "multiple_credentials", &format!("raw={raw} {case}"));
        }
    }
}

#[tokio::test]
async fn access_token_in_the_url_or_body_is_not_a_credential() {
    let s = Alice::start().await;
    let t = &s.token;
    for target in [
        format!("{INVOICE}?access_token={t}"),
        format!("{INVOICE}?token={t}"),
        format!("{INVOICE}?x=1&access_token={t}"),
    ] {
        let a = s.check("GET", &target, &[]).await;
        assert_eq!((a.code, a.http_status), (16, 401), "{a:?}");
        assert_deny(&a, 401);
        assert_eq!(a.www_authenticate(), "Bearer realm=\"gatehouse\"");
        assert_eq!(a.reason(), "missing_credentials");
        assert!(!a.body.to_string().contains(t.as_str()));
    }

    let mut request = check_request(
        "POST",
        INVOICE,
        &[("content-type", "application/x-www-form-urlencoded")],
        &INVOICES,
    );
    let attributes = request.attributes.as_mut().unwrap();
    let http = attributes.request.as_mut().unwrap().http.as_mut().unwrap();
    http.body = format!("access_token={t}");
    let a = s.send(request).await;
    assert_deny(&a, 401);
    assert_eq!(a.www_authenticate(), "Bearer realm=\"gatehouse\"");
}
