//! `POST /revoke` (RFC 7009): a client revokes its own tokens. A refresh token takes its
//! family and the access tokens issued with it along; an access token is denied on the check
//! path of every gatehouse on the store until it expires, also after a restart.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::refresh::{
    alice_through, assert_invalid_grant, basic, check_document, fixture_with, refresh, str_of,
};
use crate::support::{
    ALICE_CANARY, Answer, Backend, TestGatehouse, assert_deny, assert_permit, on_both_backends,
};

/// `POST path` with a form body and optional Basic credentials: status, headers, JSON body.
pub(crate) async fn post_form(
    g: &TestGatehouse,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, HeaderMap, Value) {
    let mut request = g.http.post(g.url(path)).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// `/revoke` as the confidential client `client`; asserts the RFC 7009 answer (200, no-store).
pub(crate) async fn revoke(g: &TestGatehouse, client: &str, form: &[(&str, &str)]) {
    let (status, headers, body) = post_form(g, "/revoke", Some(basic(g, client)), form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
}

/// Asserts the check path's answer to a revoked token.
pub(crate) fn assert_revoked(a: &Answer) {
    assert_deny(a, 401);
    assert_eq!(a.reason(), "token_revoked", "{a:?}");
    assert!(
        a.www_authenticate().contains("error=\"invalid_token\""),
        "{a:?}"
    );
}

/// Asks `g` about `token` until it is refused as revoked, within `deadline`.
async fn until_revoked(g: &TestGatehouse, token: &str, deadline: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let a = check_document(g, "GET", token).await;
        if a.http_status == 401 {
            assert_revoked(&a);
            return started.elapsed();
        }
        assert_permit(&a);
        assert!(
            started.elapsed() < deadline,
            "not revoked within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn revoking_a_refresh_token_ends_its_family_and_its_access_tokens(backend: Backend) {
    let g = fixture_with(backend, |_| {}).await;
    let first = alice_through(&g, "svc-reports").await;
    let (status, second) = refresh(&g, "svc-reports", str_of(&first, "refresh_token")).await;
    assert_eq!(status, 200, "{second}");

    revoke(
        &g,
        "svc-reports",
        &[
            ("token", str_of(&second, "refresh_token")),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    assert_invalid_grant(
        &refresh(&g, "svc-reports", str_of(&second, "refresh_token")).await,
        "revoked refresh token",
    );
    g.running.gatehouse.reload().await.unwrap();
    for access in [&first, &second] {
        assert_revoked(&check_document(&g, "GET", str_of(access, "access_token")).await);
    }
}
on_both_backends!(revoking_a_refresh_token_ends_its_family_and_its_access_tokens);

/// The token is verified (and cached) before the revocation, so the deny after it is decided
/// on a verified-token cache hit. On Postgres a replica that polls only every 10 s learns of
/// the revocation by notification, within a second.
async fn revoked_access_token_is_denied_on_every_replica(backend: Backend) {
    let g = fixture_with(backend, |_| {}).await;
    let replica = match backend {
        Backend::Postgres => Some(
            g.replica(|config| config.store.reload_interval_ms = 10_000)
                .await,
        ),
        Backend::Sqlite => None,
    };
    let alice = alice_through(&g, "svc-reports").await;
    let access = str_of(&alice, "access_token");
    assert_permit(&check_document(&g, "GET", access).await);
    if let Some(replica) = &replica {
        assert_permit(&check_document(replica, "GET", access).await);
    }

    revoke(
        &g,
        "svc-reports",
        &[("token", access), ("token_type_hint", "access_token")],
    )
    .await;
    until_revoked(&g, access, Duration::from_secs(2)).await;
    if let Some(replica) = &replica {
        let took = until_revoked(replica, access, Duration::from_secs(1)).await;
        eprintln!("revocation honoured by a replica after {took:?}");
    }

    // Revoking an access token leaves its refresh token alone.
    let (status, body) = refresh(&g, "svc-reports", str_of(&alice, "refresh_token")).await;
    assert_eq!(status, 200, "{body}");
    assert_permit(&check_document(&g, "GET", str_of(&body, "access_token")).await);
}
on_both_backends!(revoked_access_token_is_denied_on_every_replica);

#[tokio::test]
async fn revoking_another_clients_token_changes_nothing() {
    let g = fixture_with(Backend::Sqlite, |_| {}).await;
    let alice = alice_through(&g, "svc-reports").await;
    let (access, refresh_token) = (
        str_of(&alice, "access_token"),
        str_of(&alice, "refresh_token"),
    );

    for token in [access, refresh_token] {
        revoke(&g, "svc-audit", &[("token", token)]).await;
    }
    let spa = g.clients["spa-web"].id.clone();
    let (status, _, _) = post_form(
        &g,
        "/revoke",
        None,
        &[("client_id", &spa), ("token", access)],
    )
    .await;
    assert_eq!(status, 200);

    g.running.gatehouse.reload().await.unwrap();
    assert_permit(&check_document(&g, "GET", access).await);
    let (status, body) = refresh(&g, "svc-reports", refresh_token).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn revocation_requests_are_read_like_token_requests() {
    let g = fixture_with(Backend::Sqlite, |_| {}).await;
    let reports = basic(&g, "svc-reports");
    let spa = g.clients["spa-web"].id.clone();
    let alice = alice_through(&g, "svc-reports").await;
    let access = str_of(&alice, "access_token");

    // Nothing to revoke is still 200 (RFC 7009 §2.2).
    for token in ["ghr_unknown", "not-a-token", "eyJhbGciOiJub25lIn0.e30."] {
        revoke(&g, "svc-reports", &[("token", token)]).await;
    }

    let refused = [
        (
            Some(reports),
            vec![("token_type_hint", "access_token")],
            400,
            "invalid_request",
        ),
        (
            Some(reports),
            vec![("token", access), ("token", access)],
            400,
            "invalid_request",
        ),
        (
            Some(reports),
            vec![("token", access), ("client_secret", reports.1)],
            400,
            "invalid_request",
        ),
        (None, vec![("token", access)], 401, "invalid_client"),
        (
            Some((reports.0, "wrong")),
            vec![("token", access)],
            401,
            "invalid_client",
        ),
        (
            None,
            vec![("client_id", reports.0), ("token", access)],
            401,
            "invalid_client",
        ),
    ];
    for (credentials, form, status, error) in refused {
        let (got, headers, body) = post_form(&g, "/revoke", credentials, &form).await;
        assert_eq!((got, str_of(&body, "error")), (status, error), "{form:?}");
        assert_eq!(headers["cache-control"], "no-store");
        if status == 401 {
            assert_eq!(headers["www-authenticate"], "Basic realm=\"gatehouse\"");
        }
    }
    let response = g
        .http
        .post(g.url("/revoke?token=x"))
        .basic_auth(reports.0, Some(reports.1))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = g
        .http
        .post(g.url("/revoke"))
        .basic_auth(reports.0, Some(reports.1))
        .json(&serde_json::json!({"token": access}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = g.http.get(g.url("/revoke")).send().await.unwrap();
    assert_eq!(response.status(), 405);

    // An unknown hint is ignored (RFC 7009 §2.1): the token is revoked all the same.
    revoke(
        &g,
        "svc-reports",
        &[("token", access), ("token_type_hint", "id_token")],
    )
    .await;
    g.running.gatehouse.reload().await.unwrap();
    assert_revoked(&check_document(&g, "GET", access).await);

    // A public client revokes its own access token, naming itself in the body.
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
    let spa_access = str_of(&body, "access_token");
    let (status, _, _) = post_form(
        &g,
        "/revoke",
        None,
        &[("client_id", &spa), ("token", spa_access)],
    )
    .await;
    assert_eq!(status, 200);
    g.running.gatehouse.reload().await.unwrap();
    assert_revoked(&check_document(&g, "GET", spa_access).await);
}

async fn revocations_survive_a_restart(backend: Backend) {
    let g = fixture_with(backend, |_| {}).await;
    let alice = alice_through(&g, "svc-reports").await;
    let kept = alice_through(&g, "svc-reports").await;
    let access = str_of(&kept, "access_token");
    revoke(&g, "svc-reports", &[("token", access)]).await;
    revoke(
        &g,
        "svc-reports",
        &[("token", str_of(&alice, "refresh_token"))],
    )
    .await;

    // Stop this gatehouse and start another on the same store.
    let g = g.restart().await;

    assert_revoked(&check_document(&g, "GET", access).await);
    assert_revoked(&check_document(&g, "GET", str_of(&alice, "access_token")).await);
    assert_invalid_grant(
        &refresh(&g, "svc-reports", str_of(&alice, "refresh_token")).await,
        "revoked family after a restart",
    );
    let (status, body) = refresh(&g, "svc-reports", str_of(&kept, "refresh_token")).await;
    assert_eq!(status, 200, "{body}");
}
on_both_backends!(revocations_survive_a_restart);

#[tokio::test]
async fn a_revoked_token_no_longer_opens_the_admin_api() {
    let g = TestGatehouse::start_with(&crate::admin_api::policy_with_admin(), |config| {
        config.admin.enabled = true
    })
    .await;
    let token = g.service_token("gatehouse-admin").await;
    let clients = |token: String| {
        let request = g.http.get(g.url("/admin/clients")).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(clients(token.clone()).await.status(), 200);

    revoke(&g, "gatehouse-admin", &[("token", &token)]).await;
    g.running.gatehouse.reload().await.unwrap();
    let response = clients(token).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}
