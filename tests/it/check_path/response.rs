//! The shape of `CheckResponse` (B32): deny challenges and bodies, permit header mutations,
//! and the `reauth/token_expiring` obligation.

use envoy_types::ext_authz::v3::pb::{
    CheckResponse, HeaderAppendAction, HeaderValueOption, HttpResponse, OkHttpResponse,
};
use gatehouse::grpc::DECISION_HEADERS;
use serde_json::{Value, json};

use super::{Alice, INVOICE, INVOICES, assert_subject};
use crate::support::{answer, assert_deny, forge};

fn ok_response(response: &CheckResponse) -> &OkHttpResponse {
    match response.http_response.as_ref() {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("expected a permit, got {other:?}"),
    }
}

fn denied_body(response: &CheckResponse) -> &str {
    match response.http_response.as_ref() {
        Some(HttpResponse::DeniedResponse(denied)) => &denied.body,
        other => panic!("expected a deny, got {other:?}"),
    }
}

/// Every option carrying `name`.
fn options<'a>(set: &'a [HeaderValueOption], name: &str) -> Vec<&'a HeaderValueOption> {
    set.iter()
        .filter(|o| o.header.as_ref().is_some_and(|h| h.key == name))
        .collect()
}

// The legacy `append` field is deprecated, but Envoy still honours it: it must not be true.
#[allow(deprecated)]
fn assert_overwrites(option: &HeaderValueOption) {
    assert_eq!(
        option.append_action,
        HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        "{option:?}"
    );
    assert!(
        option.append.as_ref().is_none_or(|append| !append.value),
        "{option:?}"
    );
}

/// A deny body is the decision object and nothing that came with the request.
fn assert_clean_body(body: &str, token: &str, case: &str) {
    let parsed: Value = serde_json::from_str(body).unwrap();
    let mut keys: Vec<&str> = parsed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "advice",
            "authenticated",
            "decision",
            "obligations",
            "policyId",
            "reason"
        ],
        "{case}"
    );
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(
            !body.contains(part),
            "{case}: body holds token text: {body}"
        );
    }
    for secret in ["eyJ", "alice", "SELECT", "panicked", ".rs:"] {
        assert!(
            !body.contains(secret),
            "{case}: body holds {secret:?}: {body}"
        );
    }
}

#[tokio::test]
async fn deny_responses_carry_the_contract_challenges_and_clean_bodies() {
    let s = Alice::start().await;
    let now = gatehouse::clock::Clock::now(&*s.g.clock);

    // (a) No credentials.
    let response = s.g.check("GET", INVOICE, &[], &INVOICES).await;
    let a = answer(&response);
    assert_deny(&a, 401);
    assert_eq!(a.www_authenticate(), "Bearer realm=\"gatehouse\"");
    assert_eq!(a.body["authenticated"], false);
    assert_eq!(a.headers.get("content-type").unwrap(), "application/json");
    assert_eq!(a.headers.get("cache-control").unwrap(), "no-store");
    assert_clean_body(denied_body(&response), &s.token, "no credentials");

    // (b) An expired token.
    let key = s.g.signing_key();
    let claims = forge::payload(&s.token);
    let claims = forge::with(&claims, "iat", Some(json!(now - 4000)));
    let claims = forge::with(&claims, "nbf", Some(json!(now - 4000)));
    let claims = forge::with(&claims, "exp", Some(json!(now - 3600)));
    let expired = forge::rs256(&key, &forge::access_header(&key), &claims);
    let auth = format!("Bearer {expired}");
    let response =
        s.g.check("GET", INVOICE, &[("authorization", &auth)], &INVOICES)
            .await;
    let a = answer(&response);
    assert_deny(&a, 401);
    assert_eq!(
        a.www_authenticate(),
        "Bearer realm=\"gatehouse\", error=\"invalid_token\""
    );
    assert_eq!(a.reason(), "token_expired");
    assert_clean_body(denied_body(&response), &expired, "expired");

    // (c) Valid token, action not granted.
    let auth = s.auth.clone();
    let response =
        s.g.check("DELETE", INVOICE, &[("authorization", &auth)], &INVOICES)
            .await;
    let a = answer(&response);
    assert_deny(&a, 403);
    assert_eq!(
        a.www_authenticate(),
        "Bearer realm=\"gatehouse\", error=\"insufficient_scope\""
    );
    assert_eq!(a.body["authenticated"], true);
    assert_clean_body(denied_body(&response), &s.token, "forbidden");
}

