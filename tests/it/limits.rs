//! Brute-force limits on client secrets and passwords (RFC 6749 §2.3.1, §10.10): counted in
//! the store per client id and per username, shared by replicas, refused with 429 while
//! locked, expiring on gatehouse's clock.

use gatehouse::clock::Clock;
use gatehouse::store::ThrottleKey;
use serde_json::Value;

use crate::support::{ALICE_CANARY, Backend, TestGatehouse, oauth_policy, on_both_backends};

/// The parts of a `/token` answer a test compares.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    www_authenticate: Option<String>,
    cache_control: Option<String>,
    body: Value,
}

async fn post(g: &TestGatehouse, basic: (&str, &str), form: &[(&str, &str)]) -> Answer {
    let response = g
        .http
        .post(g.url("/token"))
        .basic_auth(basic.0, Some(basic.1))
        .form(form)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    Answer {
        status: response.status().as_u16(),
        retry_after: header("retry-after"),
        www_authenticate: header("www-authenticate"),
        cache_control: header("cache-control"),
        body: response.json().await.unwrap(),
    }
}

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

fn password<'a>(username: &'a str, password: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ]
}

/// Asserts a 429 answer with `error` and `Retry-After: seconds`.
fn assert_throttled(answer: &Answer, error: &str, seconds: u32) {
    assert_eq!(answer.status, 429, "{answer:?}");
    assert_eq!(
        answer.retry_after.as_deref(),
        Some(seconds.to_string().as_str())
    );
    assert_eq!(answer.cache_control.as_deref(), Some("no-store"));
    assert_eq!(answer.www_authenticate, None);
    assert_eq!(
        answer.body,
        serde_json::json!({
            "error": error,
            "error_description": "too many failed attempts; retry later"
        })
    );
}

async fn wrong_secrets_lock_the_client_with_doubling_locks_that_expire(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &oauth_policy()).await;
    let id = g.clients["svc-reports"].id.clone();
    let secret = g.clients["svc-reports"].secret.clone().unwrap();

    for _ in 0..4 {
        assert_eq!(post(&g, (&id, "wrong"), &CC).await.status, 401);
    }
    assert_eq!(post(&g, (&id, &secret), &CC).await.status, 200);
    // The success cleared the count: five more failures are needed, the fifth locks for 1 s.
    for _ in 0..5 {
        assert_eq!(post(&g, (&id, "wrong"), &CC).await.status, 401);
    }
    // While locked even the right secret is refused, before it is checked.
    assert_throttled(&post(&g, (&id, &secret), &CC).await, "invalid_client", 1);
    assert_throttled(&post(&g, (&id, "wrong"), &CC).await, "invalid_client", 1);

    // The lock ends; the next failure locks for 2 s, then 4 s.
    g.clock.advance(1);
    assert_eq!(post(&g, (&id, "wrong"), &CC).await.status, 401);
    assert_throttled(&post(&g, (&id, &secret), &CC).await, "invalid_client", 2);
    g.clock.advance(1);
    assert_throttled(&post(&g, (&id, &secret), &CC).await, "invalid_client", 1);
    g.clock.advance(1);
    assert_eq!(post(&g, (&id, "wrong"), &CC).await.status, 401);
    assert_throttled(&post(&g, (&id, &secret), &CC).await, "invalid_client", 4);

    // After the lock, the right secret works and clears the count.
    g.clock.advance(4);
    let answer = post(&g, (&id, &secret), &CC).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(post(&g, (&id, "wrong"), &CC).await.status, 401);
    assert_eq!(post(&g, (&id, &secret), &CC).await.status, 200);

    // The other client was never affected.
    let audit = &g.clients["svc-audit"];
    let audit = (audit.id.as_str(), audit.secret.as_deref().unwrap());
    assert_eq!(post(&g, audit, &CC).await.status, 200);
}
on_both_backends!(wrong_secrets_lock_the_client_with_doubling_locks_that_expire);

async fn unknown_client_ids_and_usernames_are_counted_like_known_ones(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &oauth_policy()).await;
    let id = g.clients["svc-reports"].id.clone();
    let secret = g.clients["svc-reports"].secret.clone().unwrap();

    for _ in 0..5 {
        assert_eq!(post(&g, (&id, "wrong"), &CC).await.status, 401);
        assert_eq!(post(&g, ("gh-nobody", "wrong"), &CC).await.status, 401);
    }
    let known = post(&g, (&id, "wrong"), &CC).await;
    let unknown = post(&g, ("gh-nobody", "wrong"), &CC).await;
    assert_throttled(&known, "invalid_client", 1);
    assert_eq!(known, unknown);

    // Usernames: alice (wrong password), nobody, and disabled bob with his real password.
    g.clock.advance(1);
    let basic = (id.as_str(), secret.as_str());
    for _ in 0..5 {
        for (user, pass) in [
            ("alice", "wrong"),
            ("nobody", "wrong"),
            ("bob", crate::support::BOB_CANARY),
        ] {
            let answer = post(&g, basic, &password(user, pass)).await;
            assert_eq!(answer.status, 400, "{user}: {answer:?}");
            assert_eq!(answer.body, serde_json::json!({"error": "invalid_grant"}));
        }
    }
    let mut locked = Vec::new();
    for (user, pass) in [
        ("alice", ALICE_CANARY),
        ("nobody", "wrong"),
        ("bob", crate::support::BOB_CANARY),
    ] {
        let answer = post(&g, basic, &password(user, pass)).await;
        assert_throttled(&answer, "invalid_grant", 1);
        locked.push(answer);
    }
    assert_eq!(locked[0], locked[1]);
    assert_eq!(locked[0], locked[2]);

    // A locked username does not lock the client that asked for it, nor another person.
    assert_eq!(post(&g, basic, &CC).await.status, 200);
    // The lock expires on gatehouse's clock; the right password then works.
    g.clock.advance(1);
    let answer = post(&g, basic, &password("alice", ALICE_CANARY)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
}
on_both_backends!(unknown_client_ids_and_usernames_are_counted_like_known_ones);

