//! Refresh tokens (B10, B27, B28): who gets them, rotation, replay and family revocation,
//! binding to the client, concurrent use, lifetimes, fresh grants on every refresh, and the
//! security events that end a family (in `lifetimes`).

mod lifetimes;

use std::sync::Arc;

use serde_json::Value;

use crate::support::{
    ALICE_CANARY, Answer, Backend, TestGatehouse, answer, assert_deny, assert_permit, oauth_policy,
    on_both_backends,
};

/// The document every fixture role covers.
const DOCUMENT: &str = "/v1/documents/doc-42";

/// The fixture on `backend`, with `adjust` applied to the configuration.
pub(crate) async fn fixture_with(
    backend: Backend,
    adjust: impl FnOnce(&mut gatehouse::config::Config),
) -> TestGatehouse {
    TestGatehouse::start_on_with(backend, &oauth_policy(), adjust).await
}

/// The confidential client `name`'s Basic credentials.
pub(crate) fn basic<'a>(g: &'a TestGatehouse, name: &str) -> (&'a str, &'a str) {
    let client = &g.clients[name];
    (&client.id, client.secret.as_deref().unwrap())
}

/// A password grant for alice through the confidential client `client`: access and refresh
/// token.
pub(crate) async fn alice_through(g: &TestGatehouse, client: &str) -> Value {
    let (status, body) = g
        .token_request(
            Some(basic(g, client)),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", ALICE_CANARY),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `grant_type=refresh_token` for `token`, authenticated as the confidential client `client`.
pub(crate) async fn refresh(g: &TestGatehouse, client: &str, token: &str) -> (u16, Value) {
    refresh_with(g, client, token, &[]).await
}

/// Like [`refresh`], with more parameters.
pub(crate) async fn refresh_with(
    g: &TestGatehouse,
    client: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    form.extend_from_slice(extra);
    g.token_request(Some(basic(g, client)), &form).await
}

/// `method DOCUMENT` through the check path with `Bearer token`.
pub(crate) async fn check_document(g: &TestGatehouse, method: &str, token: &str) -> Answer {
    let bearer = format!("Bearer {token}");
    answer(
        &g.check(
            method,
            DOCUMENT,
            &[("authorization", &bearer)],
            &[("resource_type", "documents")],
        )
        .await,
    )
}

pub(crate) fn str_of<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
}

/// Asserts a 400 `invalid_grant`.
pub(crate) fn assert_invalid_grant((status, body): &(u16, Value), case: &str) {
    assert_eq!(
        (*status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{case}: {body}"
    );
}

/// The fixture without alice's only grant (a plain grant change).
pub(crate) fn oauth_policy_without_alices_grant() -> String {
    oauth_policy().replace("  - { role: reader, account: alice }\n", "")
}

#[tokio::test]
async fn b10_access_token_is_no_refresh_token_and_refresh_token_is_no_bearer() {
    let g = fixture_with(Backend::Sqlite, |_| {}).await;
    let alice = alice_through(&g, "svc-reports").await;
    let (access, refresh_token) = (
        str_of(&alice, "access_token"),
        str_of(&alice, "refresh_token"),
    );
    assert_permit(&check_document(&g, "GET", access).await);

    assert_invalid_grant(
        &refresh(&g, "svc-reports", access).await,
        "access token as refresh token",
    );
    let denied = check_document(&g, "GET", refresh_token).await;
    assert_deny(&denied, 401);
    assert!(
        denied
            .www_authenticate()
            .contains("error=\"invalid_token\""),
        "{denied:?}"
    );
    // Neither attempt used the refresh token up.
    let (status, body) = refresh(&g, "svc-reports", refresh_token).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn b27_public_clients_and_client_credentials_get_no_refresh_tokens() {
    let g = fixture_with(Backend::Sqlite, |_| {}).await;
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
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none(), "{body}");

    let reports_rt = alice_through(&g, "svc-reports").await;
    let (status, body) = g
        .token_request(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &spa),
                ("refresh_token", str_of(&reports_rt, "refresh_token")),
            ],
        )
        .await;
    assert_eq!((status, str_of(&body, "error")), (401, "invalid_client"));

    let (status, body) = g
        .token_request(
            None,
            &[("grant_type", "client_credentials"), ("client_id", &spa)],
        )
        .await;
    assert_eq!(
        (status, str_of(&body, "error")),
        (400, "unauthorized_client")
    );

    let (status, body) = g
        .token_request(
            Some(basic(&g, "svc-reports")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");

    // A missing refresh_token parameter is a malformed request, not a bad grant.
    let (status, body) = g
        .token_request(
            Some(basic(&g, "svc-reports")),
            &[("grant_type", "refresh_token")],
        )
        .await;
    assert_eq!((status, str_of(&body, "error")), (400, "invalid_request"));
}

/// B28 (a)–(e): rotation, replay revoking the family, binding to the client, and client
/// authentication.
async fn b28_rotation_replay_and_binding(backend: Backend) {
    let g = fixture_with(backend, |_| {}).await;
    let rt1 = str_of(&alice_through(&g, "svc-reports").await, "refresh_token").to_owned();
    assert!(rt1.starts_with("ghr_") && rt1.len() >= 47, "{rt1}");

    // (a) rotation: a new pair, and the new access token works.
    let (status, second) = refresh(&g, "svc-reports", &rt1).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = str_of(&second, "refresh_token").to_owned();
    assert_ne!(rt2, rt1);
    assert_eq!(second["token_type"], "Bearer");
    assert_permit(&check_document(&g, "GET", str_of(&second, "access_token")).await);

    // (b) replay of the used token: refused, and the family revoked …
    assert_invalid_grant(&refresh(&g, "svc-reports", &rt1).await, "replay of RT1");
    // (c) … so the token rotated to is dead too, as is the access token issued with it.
    assert_invalid_grant(&refresh(&g, "svc-reports", &rt2).await, "RT2 after replay");
    g.running.gatehouse.reload().await.unwrap();
    let denied = check_document(&g, "GET", str_of(&second, "access_token")).await;
    assert_deny(&denied, 401);
    assert_eq!(denied.reason(), "token_revoked");

    // (d) another confidential client presenting svc-reports' token: refused, not burned.
    let fresh = str_of(&alice_through(&g, "svc-reports").await, "refresh_token").to_owned();
    assert_invalid_grant(&refresh(&g, "svc-audit", &fresh).await, "svc-audit with RT");
    // (e) no client authentication at all.
    let (status, body) = g
        .token_request(
            None,
            &[("grant_type", "refresh_token"), ("refresh_token", &fresh)],
        )
        .await;
    assert_eq!((status, str_of(&body, "error")), (401, "invalid_client"));
    let (status, body) = refresh(&g, "svc-reports", &fresh).await;
    assert_eq!(status, 200, "the owner's token was burned: {body}");
}
on_both_backends!(b28_rotation_replay_and_binding);

/// B28 (f): eight refreshes of one fresh token at once. Exactly one wins; the server cannot
/// tell the losers from a thief replaying the token, so the family is revoked and the
/// winner's new tokens die with it.
async fn b28_concurrent_refreshes_yield_exactly_one_success(backend: Backend) {
    let g = Arc::new(fixture_with(backend, |_| {}).await);
    let rt = str_of(&alice_through(&g, "svc-reports").await, "refresh_token").to_owned();

    let start = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (g, rt, start) = (g.clone(), rt.clone(), start.clone());
        tasks.spawn(async move {
            start.wait().await;
            refresh(&g, "svc-reports", &rt).await
        });
    }
    let mut winners = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        match status {
            200 => winners.push(body),
            _ => assert_invalid_grant(&(status, body), "a concurrent loser"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");

    let winner = &winners[0];
    assert_invalid_grant(
        &refresh(&g, "svc-reports", str_of(winner, "refresh_token")).await,
        "the winner's token after the race",
    );
    g.running.gatehouse.reload().await.unwrap();
    let denied = check_document(&g, "GET", str_of(winner, "access_token")).await;
    assert_eq!(denied.reason(), "token_revoked", "{denied:?}");
}
on_both_backends!(b28_concurrent_refreshes_yield_exactly_one_success);
