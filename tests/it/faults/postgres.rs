//! Postgres failing under load, behind a TCP proxy (never the shared server itself): cut off
//! (a network partition: connections stay open and nothing passes), restarted (every
//! connection dropped and new ones refused, then accepted again) and slow (every packet held
//! longer than the query budget).
//!
//! The gatehouse under test reaches the database only through the proxy, with no grant cache
//! (`grant_cache_capacity = 0`), so that every database-path check really asks the database.
//! alice's grants travel in her token (claims path); bulk-auditor's 124 grants do not
//! (database path).

use std::time::Duration;

use reqwest::Method;

use super::{Load, Probe, Tolerated, sidecar};
use crate::support::envoy::Echo;
use crate::support::proxy::{Mode, Proxy};
use crate::support::{
    ALICE_PASSWORD, AUDITOR_PASSWORD, Backend, TestGatehouse, example_policy, postgres_enabled,
};

const INVOICE: &str = "/v1/invoices/inv-1";
const LEDGER: &str = "/v1/ledgers/2016-01/entries/1";
const FAULT: Duration = Duration::from_secs(3);
const STORE_UNAVAILABLE: Tolerated = Tolerated::Unavailable("store_unavailable");

async fn access_token(g: &TestGatehouse, username: &str, password: &str) -> String {
    let body = g.user_token("invoices-web", username, password).await;
    body["access_token"].as_str().unwrap().to_owned()
}

/// Under load, the proxy in `mode` for [`FAULT`]: claims-path checks decide as before, the
/// database path answers 503 `store_unavailable` (or, where the answer needs no database, the
/// right deny), and both recover without a restart.
async fn database_fault(name: &'static str, mode: Mode) {
    assert!(
        postgres_enabled(),
        "the Postgres fault tests need GATEHOUSE_TEST_POSTGRES"
    );
    let primary = TestGatehouse::start_on(Backend::Postgres, &example_policy()).await;
    let url = primary.config().store.url.clone();
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let server = authority.rsplit('@').next().unwrap();
    let proxy = Proxy::start(server.parse().unwrap()).await;
    let g = primary
        .replica(|config| {
            config.store.url = url.replace(server, &proxy.addr.to_string());
            config.store.grant_cache_capacity = 0;
        })
        .await;
    let echo = Echo::start().await;
    let envoy = sidecar(g.dir.path(), g.running.grpc_addr, &echo).await;
    let alice = access_token(&g, "alice", ALICE_PASSWORD).await;
    let auditor = access_token(&g, "bulk-auditor", AUDITOR_PASSWORD).await;

    let probes = vec![
        Probe::permit("alice", Method::GET, INVOICE, Some(&alice)),
        Probe::deny("alice_delete", 403, Method::DELETE, INVOICE, Some(&alice)),
        Probe::deny("alice_ledger", 403, Method::GET, LEDGER, Some(&alice)),
        Probe::permit("auditor_ledger", Method::GET, LEDGER, Some(&auditor))
            .tolerating(STORE_UNAVAILABLE),
        Probe::permit("auditor_invoice", Method::GET, INVOICE, Some(&auditor))
            .tolerating(STORE_UNAVAILABLE),
        Probe::deny(
            "auditor_delete",
            403,
            Method::DELETE,
            LEDGER,
            Some(&auditor),
        )
        .tolerating(STORE_UNAVAILABLE),
        Probe::deny("no_token", 401, Method::GET, INVOICE, None),
    ];
    let mut load = Load::start(name, envoy.url(""), probes);
    load.run_for(Duration::from_secs(1)).await;

    load.fault_begins();
    proxy.set(mode);
    load.run_for(FAULT).await;
    proxy.set(Mode::Pass);
    if let Mode::Delay(delay) = mode {
        // Packets the proxy already holds are delivered up to one delay later.
        tokio::time::sleep(delay).await;
    }
    load.fault_ends();
    load.until_recovered().await;
    load.run_for(Duration::from_secs(1)).await;
    let report = load.finish(&echo).await;
    report.print("");

    report.assert_clean();
    assert!(
        report.denied(503) > 0,
        "{name}: the database path never failed closed"
    );
    drop(primary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_off_fails_the_database_path_closed_and_both_paths_recover() {
    database_fault("postgres_cut", Mode::Blackhole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_fails_the_database_path_closed_and_both_paths_recover() {
    database_fault("postgres_restart", Mode::Cut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_slower_than_the_budget_fails_the_database_path_closed_and_recovers() {
    database_fault("postgres_slow", Mode::Delay(Duration::from_millis(500))).await;
}
