//! Replicas on one Postgres share the key set (Postgres only): a rotation made by
//! `gatehouse keys rotate` is published by every replica within the reload bound, each signs
//! with the new key from its `sign_from`, and each accepts the others' tokens. Replicas
//! starting together on an empty database create exactly one key.

use std::sync::Arc;
use std::time::Duration;

use gatehouse::clock::{Clock as _, SystemClock};
use gatehouse::config::Config;

use super::{keys_command, until_published};
use crate::key_rotation::{kid, sorted, status, token};
use crate::support::{Backend, TestDatabase, TestGatehouse, example_policy, postgres_enabled};

#[tokio::test]
async fn replicas_follow_a_rotation_made_by_the_keys_command() {
    if !postgres_enabled() {
        return;
    }
    let first = TestGatehouse::start_on(Backend::Postgres, &example_policy()).await;
    // The documented poll interval; LISTEN/NOTIFY usually brings the change sooner.
    let second = first
        .replica(|config| config.store.reload_interval_ms = 250)
        .await;
    let k1 = first.signing_key().kid().to_owned();
    assert_eq!(second.signing_key().kid(), k1);
    let t1 = token(&first).await;

    let (ok, rotated) = keys_command(&first, &["rotate"]).await;
    assert!(ok, "{rotated}");
    let k2 = rotated
        .strip_prefix("new key ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("{rotated}"))
        .to_owned();
    // The command ran on the system clock; the replicas' clocks agree with it.
    for g in [&first, &second] {
        g.clock.set(SystemClock.now());
    }
    let took = until_published(&second, &sorted(&[&k1, &k2])).await;
    eprintln!("rotation published by the other replica after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    until_published(&first, &sorted(&[&k1, &k2])).await;
    assert_eq!(kid(&token(&second).await), k1, "not before sign_from");

    let stored = first.running.gatehouse.store.signing_keys().await.unwrap();
    let sign_from = stored
        .iter()
        .find(|record| record.kid == k2)
        .unwrap()
        .times
        .sign_from;
    for g in [&first, &second] {
        g.clock.set(sign_from);
    }
    let (a, b) = (token(&first).await, token(&second).await);
    assert_eq!((kid(&a), kid(&b)), (k2.clone(), k2.clone()));
    for g in [&first, &second] {
        for t in [&a, &b, &t1] {
            assert_eq!(status(g, t).await, 200);
        }
    }
}

#[tokio::test]
async fn replicas_starting_together_on_an_empty_database_create_one_key() {
    if !postgres_enabled() {
        return;
    }
    for _ in 0..3 {
        let database = TestDatabase::create().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.grpc_addr = "127.0.0.1:0".parse().unwrap();
        config.server.http_addr = "127.0.0.1:0".parse().unwrap();
        config.store.url = database.url.clone();
        // Neither the file nor a key exists yet: both replicas race for both.
        config.keys.encryption_key_path = dir.path().join("encryption-key");
        let clock = Arc::new(SystemClock);
        let (a, b) = tokio::join!(
            gatehouse::server::spawn(config.clone(), clock.clone()),
            gatehouse::server::spawn(config.clone(), clock.clone()),
        );
        let (a, b) = (a.unwrap(), b.unwrap());

        let stored = a.gatehouse.store.signing_keys().await.unwrap();
        assert_eq!(stored.len(), 1, "{stored:?}");
        let kid_of = |running: &gatehouse::server::Running| {
            running.gatehouse.signing_key().unwrap().kid().to_owned()
        };
        assert_eq!(kid_of(&a), stored[0].kid);
        assert_eq!(kid_of(&b), stored[0].kid);
        a.stop().await;
        b.stop().await;
        drop(database);
    }
}
