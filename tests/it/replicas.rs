//! Replicas on one Postgres (Postgres only): one key set, each other's tokens, and a
//! permission change seen by every replica without a restart — at once by `LISTEN`/`NOTIFY`,
//! and within the poll interval when a notification is lost.

mod processes;

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

use crate::support::{
    ALICE_PASSWORD, Answer, Backend, TestDatabase, TestGatehouse, answer, assert_deny,
    assert_permit, example_policy, postgres_enabled,
};

const INVOICES: [(&str, &str); 1] = [("resource_type", "invoices")];

/// A poll interval so long that only a notification explains a pickup within seconds.
const POLL_NEVER_MS: u64 = 600_000;

async fn check(g: &TestGatehouse, token: &str, method: &str, target: &str) -> Answer {
    let auth = format!("Bearer {token}");
    answer(
        &g.check(method, target, &[("authorization", &auth)], &INVOICES)
            .await,
    )
}

async fn alice_token(g: &TestGatehouse) -> String {
    let body = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
    body["access_token"].as_str().unwrap().to_owned()
}

fn without_alices_grant() -> String {
    example_policy().replace("  - { role: invoice-reader, account: alice }\n", "")
}

/// The longest any change here may take to be honoured.
const DEADLINE: Duration = Duration::from_secs(5);

