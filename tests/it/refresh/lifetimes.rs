//! What a refresh grants and for how long: idle and absolute lifetimes, the current grants on
//! every refresh, scope narrowing, and the security events that end a family.

use serde_json::Value;

use super::{
    alice_through, assert_invalid_grant, check_document, fixture_with,
    oauth_policy_without_alices_grant, refresh, refresh_with, str_of,
};
use crate::support::{Backend, assert_deny, assert_permit, oauth_policy, on_both_backends};

/// The fixture with alice's account entry given one more line (`disabled: true`, …).
fn with_alice_line(line: &str) -> String {
    let policy = oauth_policy();
    let mut lines: Vec<String> = policy.lines().map(str::to_owned).collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "- username: alice")
        .unwrap();
    lines.insert(at + 2, format!("    {line}"));
    lines.join("\n") + "\n"
}

#[tokio::test]
async fn refresh_tokens_expire_when_idle_and_at_the_family_limit() {
    let g = fixture_with(Backend::Sqlite, |config| {
        config.tokens.refresh_idle_seconds = 3600;
        config.tokens.refresh_absolute_seconds = 7200;
    })
    .await;

    // Idle: unused for the idle lifetime.
    let idle = str_of(&alice_through(&g, "svc-reports").await, "refresh_token").to_owned();
    g.clock.advance(3600);
    assert_invalid_grant(&refresh(&g, "svc-reports", &idle).await, "idle expiry");

    // Absolute: rotated well within the idle lifetime, still over at the family's limit.
    let mut rt = str_of(&alice_through(&g, "svc-reports").await, "refresh_token").to_owned();
    for step in [3000, 3000, 1199] {
        g.clock.advance(step);
        let (status, body) = refresh(&g, "svc-reports", &rt).await;
        assert_eq!(status, 200, "{body}");
        rt = str_of(&body, "refresh_token").to_owned();
    }
    g.clock.advance(1);
    assert_invalid_grant(&refresh(&g, "svc-reports", &rt).await, "absolute expiry");
}

#[tokio::test]
async fn refresh_reads_current_grants_and_may_narrow_scope_but_never_widen_it() {
    let g = fixture_with(Backend::Sqlite, |_| {}).await;
    let alice = alice_through(&g, "svc-reports").await;
    assert_eq!(alice["resources"].as_array().unwrap().len(), 1);
    let old_access = str_of(&alice, "access_token");

    // A plain grant change: alice's reader role goes. It revokes no refresh family.
    g.reapply(&oauth_policy_without_alices_grant()).await;
    assert_eq!(
        check_document(&g, "GET", old_access).await.reason(),
        "permissions_changed"
    );
    let (status, body) = refresh(&g, "svc-reports", str_of(&alice, "refresh_token")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resources"], Value::Array(Vec::new()));
    // The new token is current: refused for lack of a grant, not as stale.
    let fresh = check_document(&g, "GET", str_of(&body, "access_token")).await;
    assert_deny(&fresh, 403);
    assert_eq!(fresh.reason(), "not_granted");

    // Now an editor: the next refresh lists both resources and the token permits a write.
    let editor = oauth_policy().replace(
        "  - { role: reader, account: alice }",
        "  - { role: editor, account: alice }",
    );
    g.reapply(&editor).await;
    let rt = str_of(&body, "refresh_token").to_owned();
    let (status, body) = refresh_with(&g, "svc-reports", &rt, &[("scope", "documents")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "documents");
    assert_eq!(body["resources"].as_array().unwrap().len(), 2);
    assert_permit(&check_document(&g, "POST", str_of(&body, "access_token")).await);

    // A scope never granted is refused, and does not use the token up.
    let rt = str_of(&body, "refresh_token").to_owned();
    let (status, refused) = refresh_with(&g, "svc-reports", &rt, &[("scope", "ledger")]).await;
    assert_eq!((status, str_of(&refused, "error")), (400, "invalid_scope"));
    let (status, body) = refresh(&g, "svc-reports", &rt).await;
    assert_eq!(status, 200, "{body}");
}

/// Security events end refresh families: a disabled account stays refused after it is enabled
/// again, a changed password ends the families of the old one, a disabled client's families
/// are gone.
async fn security_events_revoke_refresh_families(backend: Backend) {
    let g = fixture_with(backend, |_| {}).await;
    let through_reports = alice_through(&g, "svc-reports").await;

    g.reapply(&with_alice_line("disabled: true")).await;
    g.reapply(&oauth_policy()).await;
    assert_invalid_grant(
        &refresh(&g, "svc-reports", str_of(&through_reports, "refresh_token")).await,
        "after alice was disabled and enabled again",
    );

    // The same password hash applied again is no event …
    let rt = str_of(&alice_through(&g, "svc-reports").await, "refresh_token").to_owned();
    g.reapply(&oauth_policy()).await;
    let (status, body) = refresh(&g, "svc-reports", &rt).await;
    assert_eq!(status, 200, "{body}");
    // … another one is (bob's hash: alice's password changed).
    let policy = oauth_policy();
    let hash_line = |user: &str| {
        let lines: Vec<&str> = policy.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.trim() == format!("- username: {user}"))
            .unwrap();
        lines[at + 1].to_owned()
    };
    let changed = policy.replace(&hash_line("alice"), &hash_line("bob"));
    g.reapply(&changed).await;
    assert_invalid_grant(
        &refresh(&g, "svc-reports", str_of(&body, "refresh_token")).await,
        "after alice's password changed",
    );

    // svc-audit disabled and enabled again: its family is gone, svc-reports' stays.
    g.reapply(&oauth_policy()).await;
    let through_audit = alice_through(&g, "svc-audit").await;
    let through_reports = alice_through(&g, "svc-reports").await;
    let disabled = oauth_policy().replace(
        "  - name: svc-audit\n    kind: confidential\n",
        "  - name: svc-audit\n    kind: confidential\n    disabled: true\n",
    );
    assert_ne!(disabled, oauth_policy());
    g.reapply(&disabled).await;
    g.reapply(&oauth_policy()).await;
    assert_invalid_grant(
        &refresh(&g, "svc-audit", str_of(&through_audit, "refresh_token")).await,
        "after svc-audit was disabled and enabled again",
    );
    let (status, body) =
        refresh(&g, "svc-reports", str_of(&through_reports, "refresh_token")).await;
    assert_eq!(status, 200, "{body}");
}
on_both_backends!(security_events_revoke_refresh_families);

#[test]
fn refresh_lifetimes_are_validated() {
    use gatehouse::config::Config;
    let refused = |adjust: fn(&mut Config)| {
        let mut config = Config::default();
        adjust(&mut config);
        config.validate().unwrap_err().to_string()
    };
    assert!(
        refused(|c| c.tokens.refresh_idle_seconds = 10).contains("tokens.refresh_idle_seconds")
    );
    assert!(
        refused(|c| c.tokens.refresh_absolute_seconds = c.tokens.refresh_idle_seconds - 1)
            .contains("tokens.refresh_absolute_seconds")
    );
    assert!(
        refused(|c| c.tokens.refresh_absolute_seconds = 400 * 86_400)
            .contains("tokens.refresh_absolute_seconds")
    );
}
