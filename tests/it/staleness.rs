//! Permission changes make older tokens stale at once, and the client is told to re-authenticate.

use std::time::{Duration, Instant};

use crate::support::{
    ALICE_PASSWORD, Backend, TestGatehouse, answer, assert_deny, assert_permit, example_policy,
    on_both_backends,
};

const INVOICES: [(&str, &str); 1] = [("resource_type", "invoices")];

async fn alice_token(g: &TestGatehouse) -> String {
    let body = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
    body["access_token"].as_str().unwrap().to_owned()
}

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

fn assert_stale(a: &crate::support::Answer) {
    assert_deny(a, 401);
    assert!(
        a.www_authenticate().contains("error=\"invalid_token\""),
        "{a:?}"
    );
    assert_eq!(a.reason(), "permissions_changed");
    assert_eq!(
        a.body["obligations"],
        serde_json::json!([{"type": "reauth", "reason": "permissions_changed"}])
    );
}

on_both_backends!(revoked_grant_makes_older_token_stale_and_new_token_reflects_it);
async fn revoked_grant_makes_older_token_stale_and_new_token_reflects_it(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &example_policy()).await;
    let old = alice_token(&g).await;
    assert_permit(&get_invoice(&g, &old).await);

    let revoked = example_policy().replace("  - { role: invoice-reader, account: alice }\n", "");
    let report = g.reapply(&revoked).await;
    assert!(
        report.bumped.iter().any(|s| s.id() == "alice"),
        "{report:?}"
    );
    assert_stale(&get_invoice(&g, &old).await);

    let fresh = alice_token(&g).await;
    let a = get_invoice(&g, &fresh).await;
    assert_deny(&a, 403);
}

on_both_backends!(unrelated_change_leaves_token_valid);
async fn unrelated_change_leaves_token_valid(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &example_policy()).await;
    let token = alice_token(&g).await;
    let changed =
        example_policy().replace("  - { role: ledger-auditor, account: bulk-auditor }\n", "");
    let report = g.reapply(&changed).await;
    assert!(
        report.bumped.iter().all(|s| s.id() != "alice"),
        "{report:?}"
    );
    assert_permit(&get_invoice(&g, &token).await);
}

on_both_backends!(disabling_or_removing_account_and_changing_its_client_make_tokens_stale);
async fn disabling_or_removing_account_and_changing_its_client_make_tokens_stale(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &example_policy()).await;

    let token = alice_token(&g).await;
    let disabled = example_policy().replace(
        "  - username: alice\n",
        "  - username: alice\n    disabled: true\n",
    );
    g.reapply(&disabled).await;
    assert_stale(&get_invoice(&g, &token).await);
    g.reapply(&example_policy()).await;

    // The client's own permissions changed: every account token it holds is stale too.
    let token = alice_token(&g).await;
    let narrowed = example_policy().replace("scopes: [invoices, ledger]", "scopes: [invoices]");
    g.reapply(&narrowed).await;
    assert_stale(&get_invoice(&g, &token).await);

    // A resource's tuple changed under a grant the token lists.
    let token = alice_token(&g).await;
    let moved = narrowed.replace(
        "url: \"/v1/invoices/{id}\"\n    description: Read",
        "url: \"/v2/invoices/{id}\"\n    description: Read",
    );
    assert_ne!(moved, narrowed);
    g.reapply(&moved).await;
    assert_stale(&get_invoice(&g, &token).await);

    // Removed, then re-created identically: tokens from before the removal stay dead.
    let token = alice_token(&g).await;
    let without = moved.replace("  - { role: invoice-reader, account: alice }\n", "");
    let without = without.replace(
        &without[without.find("  - username: alice\n").unwrap()
            ..without.find("  - username: bulk-auditor").unwrap()],
        "",
    );
    g.reapply(&without).await;
    assert_stale(&get_invoice(&g, &token).await);
    g.reapply(&moved).await;
    assert_stale(&get_invoice(&g, &token).await);
}

on_both_backends!(change_applied_by_another_process_is_picked_up_by_the_reload_loop);
async fn change_applied_by_another_process_is_picked_up_by_the_reload_loop(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &example_policy()).await;
    let token = alice_token(&g).await;
    assert_permit(&get_invoice(&g, &token).await);

    // A second connection, as `gatehouse apply` run elsewhere would open.
    let other = gatehouse::server::open_store(g.config()).await.unwrap();
    let revoked = example_policy().replace("  - { role: invoice-reader, account: alice }\n", "");
    gatehouse::admin::apply(other.as_ref(), &revoked)
        .await
        .unwrap();

    let started = Instant::now();
    loop {
        let a = get_invoice(&g, &token).await;
        if a.http_status == 401 {
            assert_stale(&a);
            break;
        }
        assert_permit(&a);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "change never picked up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