/// Asks `g` about alice's `token` until it is refused as stale; returns the time since `since`.
async fn time_until_stale(g: &TestGatehouse, token: &str, since: Instant) -> Duration {
    loop {
        let a = check(g, token, "GET", "/v1/invoices/inv-1").await;
        if a.http_status == 401 {
            assert_deny(&a, 401);
            assert_eq!(a.reason(), "permissions_changed", "{a:?}");
            return since.elapsed();
        }
        assert_permit(&a);
        assert!(
            since.elapsed() < DEADLINE,
            "the change was not honoured within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until `g`'s snapshot has reached `generation`; returns how long that took.
async fn time_until_reloaded(g: &TestGatehouse, generation: i64) -> Duration {
    let started = Instant::now();
    while g.running.gatehouse.snapshot().generation < generation {
        assert!(
            started.elapsed() < DEADLINE,
            "no reload within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

async fn plain_sql(g: &TestGatehouse) -> PgConnection {
    PgConnection::connect(&g.config().store.url).await.unwrap()
}

async fn jwks(g: &TestGatehouse) -> Value {
    g.http
        .get(g.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn replicas_accept_each_others_tokens_and_honour_a_revocation_without_restart() {
    if !postgres_enabled() {
        return;
    }
    let first = TestGatehouse::start_on(Backend::Postgres, &example_policy()).await;
    let second = first
        .replica(|config| config.store.reload_interval_ms = POLL_NEVER_MS)
        .await;
    assert_eq!(
        first.config().keys.encryption_key_path,
        second.config().keys.encryption_key_path
    );
    assert_eq!(jwks(&first).await, jwks(&second).await);

    let alice = alice_token(&first).await;
    assert_permit(&check(&second, &alice, "GET", "/v1/invoices/inv-1").await);
    let service = second.service_token("invoice-service").await;
    assert_permit(&check(&first, &service, "POST", "/v1/invoices").await);

    // Revoked through the first replica's store; the second is neither told nor restarted.
    let report = gatehouse::admin::apply(
        first.running.gatehouse.store.as_ref(),
        &without_alices_grant(),
    )
    .await
    .unwrap();
    let committed = Instant::now();
    let reloaded = time_until_reloaded(&second, report.generation).await;
    let latency = time_until_stale(&second, &alice, committed).await;
    eprintln!(
        "cross-instance staleness latency (LISTEN/NOTIFY): snapshot reloaded after {reloaded:?}, \
         first stale decision {latency:?} after the commit"
    );
    assert!(latency < DEADLINE, "{latency:?}");

    let fresh = alice_token(&second).await;
    assert_deny(
        &check(&first, &fresh, "GET", "/v1/invoices/inv-1").await,
        403,
    );
    assert_permit(&check(&first, &service, "POST", "/v1/invoices").await);
}

#[tokio::test]
async fn a_change_that_sends_no_notification_is_found_by_polling() {
    if !postgres_enabled() {
        return;
    }
    let poll = Duration::from_millis(300);
    let first = TestGatehouse::start_on(Backend::Postgres, &example_policy()).await;
    let second = first
        .replica(|config| config.store.reload_interval_ms = poll.as_millis() as u64)
        .await;
    let alice = alice_token(&first).await;
    assert_permit(&check(&second, &alice, "GET", "/v1/invoices/inv-1").await);

    // What a lost notification looks like from the outside: the versions and the generation
    // move on, and no NOTIFY is ever sent.
    let mut sql = plain_sql(&first).await;
    sql.execute(
        "BEGIN; \
         UPDATE permission_versions SET version = version + 1 \
         WHERE subject_kind = 'account' AND subject_id = 'alice'; \
         UPDATE meta SET generation = generation + 1; \
         COMMIT",
    )
    .await
    .unwrap();

    let latency = time_until_stale(&second, &alice, Instant::now()).await;
    eprintln!("staleness latency without a notification (poll {poll:?}): {latency:?}");
    // One poll interval, plus the reload itself and scheduling on a busy test machine.
    assert!(latency < poll + Duration::from_secs(1), "{latency:?}");
}

/// Process ids of the change listeners connected to `g`'s database.
async fn listener_pids(sql: &mut PgConnection) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'gatehouse-listener' \
         ORDER BY pid",
    )
    .fetch_all(sql)
    .await
    .unwrap()
}

#[tokio::test]
async fn notifications_resume_after_the_listener_connection_is_killed() {
    if !postgres_enabled() {
        return;
    }
    let first = TestGatehouse::start_on(Backend::Postgres, &example_policy()).await;
    let second = first
        .replica(|config| config.store.reload_interval_ms = POLL_NEVER_MS)
        .await;
    let alice = alice_token(&first).await;
    assert_permit(&check(&second, &alice, "GET", "/v1/invoices/inv-1").await);

    let mut sql = plain_sql(&first).await;
    let started = Instant::now();
    let mut killed = Vec::new();
    while killed.len() < 2 {
        killed = listener_pids(&mut sql).await;
        assert!(started.elapsed() < Duration::from_secs(5), "{killed:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pid in &killed {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut sql)
            .await
            .unwrap();
    }
    // Both replicas reconnect (with backoff) and listen again.
    loop {
        let now = listener_pids(&mut sql).await;
        if now.len() >= 2 && now.iter().all(|pid| !killed.contains(pid)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "listeners did not reconnect: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    gatehouse::admin::apply(
        first.running.gatehouse.store.as_ref(),
        &without_alices_grant(),
    )
    .await
    .unwrap();
    let latency = time_until_stale(&second, &alice, Instant::now()).await;
    eprintln!("staleness latency after the listener reconnected: {latency:?}");
}

#[tokio::test]
async fn concurrent_applies_from_two_processes_run_one_after_the_other() {
    if !postgres_enabled() {
        return;
    }
    // On an empty database nothing else in the two transactions would make them wait for
    // each other: both would see no client `svc` and both insert one. Serialised, the second
    // finds the first's client and keeps it.
    let policy = "clients:\n  - { name: svc, kind: confidential, grant_types: \
                  [client_credentials], scopes: [invoices] }\n";
    for round in 0..3 {
        let database = TestDatabase::create().await;
        let mut config = gatehouse::config::Config::default();
        config.store.url = database.url.clone();
        // Two stores, as two `gatehouse apply` processes would open.
        let one = gatehouse::server::open_store(&config).await.unwrap();
        let two = gatehouse::server::open_store(&config).await.unwrap();
        let (a, b) = tokio::join!(
            gatehouse::admin::apply(one.as_ref(), policy),
            gatehouse::admin::apply(two.as_ref(), policy),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut generations = [a.generation, b.generation];
        generations.sort_unstable();
        assert_eq!(generations, [1, 2], "round {round}");
        assert_eq!(
            a.created_clients.len() + b.created_clients.len(),
            1,
            "round {round}: exactly one process created the client"
        );
        assert_eq!(one.list_clients().await.unwrap().len(), 1);
    }
}