#[tokio::test]
async fn permit_overwrites_identity_headers_and_removes_unset_decision_headers() {
    let s = Alice::start().await;
    let spoofed = [
        ("authorization", s.auth.as_str()),
        ("x-gatehouse-subject", "acct-0001"),
        ("x-gatehouse-client-id", "forged"),
        ("x-gatehouse-obligations", "forged"),
        ("x-gatehouse-advice", "forged"),
    ];
    let response = s.g.check("GET", INVOICE, &spoofed, &INVOICES).await;
    assert_subject(&answer(&response), "alice", "spoofed headers");
    let ok = ok_response(&response);

    let subject = options(&ok.headers, "x-gatehouse-subject");
    assert_eq!(subject.len(), 1, "{ok:?}");
    assert_eq!(subject[0].header.as_ref().unwrap().value, "alice");
    for option in &ok.headers {
        assert_overwrites(option);
    }
    let client_id = options(&ok.headers, "x-gatehouse-client-id");
    assert_eq!(
        client_id[0].header.as_ref().unwrap().value,
        s.g.clients["invoices-web"].id
    );

    for name in ["x-gatehouse-obligations", "x-gatehouse-advice"] {
        assert!(
            ok.headers_to_remove.iter().any(|r| r == name),
            "{name}: {ok:?}"
        );
    }
    // Every decision header is either set (overwriting) or removed, never both: Envoy
    // removes after setting, so a listed name would drop gatehouse's own value.
    for name in DECISION_HEADERS {
        let set = !options(&ok.headers, name).is_empty();
        let removed = ok.headers_to_remove.iter().any(|r| r == name);
        assert!(set ^ removed, "{name}: set={set} removed={removed}");
    }
    assert!(ok.response_headers_to_add.is_empty(), "{ok:?}");
}

fn with_expiry(s: &Alice, now: i64, exp: i64) -> String {
    let key = s.g.signing_key();
    let claims = forge::payload(&s.token);
    let claims = forge::with(&claims, "iat", Some(json!(now - 500)));
    let claims = forge::with(&claims, "nbf", Some(json!(now - 500)));
    let claims = forge::with(&claims, "exp", Some(json!(exp)));
    forge::rs256(&key, &forge::access_header(&key), &claims)
}

#[tokio::test]
async fn permit_close_to_expiry_carries_the_token_expiring_obligation() {
    let s = Alice::start().await;
    assert_eq!(s.g.config().check.expiring_within_seconds, 60);
    let now = gatehouse::clock::Clock::now(&*s.g.clock);
    let expected = json!([{"type": "reauth", "reason": "token_expiring"}]);

    for exp in [now + 30, now + 60] {
        let auth = format!("Bearer {}", with_expiry(&s, now, exp));
        let response =
            s.g.check("GET", INVOICE, &[("authorization", &auth)], &INVOICES)
                .await;
        let a = answer(&response);
        let case = format!("exp = now + {}", exp - now);
        assert_subject(&a, "alice", &case);
        let to_client: Value =
            serde_json::from_str(&a.response_headers["x-gatehouse-obligations"]).unwrap();
        assert_eq!(to_client, expected, "{case}");
        let upstream: Value = serde_json::from_str(&a.headers["x-gatehouse-obligations"]).unwrap();
        assert_eq!(upstream, expected, "{case}");
        assert!(
            !a.removed.iter().any(|r| r == "x-gatehouse-obligations"),
            "{case}"
        );
        assert!(
            a.removed.iter().any(|r| r == "x-gatehouse-advice"),
            "{case}"
        );

        let ok = ok_response(&response);
        let added = options(&ok.response_headers_to_add, "x-gatehouse-obligations");
        assert_eq!(added.len(), 1);
        assert_overwrites(added[0]);
    }

    // Beyond the threshold there is no obligation, and the header is removed upstream.
    let auth = format!("Bearer {}", with_expiry(&s, now, now + 61));
    let a = answer(
        &s.g.check("GET", INVOICE, &[("authorization", &auth)], &INVOICES)
            .await,
    );
    assert_subject(&a, "alice", "exp = now + 61");
    assert!(a.response_headers.is_empty(), "{a:?}");
    assert!(!a.headers.contains_key("x-gatehouse-obligations"), "{a:?}");
    assert!(
        a.removed.iter().any(|r| r == "x-gatehouse-obligations"),
        "{a:?}"
    );
}

/// The realm is copied into every challenge: a value that could end its quoted string or start
/// another header line is a configuration error, never a broken `WWW-Authenticate`.
#[test]
fn realm_that_could_break_the_challenge_is_refused() {
    use gatehouse::config::{Config, ConfigError};

    for realm in [
        "",
        "a\"b",
        "a\\b",
        "api\r\nx-admin: true",
        "api\n",
        "api\u{0}",
        "api\u{7f}",
        "caf\u{e9}",
    ] {
        let mut config = Config::default();
        config.check.realm = realm.into();
        match config.validate() {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "check.realm", "{realm:?}"),
            other => panic!("realm {realm:?} accepted: {other:?}"),
        }
    }
    let mut config = Config::default();
    config.check.realm = "orders api (v1)".into();
    assert!(config.validate().is_ok());
}