async fn replicas_share_the_counters(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &oauth_policy()).await;
    let replica = g.replica(|_| {}).await;
    replica.clock.set(g.clock.now());
    let id = g.clients["svc-reports"].id.clone();
    let secret = g.clients["svc-reports"].secret.clone().unwrap();

    // Failures on either replica add up; the fifth, on the second, locks both.
    for g in [&g, &replica, &g, &replica, &replica] {
        assert_eq!(post(g, (&id, "wrong"), &CC).await.status, 401);
    }
    assert_throttled(&post(&g, (&id, &secret), &CC).await, "invalid_client", 1);
    assert_throttled(
        &post(&replica, (&id, &secret), &CC).await,
        "invalid_client",
        1,
    );

    for user in ["alice"; 5] {
        let basic = (id.as_str(), secret.as_str());
        g.clock.advance(1);
        replica.clock.advance(1);
        // One failure here, the lock checked there: the client's own lock has ended.
        assert_eq!(post(&g, basic, &password(user, "wrong")).await.status, 400);
    }
    let basic = (id.as_str(), secret.as_str());
    let answer = post(&replica, basic, &password("alice", ALICE_CANARY)).await;
    assert_throttled(&answer, "invalid_grant", 1);

    // A success on one replica clears the count for both.
    g.clock.advance(1);
    replica.clock.advance(1);
    assert_eq!(
        post(&replica, basic, &password("alice", ALICE_CANARY))
            .await
            .status,
        200
    );
    let key = ThrottleKey::account("alice");
    assert_eq!(
        g.running
            .gatehouse
            .store
            .throttle_state(&key)
            .await
            .unwrap(),
        None
    );
}
on_both_backends!(replicas_share_the_counters);

async fn concurrent_failures_are_all_counted(backend: Backend) {
    let g = TestGatehouse::start_on_with(backend, &oauth_policy(), |config| {
        config.limits.max_failures = 100;
    })
    .await;
    let id = g.clients["svc-reports"].id.clone();
    // Every request is in flight before any is answered.
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let request = g
            .http
            .post(g.url("/token"))
            .basic_auth(&id, Some("wrong"))
            .form(&CC);
        attempts.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    while let Some(status) = attempts.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
    let key = ThrottleKey::client(&id);
    let record = g
        .running
        .gatehouse
        .store
        .throttle_state(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.failures, 12);
    assert_eq!(record.locked_until, 0);
}
on_both_backends!(concurrent_failures_are_all_counted);

async fn a_store_that_cannot_count_fails_closed(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &oauth_policy()).await;
    let id = g.clients["svc-reports"].id.clone();
    let secret = g.clients["svc-reports"].secret.clone().unwrap();
    execute_sql(&g, "ALTER TABLE auth_failures RENAME TO auth_failures_gone").await;

    // Neither a right nor a wrong secret is decided without the counters.
    for secret in [secret.as_str(), "wrong"] {
        let answer = post(&g, (&id, secret), &CC).await;
        assert_eq!(answer.status, 503, "{answer:?}");
        assert_eq!(answer.body["error"], "temporarily_unavailable");
        assert_eq!(answer.cache_control.as_deref(), Some("no-store"));
    }
}
on_both_backends!(a_store_that_cannot_count_fails_closed);

/// Runs one statement on the test's database, beside gatehouse's own connections.
async fn execute_sql(g: &TestGatehouse, sql: &str) {
    use sqlx::{Connection, Executor};
    let url = &g.config().store.url;
    if url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
        connection.execute(sql).await.unwrap();
    } else {
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        connection.execute(sql).await.unwrap();
    }
}

async fn failures_are_forgotten_after_the_window_and_then_pruned(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &oauth_policy()).await;
    let store = g.running.gatehouse.store.clone();
    let policy = g.config().limits.policy();
    let (old, recent) = (ThrottleKey::account("old"), ThrottleKey::account("recent"));
    let t = 1_000_000;

    for _ in 0..4 {
        store.record_failure(&old, t, &policy).await.unwrap();
    }
    // Within the window the count goes on; one window after the last failure it starts over.
    let record = store.record_failure(&old, t + 899, &policy).await.unwrap();
    assert_eq!((record.failures, record.locked_until), (5, t + 899 + 1));
    let record = store
        .record_failure(&old, t + 899 + 1 + 900, &policy)
        .await
        .unwrap();
    assert_eq!((record.failures, record.locked_until), (1, 0));

    store
        .record_failure(&recent, t + 3000, &policy)
        .await
        .unwrap();
    assert_eq!(store.prune_failures(t + 2000 + 900).await.unwrap(), 1);
    assert_eq!(store.throttle_state(&old).await.unwrap(), None);
    assert!(store.throttle_state(&recent).await.unwrap().is_some());
}
on_both_backends!(failures_are_forgotten_after_the_window_and_then_pruned);
