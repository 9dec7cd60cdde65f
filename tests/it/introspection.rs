//! `POST /introspect` (RFC 7662): a client learns about its own active tokens, and nothing but
//! `{"active":false}` about anything else — expired, revoked, stale, used, unknown, or another
//! client's.

use serde_json::{Value, json};

use crate::refresh::{
    alice_through, basic, fixture_with, oauth_policy_without_alices_grant, refresh, str_of,
};
use crate::revocation::{post_form, revoke};
use crate::support::{ALICE_CANARY, Backend, TestGatehouse, forge, on_both_backends};

/// `/introspect` of `token` as the confidential client `client`; asserts 200 and no-store.
pub(crate) async fn introspect(g: &TestGatehouse, client: &str, token: &str) -> Value {
    let (status, headers, body) = post_form(
        g,
        "/introspect",
        Some(basic(g, client)),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    body
}

fn assert_inactive(body: &Value, case: &str) {
    assert_eq!(body, &json!({"active": false}), "{case}");
}

#[tokio::test]
async fn introspection_describes_the_callers_own_active_tokens() {
    let g = fixture_with(Backend::Sqlite, |_| {}).await;
    let alice = alice_through(&g, "svc-reports").await;
    let access = str_of(&alice, "access_token");
    let claims = forge::payload(access);

    let body = introspect(&g, "svc-reports", access).await;
    let expected = json!({
        "active": true,
        "scope": "documents",
        "client_id": g.clients["svc-reports"].id,
        "sub": "alice",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "nbf": claims["nbf"],
        "iss": "https://auth.test",
        "aud": "invoices-api",
        "jti": claims["jti"],
        "token_type": "Bearer",
    });
    assert_eq!(body, expected);

    let now = gatehouse::clock::Clock::now(&*g.clock);
    let body = introspect(&g, "svc-reports", str_of(&alice, "refresh_token")).await;
    let expected = json!({
        "active": true,
        "scope": "documents",
        "client_id": g.clients["svc-reports"].id,
        "sub": "alice",
        "exp": now + 86_400,
        "token_type": "refresh_token",
    });
    assert_eq!(body, expected);

    // A public client names itself, and learns about its own tokens only.
    let spa = g.clients["spa-web"].id.clone();
    let (status, body) = g
        .token_request(
            None,
            &[
                ("grant_type", "password"),
                ("client_id", &spa),
                ("username", "alice"),
                ("password", ALICE_CANARY),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for (token, active) in [(str_of(&body, "access_token"), true), (access, false)] {
        let (status, _, answer) = post_form(
            &g,
            "/introspect",
            None,
            &[("client_id", &spa), ("token", token)],
        )
        .await;
        assert_eq!((status, answer["active"].as_bool()), (200, Some(active)));
    }
}

async fn introspection_says_only_inactive_for_anything_else(backend: Backend) {
    let g = fixture_with(backend, |_| {}).await;

    for token in ["ghr_unknown", "not-a-token", "eyJhbGciOiJub25lIn0.e30."] {
        assert_inactive(&introspect(&g, "svc-reports", token).await, token);
    }

    // Another client's tokens.
    let alice = alice_through(&g, "svc-reports").await;
    for field in ["access_token", "refresh_token"] {
        let token = str_of(&alice, field);
        assert_inactive(
            &introspect(&g, "svc-audit", token).await,
            "another client's",
        );
        assert_eq!(introspect(&g, "svc-reports", token).await["active"], true);
    }

    // A used refresh token, and a revoked access token.
    let (status, rotated) = refresh(&g, "svc-reports", str_of(&alice, "refresh_token")).await;
    assert_eq!(status, 200, "{rotated}");
    assert_inactive(
        &introspect(&g, "svc-reports", str_of(&alice, "refresh_token")).await,
        "used refresh token",
    );
    let access = str_of(&rotated, "access_token");
    revoke(&g, "svc-reports", &[("token", access)]).await;
    assert_inactive(&introspect(&g, "svc-reports", access).await, "revoked");

    // A stale access token: alice's permissions changed after it was minted.
    let fresh = alice_through(&g, "svc-reports").await;
    let stale = str_of(&fresh, "access_token");
    g.reapply(&oauth_policy_without_alices_grant()).await;
    assert_inactive(&introspect(&g, "svc-reports", stale).await, "stale");

    // Expired: the access token's lifetime passed, then the refresh token's.
    let current = alice_through(&g, "svc-reports").await;
    assert_eq!(
        introspect(&g, "svc-reports", str_of(&current, "access_token")).await["active"],
        true
    );
    g.clock.advance(600);
    assert_inactive(
        &introspect(&g, "svc-reports", str_of(&current, "access_token")).await,
        "expired access token",
    );
    let refresh_token = str_of(&current, "refresh_token");
    assert_eq!(
        introspect(&g, "svc-reports", refresh_token).await["active"],
        true
    );
    g.clock.advance(86_400);
    assert_inactive(
        &introspect(&g, "svc-reports", refresh_token).await,
        "expired refresh token",
    );
}
on_both_backends!(introspection_says_only_inactive_for_anything_else);

#[tokio::test]
async fn introspection_requires_an_authenticated_caller() {
    let g = fixture_with(Backend::Sqlite, |_| {}).await;
    let alice = alice_through(&g, "svc-reports").await;
    let access = str_of(&alice, "access_token");

    let (status, headers, body) = post_form(&g, "/introspect", None, &[("token", access)]).await;
    assert_eq!((status, str_of(&body, "error")), (401, "invalid_client"));
    assert_eq!(headers["www-authenticate"], "Basic realm=\"gatehouse\"");
    let (id, _) = basic(&g, "svc-reports");
    let (status, _, body) =
        post_form(&g, "/introspect", Some((id, "wrong")), &[("token", access)]).await;
    assert_eq!((status, str_of(&body, "error")), (401, "invalid_client"));
    let (status, _, body) = post_form(&g, "/introspect", Some(basic(&g, "svc-reports")), &[]).await;
    assert_eq!((status, str_of(&body, "error")), (400, "invalid_request"));
    let response = g.http.get(g.url("/introspect")).send().await.unwrap();
    assert_eq!(response.status(), 405);
}
