//! The gatehouse process (the real binary) killed with SIGKILL under load and started again on
//! the same store and ports. While it is gone Envoy answers 503 itself (`status_on_error`,
//! an empty body) and lets nothing through; afterwards nothing is lost: tokens issued before
//! the kill are honoured (the keys are in the store), and a revocation and a permission change
//! made before the kill still hold.

use std::time::Duration;

use reqwest::Method;

use super::process::Deployment;
use super::{Load, Probe, Tolerated, sidecar};
use crate::support::binary::created_client_id;
use crate::support::envoy::{Echo, Envoy};
use crate::support::{ALICE_PASSWORD, AUDITOR_PASSWORD, Backend, example_policy, postgres_enabled};

const INVOICE: &str = "/v1/invoices/inv-1";
const LEDGER: &str = "/v1/ledgers/2016-01/entries/1";
/// How long gatehouse stays dead.
const GAP: Duration = Duration::from_secs(1);

/// Polls through Envoy until `token` on `path` is denied with `status`.
async fn until_denied(envoy: &Envoy, path: &str, token: &str, status: u16) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let response = http
            .get(envoy.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if response.status() == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{path} never denied with {status}");
}

async fn killed_and_restarted(backend: Backend, name: &'static str) {
    let mut d = Deployment::new(backend, "").await;
    let created = d.apply(&example_policy()).await;
    let web = created_client_id(&created, "invoices-web");
    d.serve().await;
    let echo = Echo::start().await;
    let envoy = sidecar(d.log_dir(), d.grpc_addr(), &echo).await;

    let alice = d.user_token(&web, "alice", ALICE_PASSWORD).await;
    let revoked = d.user_token(&web, "alice", ALICE_PASSWORD).await;
    let auditor_before = d.user_token(&web, "bulk-auditor", AUDITOR_PASSWORD).await;
    let (status, body) = d
        .post_form("/revoke", None, &[("client_id", &web), ("token", &revoked)])
        .await;
    assert_eq!(status, 200, "{body}");
    // The auditor may no longer read invoices: his earlier token is stale, a new one carries
    // (through the database) only the ledgers.
    d.apply(&example_policy().replace("  - { role: invoice-reader, account: bulk-auditor }\n", ""))
        .await;
    let auditor_after = d.user_token(&web, "bulk-auditor", AUDITOR_PASSWORD).await;
    until_denied(&envoy, INVOICE, &revoked, 401).await;
    until_denied(&envoy, LEDGER, &auditor_before, 401).await;

    let gone = Tolerated::EnvoyError;
    let probes = vec![
        Probe::permit("alice", Method::GET, INVOICE, Some(&alice)),
        Probe::deny("alice_delete", 403, Method::DELETE, INVOICE, Some(&alice)),
        Probe::deny("revoked", 401, Method::GET, INVOICE, Some(&revoked)).because("token_revoked"),
        Probe::deny(
            "auditor_before_change",
            401,
            Method::GET,
            LEDGER,
            Some(&auditor_before),
        )
        .because("permissions_changed"),
        Probe::permit("auditor_ledger", Method::GET, LEDGER, Some(&auditor_after)),
        Probe::deny(
            "auditor_invoice",
            403,
            Method::GET,
            INVOICE,
            Some(&auditor_after),
        ),
        Probe::deny("no_token", 401, Method::GET, INVOICE, None),
    ];
    let probes = probes.into_iter().map(|p| p.tolerating(gone)).collect();
    let mut load = Load::start(name, envoy.url(""), probes);
    load.run_for(Duration::from_secs(1)).await;

    load.fault_begins();
    d.kill().await;
    load.run_for(GAP).await;
    d.spawn();
    load.fault_ends();
    load.until_recovered().await;
    load.run_for(Duration::from_millis(1500)).await;
    let report = load.finish(&echo).await;
    report.print("");

    report.assert_clean();
    assert!(
        report.envoy_errors > 0,
        "{name}: no request met the dead gatehouse"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gatehouse_killed_mid_load_on_sqlite_lets_nothing_through_and_loses_nothing() {
    killed_and_restarted(Backend::Sqlite, "gatehouse_killed_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gatehouse_killed_mid_load_on_postgres_lets_nothing_through_and_loses_nothing() {
    assert!(
        postgres_enabled(),
        "the Postgres fault tests need GATEHOUSE_TEST_POSTGRES"
    );
    killed_and_restarted(Backend::Postgres, "gatehouse_killed_postgres").await;
}
