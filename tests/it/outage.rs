//! Fail closed, fast, and recover without a restart: the database cut or slowed behind a proxy
//! (never the shared server itself), with a real Envoy configured in the worst case
//! (`failure_mode_allow: true`).

use std::time::{Duration, Instant};

use crate::support::envoy::{Echo, Envoy};
use crate::support::proxy::{Mode, Proxy};
use crate::support::{
    ALICE_PASSWORD, AUDITOR_PASSWORD, Answer, Backend, TestGatehouse, answer, assert_deny,
    assert_permit, example_policy, postgres_enabled,
};

const LEDGER: [(&str, &str); 1] = [("resource_type", "ledger")];
const INVOICES: [(&str, &str); 1] = [("resource_type", "invoices")];

/// A gatehouse whose Postgres connections all pass through `proxy`.
async fn behind_proxy() -> (TestGatehouse, TestGatehouse, Proxy) {
    let primary = TestGatehouse::start_on(Backend::Postgres, &example_policy()).await;
    let url = primary.config().store.url.clone();
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let server = authority.rsplit('@').next().unwrap();
    let proxy = Proxy::start(server.parse().unwrap()).await;
    let replica = primary
        .replica(|config| {
            config.store.url = url.replace(server, &proxy.addr.to_string());
            config.store.query_timeout_ms = 150;
        })
        .await;
    (primary, replica, proxy)
}

async fn bearer(g: &TestGatehouse, user: &str, password: &str) -> String {
    let body = g.user_token("invoices-web", user, password).await;
    format!("Bearer {}", body["access_token"].as_str().unwrap())
}

async fn check(
    g: &TestGatehouse,
    auth: &str,
    path: &str,
    extensions: &[(&str, &str)],
) -> (Answer, Duration) {
    let started = Instant::now();
    let a = answer(
        &g.check("GET", path, &[("authorization", auth)], extensions)
            .await,
    );
    (a, started.elapsed())
}

