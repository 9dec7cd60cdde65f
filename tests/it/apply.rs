//! `apply` is atomic: a file with an error changes nothing.

use crate::support::{Backend, TestGatehouse, example_policy, on_both_backends};

on_both_backends!(a_failing_apply_changes_nothing);
async fn a_failing_apply_changes_nothing(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &example_policy()).await;
    let store = g.running.gatehouse.store.clone();
    let before = store.snapshot().await.unwrap();
    let clients_before = store.list_clients().await.unwrap();

    // Invalid reference: refused before anything is written.
    let broken = example_policy().replace(
        "{ role: invoice-reader, account: alice }",
        "{ role: ghost, account: alice }",
    );
    let error = gatehouse::admin::apply(store.as_ref(), &broken)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("grants[1]"), "{error}");

    // Valid file that fails half-way in the store (a client cannot change kind): the
    // resource removal earlier in the same transaction is rolled back.
    let half = example_policy()
        .replace("    kind: public\n", "    kind: confidential\n")
        .replace(
            "grant_types: [password]",
            "grant_types: [password, client_credentials]",
        );
    let half = half.replace(
        &half[half.find("  - id: invoices.delete").unwrap()
            ..half.find("  - id: invoices.lines.read").unwrap()],
        "",
    );
    assert!(
        gatehouse::admin::apply(store.as_ref(), &half)
            .await
            .is_err()
    );

    let after = store.snapshot().await.unwrap();
    assert_eq!(after.generation, before.generation);
    assert_eq!(after.resources, before.resources);
    assert_eq!(after.versions, before.versions);
    assert_eq!(store.list_clients().await.unwrap(), clients_before);
}

on_both_backends!(reapplying_the_same_file_keeps_clients_and_versions);
async fn reapplying_the_same_file_keeps_clients_and_versions(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &example_policy()).await;
    let store = g.running.gatehouse.store.clone();
    let before = store.snapshot().await.unwrap();
    let report = gatehouse::admin::apply(store.as_ref(), &example_policy())
        .await
        .unwrap();
    assert!(report.created_clients.is_empty());
    assert!(report.bumped.is_empty());
    let after = store.snapshot().await.unwrap();
    assert_eq!(after.versions, before.versions);
    assert_eq!(after.generation, before.generation + 1);
    let clients = store.list_clients().await.unwrap();
    assert!(
        clients
            .iter()
            .any(|c| c.id == g.clients["invoice-service"].id)
    );
}
