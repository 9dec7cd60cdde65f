//! `apply` is atomic: a file with an error changes nothing, in the store and through the
//! `gatehouse apply` command.

use crate::faults::process::Deployment;
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

/// Everything `gatehouse list` shows, by listing.
async fn listings(d: &Deployment) -> Vec<(&'static str, String)> {
    let mut all = Vec::new();
    for what in ["clients", "accounts", "resources", "roles", "grants"] {
        let (ok, listed, errors) = d.command(&["list", what]).await;
        assert!(ok, "{errors}");
        all.push((what, listed));
    }
    all
}

/// Through the command: a file that adds resources, a role, an account and a client and only
/// then names an unknown role, or one that fails in the store after removing a resource, exits
/// non-zero and leaves every listing as it was.
async fn a_failing_apply_command_exits_non_zero_and_changes_nothing(backend: Backend) {
    let d = Deployment::new(backend, "").await;
    d.apply(&example_policy()).await;
    let before = listings(&d).await;

    let additions = example_policy()
        .replacen(
            "\nresources:\n",
            "\nresources:\n  - { id: reports.read, type: reports, name: report, action: read, \
             url: \"/v1/reports/{id}\", description: Read a report }\n",
            1,
        )
        .replacen(
            "\nroles:\n",
            "\nroles:\n  - { id: report-reader, resources: [reports.read] }\n",
            1,
        )
        .replacen(
            "\nclients:\n",
            "\nclients:\n  - name: reports-service\n    kind: confidential\n    \
             grant_types: [client_credentials]\n    scopes: [reports]\n",
            1,
        )
        .replacen(
            "\naccounts:\n",
            "\naccounts:\n  - username: carol\n    password_hash: \"$argon2id$v=19$m=19456,t=2,p=1$\
             wFy1jiNeQDnp6/LXCtc+SQ$fGrAhDD+M6kHMV+/lRXiF/q3uo5Duy8q8wBMh3ifDzI\"\n",
            1,
        )
        .replacen(
            "\ngrants:\n",
            "\ngrants:\n  - { role: report-reader, account: carol }\n",
            1,
        );
    // The last grant of the file names a role that does not exist.
    let late_error = additions.replace(
        "  - { role: ledger-auditor, account: bulk-auditor }\n",
        "  - { role: ledger-auditor, account: bulk-auditor }\n  \
         - { role: no-such-role, account: carol }\n",
    );
    let in_the_store = additions
        .replace("    kind: public\n", "    kind: confidential\n")
        .replace(
            "grant_types: [authorization_code, password]",
            "grant_types: [authorization_code, password, client_credentials]",
        );
    // The additions alone are a valid file: each broken file fails only where intended.
    if let Err(error) = gatehouse::policy::PolicyFile::from_yaml(&additions) {
        panic!("{error}");
    }

    for (case, policy, says) in [
        ("unknown role in the last grant", late_error, "no-such-role"),
        ("client changing kind", in_the_store, ""),
    ] {
        let file = d.dir.path().join("broken.yaml");
        std::fs::write(&file, policy).unwrap();
        let (ok, output, errors) = d.command(&["apply", file.to_str().unwrap()]).await;
        assert!(!ok, "{case}: apply succeeded: {output}");
        assert!(errors.contains(says), "{case}: {errors}");
        assert!(output.is_empty(), "{case}: {output}");
        for ((what, after), (_, before)) in listings(&d).await.iter().zip(&before) {
            assert!(after == before, "{case}: `gatehouse list {what}` changed");
        }
    }
    // The comparison sees a change: the additions alone apply, and alter every listing.
    d.apply(&additions).await;
    for ((what, after), (_, before)) in listings(&d).await.iter().zip(&before) {
        assert!(
            after != before,
            "`gatehouse list {what}` unchanged by the additions"
        );
    }
}
on_both_backends!(a_failing_apply_command_exits_non_zero_and_changes_nothing);