#[tokio::test]
async fn database_cut_keeps_claims_path_deciding_and_fails_database_path_closed_then_recovers() {
    if !postgres_enabled() {
        return;
    }
    let (_primary, g, proxy) = behind_proxy().await;
    let alice = bearer(&g, "alice", ALICE_PASSWORD).await;
    let auditor = bearer(&g, "bulk-auditor", AUDITOR_PASSWORD).await;
    assert_permit(&check(&g, &alice, "/v1/invoices/1", &INVOICES).await.0);
    assert_permit(
        &check(&g, &auditor, "/v1/ledgers/2016-01/entries/1", &LEDGER)
            .await
            .0,
    );

    proxy.set(Mode::Cut);
    let cut_at = Instant::now();
    let mut slowest = Duration::ZERO;
    for month in 2..=6 {
        let (a, took) = check(&g, &alice, "/v1/invoices/1", &INVOICES).await;
        assert_permit(&a);
        // A question the cache has never seen must go to the database, which is gone.
        let path = format!("/v1/ledgers/2017-0{month}/entries/1");
        let (a, took_db) = check(&g, &auditor, &path, &LEDGER).await;
        assert_deny(&a, 503);
        assert_eq!(a.reason(), "store_unavailable");
        slowest = slowest.max(took).max(took_db);
    }
    assert!(
        slowest < Duration::from_secs(2),
        "a check took {slowest:?} during the outage"
    );

    proxy.set(Mode::Pass);
    let restored_at = Instant::now();
    let recovered = loop {
        let (a, _) = check(&g, &auditor, "/v1/ledgers/2018-01/entries/1", &LEDGER).await;
        if a.http_status == 200 {
            break restored_at.elapsed();
        }
        assert_deny(&a, 503);
        assert!(
            restored_at.elapsed() < Duration::from_secs(20),
            "no recovery without restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "outage: slowest check while cut {slowest:?}, outage lasted {:?}, recovered {recovered:?} after the database returned",
        restored_at - cut_at
    );
}

#[tokio::test]
async fn slow_database_is_answered_with_503_inside_the_budget() {
    if !postgres_enabled() {
        return;
    }
    let (_primary, g, proxy) = behind_proxy().await;
    let auditor = bearer(&g, "bulk-auditor", AUDITOR_PASSWORD).await;
    assert_permit(
        &check(&g, &auditor, "/v1/ledgers/2016-01/entries/1", &LEDGER)
            .await
            .0,
    );

    proxy.set(Mode::Delay(Duration::from_secs(2)));
    let (a, took) = check(&g, &auditor, "/v1/ledgers/2016-02/entries/1", &LEDGER).await;
    assert_deny(&a, 503);
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    eprintln!("slow database: 503 after {took:?}");
    proxy.set(Mode::Pass);
}

#[tokio::test]
async fn envoy_set_to_fail_open_still_gets_503_and_nothing_reaches_the_upstream() {
    if !postgres_enabled() {
        return;
    }
    let (primary, g, proxy) = behind_proxy().await;
    let echo = Echo::start().await;
    let envoy = Envoy::start_with(primary.dir.path(), g.running.grpc_addr, echo.addr, |yaml| {
        yaml.replace("failure_mode_allow: false", "failure_mode_allow: true")
    })
    .await;
    let auditor = bearer(&g, "bulk-auditor", AUDITOR_PASSWORD).await;
    let http = reqwest::Client::new();

    proxy.set(Mode::Cut);
    let started = Instant::now();
    let response = http
        .get(envoy.url("/v1/ledgers/2019-05/entries/7"))
        .header("authorization", &auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        echo.count(),
        0,
        "a request reached the upstream during the outage"
    );

    proxy.set(Mode::Pass);
    let mut status = 0;
    for _ in 0..200 {
        status = http
            .get(envoy.url("/v1/ledgers/2019-06/entries/7"))
            .header("authorization", &auditor)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
    let seen = echo.last();
    assert!(seen.values("x-envoy-auth-failure-mode-allowed").is_empty());
}

/// B30(d): deadlines are per request, so a gatehouse that has run for hours still decides
/// inside the deadline each check brings.
#[tokio::test]
async fn deadlines_are_per_request_after_hours_of_uptime() {
    let g = TestGatehouse::start(&example_policy()).await;
    g.clock.advance(2 * 3600);
    let alice = bearer(&g, "alice", ALICE_PASSWORD).await;
    let request = crate::support::check_request(
        "GET",
        "/v1/invoices/1",
        &[("authorization", &alice)],
        &INVOICES,
    );
    let mut grpc = tonic::Request::new(request);
    grpc.set_timeout(Duration::from_millis(250));
    let response = g
        .check_client()
        .await
        .check(grpc)
        .await
        .unwrap()
        .into_inner();
    assert_permit(&answer(&response));
}

/// Ready means something: with the store unreachable, `/readyz` and gRPC health report
/// not-serving, and both return to serving when it comes back, without a restart.
#[tokio::test]
async fn readiness_follows_the_store() {
    use crate::operations::{health_status, readyz};
    use tonic_health::pb::health_check_response::ServingStatus;

    if !postgres_enabled() {
        return;
    }
    let (_primary, g, proxy) = behind_proxy().await;
    assert_eq!(readyz(&g).await, 200);
    assert_eq!(health_status(&g, "").await, ServingStatus::Serving);

    proxy.set(Mode::Cut);
    let cut = Instant::now();
    while readyz(&g).await != 503 {
        assert!(
            cut.elapsed() < Duration::from_secs(15),
            "still ready with the store gone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let not_ready_after = cut.elapsed();
    assert_eq!(health_status(&g, "").await, ServingStatus::NotServing);

    proxy.set(Mode::Pass);
    let restored = Instant::now();
    while readyz(&g).await != 200 {
        assert!(
            restored.elapsed() < Duration::from_secs(15),
            "not ready again after the store returned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(health_status(&g, "").await, ServingStatus::Serving);
    eprintln!(
        "readiness: not ready {not_ready_after:?} after the cut, ready {:?} after the store returned",
        restored.elapsed()
    );
}
