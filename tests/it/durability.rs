//! Nothing lost, nothing doubled, on both stores: refresh races never leave two live
//! successors of one token (checked in the store, not only in the answers), concurrent
//! refreshes of different tokens all succeed, and permission changes survive a restart.
//! (Revocations surviving a restart: `revocation`; `apply` changing nothing when it fails:
//! `apply`; a killed process: `faults::restart`.)

use std::io::Write as _;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::introspection::introspect;
use crate::refresh::{
    alice_through, assert_invalid_grant, basic, check_document, fixture_with, refresh, str_of,
};
use crate::support::{
    ALICE_CANARY, Backend, TestGatehouse, assert_deny, assert_permit, oauth_policy,
    on_both_backends,
};

/// Rounds of the refresh race, and refreshes of one token at once in each.
const ROUNDS: usize = 4;
const RACERS: usize = 16;

/// The refresh tokens of `token`'s family in the store: how many there are, and how many are
/// live (unused, in a family not revoked).
async fn family(g: &TestGatehouse, backend: Backend, token: &str) -> (i64, i64) {
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    let sql = |p: &str| {
        format!(
            "SELECT COUNT(*), COUNT(CASE WHEN t.used_at IS NULL AND f.revoked_at IS NULL THEN 1 END) \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
             WHERE t.family_id = (SELECT family_id FROM refresh_tokens WHERE hash = {p})"
        )
    };
    let url = &g.config().store.url;
    match backend {
        Backend::Sqlite => {
            let mut connection = SqliteConnection::connect(url).await.unwrap();
            sqlx::query_as(&sql("?"))
                .bind(hash)
                .fetch_one(&mut connection)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut connection = PgConnection::connect(url).await.unwrap();
            sqlx::query_as(&sql("$1"))
                .bind(hash)
                .fetch_one(&mut connection)
                .await
                .unwrap()
        }
    }
}

/// `RACERS` refreshes of `token` at once.
async fn race(g: &Arc<TestGatehouse>, token: &str, racers: usize) -> Vec<(u16, Value)> {
    let start = Arc::new(tokio::sync::Barrier::new(racers));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..racers {
        let (g, token, start) = (g.clone(), token.to_owned(), start.clone());
        tasks.spawn(async move {
            start.wait().await;
            refresh(&g, "svc-reports", &token).await
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    answers
}

/// B28 (f), repeated: of sixteen refreshes of one token at once exactly one succeeds, the
/// store holds exactly one successor, and after the race none of the family is live (the
/// losers look like a replay, which revokes the family).
async fn refresh_races_never_leave_two_live_successors(backend: Backend) {
    let g = Arc::new(fixture_with(backend, |_| {}).await);
    for round in 0..ROUNDS {
        let first = alice_through(&g, "svc-reports").await;
        let token = str_of(&first, "refresh_token");
        let answers = race(&g, token, RACERS).await;
        let winners: Vec<&Value> = answers
            .iter()
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| body)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {answers:?}");
        for answer in answers.iter().filter(|(status, _)| *status != 200) {
            assert_invalid_grant(answer, "a loser of the race");
        }

        let (tokens, live) = family(&g, backend, token).await;
        assert_eq!(
            tokens, 2,
            "round {round}: the first token and one successor"
        );
        assert_eq!(live, 0, "round {round}: the race revoked the family");
        let winner = winners[0];
        for kind in ["refresh_token", "access_token"] {
            let body = introspect(&g, "svc-reports", str_of(winner, kind)).await;
            assert_eq!(body["active"], false, "round {round}: the winner's {kind}");
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "durability=refresh_race backend={backend:?} rounds={ROUNDS} racers={RACERS} \
         successes_per_round=1 successors_per_family=1 live_after_race=0"
    );
}
on_both_backends!(refresh_races_never_leave_two_live_successors);

/// Refreshes of different tokens at once do not get in each other's way: each succeeds once,
/// and each family holds its first token and one live successor.
async fn concurrent_refreshes_of_different_tokens_all_succeed(backend: Backend) {
    let g = Arc::new(fixture_with(backend, |_| {}).await);
    let mut tokens = Vec::new();
    for _ in 0..RACERS {
        let body = alice_through(&g, "svc-reports").await;
        tokens.push(str_of(&body, "refresh_token").to_owned());
    }
    let start = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = tokio::task::JoinSet::new();
    for token in tokens.clone() {
        let (g, start) = (g.clone(), start.clone());
        tasks.spawn(async move {
            start.wait().await;
            refresh(&g, "svc-reports", &token).await
        });
    }
    let mut successors = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
        successors.push(str_of(&body, "refresh_token").to_owned());
    }
    successors.sort();
    successors.dedup();
    assert_eq!(successors.len(), RACERS, "every successor is new");
    for token in &tokens {
        assert_eq!(family(&g, backend, token).await, (2, 1));
    }
    for token in &successors {
        let body = introspect(&g, "svc-reports", token).await;
        assert_eq!(body["active"], true, "{body}");
    }
}
on_both_backends!(concurrent_refreshes_of_different_tokens_all_succeed);

/// A grant removed and a grant widened by `apply` hold after a restart: the token issued
/// before the change stays stale, a new one carries the change, and the widened client may
/// write.
async fn permission_changes_survive_a_restart(backend: Backend) {
    let g = fixture_with(backend, |_| {}).await;
    let before = alice_through(&g, "svc-reports").await;
    let access = str_of(&before, "access_token");
    assert_permit(&check_document(&g, "GET", access).await);
    let audit = g.service_token("svc-audit").await;
    assert_deny(&check_document(&g, "PUT", &audit).await, 403);

    let changed = oauth_policy()
        .replace("  - { role: reader, account: alice }\n", "")
        .replace(
            "  - { role: reader, client: svc-audit }",
            "  - { role: editor, client: svc-audit }",
        );
    g.reapply(&changed).await;
    let g = g.restart().await;

    let stale = check_document(&g, "GET", access).await;
    assert_deny(&stale, 401);
    assert_eq!(stale.reason(), "permissions_changed");
    assert_deny(&check_document(&g, "PUT", &audit).await, 401);
    // The refresh reads the current grants: none for alice.
    let (status, renewed) = refresh(&g, "svc-reports", str_of(&before, "refresh_token")).await;
    assert_eq!(status, 200, "{renewed}");
    let renewed = check_document(&g, "GET", str_of(&renewed, "access_token")).await;
    assert_deny(&renewed, 403);
    let (status, body) = g
        .token_request(
            Some(basic(&g, "svc-reports")),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", ALICE_CANARY),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_deny(
        &check_document(&g, "GET", str_of(&body, "access_token")).await,
        403,
    );
    let audit = g.service_token("svc-audit").await;
    assert_permit(&check_document(&g, "PUT", &audit).await);
}
on_both_backends!(permission_changes_survive_a_restart);
