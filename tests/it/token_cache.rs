//! The verified-token cache (`src/server/token_cache.rs`) saves the RSA verification of a
//! token seen before, and nothing else: a cached token still expires on time and still goes
//! stale the moment its subject's permissions change.

use crate::support::{
    ALICE_PASSWORD, TestGatehouse, answer, assert_deny, assert_permit, example_policy,
};

const INVOICES: [(&str, &str); 1] = [("resource_type", "invoices")];

async fn get_invoice(g: &TestGatehouse, token: &str) -> crate::support::Answer {
    let auth = format!("Bearer {token}");
    answer(
        &g.check(
            "GET",
            "/v1/invoices/inv-1",
            &[("authorization", &auth)],
            &INVOICES,
        )
        .await,
    )
}

async fn alice_token(g: &TestGatehouse) -> String {
    let body = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn cached_token_is_never_served_past_its_expiry() {
    let g = TestGatehouse::start(&example_policy()).await;
    let token = alice_token(&g).await;
    assert_permit(&get_invoice(&g, &token).await);
    assert_permit(&get_invoice(&g, &token).await);
    assert!(
        !g.running.gatehouse.token_cache.is_empty(),
        "the token was cached"
    );

    // Past exp + leeway (600 s lifetime, 60 s leeway): refused as expired, cache or not.
    g.clock.advance(600 + 60);
    let a = get_invoice(&g, &token).await;
    assert_deny(&a, 401);
    assert_eq!(a.reason(), "token_expired");
}

#[tokio::test]
async fn cached_token_still_goes_stale_when_permissions_change() {
    let g = TestGatehouse::start(&example_policy()).await;
    let token = alice_token(&g).await;
    assert_permit(&get_invoice(&g, &token).await);
    assert_permit(&get_invoice(&g, &token).await);
    assert!(
        !g.running.gatehouse.token_cache.is_empty(),
        "the token was cached"
    );

    let revoked = example_policy().replace("  - { role: invoice-reader, account: alice }\n", "");
    g.reapply(&revoked).await;
    let a = get_invoice(&g, &token).await;
    assert_deny(&a, 401);
    assert_eq!(a.reason(), "permissions_changed");

    // Restoring the grants bumps the version again: the old token stays stale.
    g.reapply(&example_policy()).await;
    assert_eq!(
        get_invoice(&g, &token).await.reason(),
        "permissions_changed"
    );
}
