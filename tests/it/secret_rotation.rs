//! `gatehouse client rotate-secret`: a new secret shown once, the previous one honoured for
//! the grace period only, and every token of the client (its own and those people obtained
//! through it) stale at once on every replica.

use std::time::{Duration, Instant};

use gatehouse::admin::{AdminError, rotate_client_secret};
use gatehouse::clock::Clock;

use crate::support::binary::gatehouse;
use crate::support::{
    ALICE_CANARY, Answer, Backend, TestGatehouse, answer, assert_deny, assert_permit, oauth_policy,
    on_both_backends,
};

const DOCUMENTS: [(&str, &str); 1] = [("resource_type", "documents")];

async fn read_document(g: &TestGatehouse, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    answer(
        &g.check(
            "GET",
            "/v1/documents/doc-42",
            &[("authorization", &auth)],
            &DOCUMENTS,
        )
        .await,
    )
}

/// `/token` with Basic credentials; the status and the access token, if any.
async fn token(g: &TestGatehouse, id: &str, secret: &str, form: &[(&str, &str)]) -> (u16, String) {
    let (status, body) = g.token_request(Some((id, secret)), form).await;
    (
        status,
        body["access_token"].as_str().unwrap_or_default().to_owned(),
    )
}

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];
const ALICE: [(&str, &str); 3] = [
    ("grant_type", "password"),
    ("username", "alice"),
    ("password", ALICE_CANARY),
];

/// Asks `g` about `token` until it is refused as stale, within five seconds.
async fn wait_until_stale(g: &TestGatehouse, token: &str) {
    let started = Instant::now();
    loop {
        let a = read_document(g, token).await;
        if a.http_status == 401 {
            assert_deny(&a, 401);
            assert_eq!(a.reason(), "permissions_changed", "{a:?}");
            return;
        }
        assert_permit(&a);
        assert!(started.elapsed() < Duration::from_secs(5), "never stale");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn rotation_makes_the_clients_tokens_stale_and_keeps_the_old_secret_for_the_grace(
    backend: Backend,
) {
    let g = TestGatehouse::start_on(backend, &oauth_policy()).await;
    let replica = g.replica(|_| {}).await;
    replica.clock.set(g.clock.now());
    let id = g.clients["svc-reports"].id.clone();
    let old = g.clients["svc-reports"].secret.clone().unwrap();

    let (_, service_token) = token(&g, &id, &old, &CC).await;
    let (_, user_token) = token(&g, &id, &old, &ALICE).await;
    assert_permit(&read_document(&g, &service_token).await);
    assert_permit(&read_document(&g, &user_token).await);
    let other = g.service_token("svc-audit").await;

    let store = g.running.gatehouse.store.clone();
    let rotation = rotate_client_secret(store.as_ref(), "svc-reports", 60, g.clock.now())
        .await
        .unwrap();
    assert_eq!(rotation.client_id, id);
    let new = rotation.secret.expose().to_owned();
    assert_ne!(new, old);
    assert_eq!(new.len(), 43, "256 random bits, base64url");
    assert_eq!(rotation.previous_expires_at, Some(g.clock.now() + 60));
    // Only the hash is stored, and the client's version moved on.
    let stored = store.client(&id).await.unwrap().unwrap();
    assert_eq!(stored.version, rotation.version);
    assert_eq!(
        stored.secret_hash.as_deref(),
        Some(gatehouse::credentials::hash_client_secret(&id, &new).as_slice())
    );

    // Both kinds of token are stale: the client's own (pver) and alice's through it (cver),
    // here at once and on the replica within the reload bound; other clients' are not.
    g.running.gatehouse.reload().await.unwrap();
    for g in [&g, &replica] {
        wait_until_stale(g, &service_token).await;
        wait_until_stale(g, &user_token).await;
        assert_permit(&read_document(g, &other).await);
    }

    // During the grace period both secrets work, on every replica, and mint fresh tokens.
    for g in [&g, &replica] {
        for secret in [&old, &new] {
            let (status, fresh) = token(g, &id, secret, &CC).await;
            assert_eq!(status, 200);
            assert_permit(&read_document(g, &fresh).await);
        }
    }

    // After it only the new one does.
    g.clock.advance(60);
    replica.clock.advance(60);
    for g in [&g, &replica] {
        assert_eq!(token(g, &id, &old, &CC).await.0, 401);
        assert_eq!(token(g, &id, &new, &CC).await.0, 200);
    }
}
on_both_backends!(rotation_makes_the_clients_tokens_stale_and_keeps_the_old_secret_for_the_grace);

async fn rotation_without_grace_refuses_the_old_secret_at_once(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &oauth_policy()).await;
    let id = g.clients["svc-reports"].id.clone();
    let old = g.clients["svc-reports"].secret.clone().unwrap();
    let store = g.running.gatehouse.store.clone();

    let first = rotate_client_secret(store.as_ref(), "svc-reports", 0, g.clock.now())
        .await
        .unwrap();
    assert_eq!(first.previous_expires_at, None);
    assert_eq!(token(&g, &id, &old, &CC).await.0, 401);
    assert_eq!(token(&g, &id, first.secret.expose(), &CC).await.0, 200);

    // A second rotation within a first one's grace keeps only the secret it replaced.
    let second = rotate_client_secret(store.as_ref(), "svc-reports", 60, g.clock.now())
        .await
        .unwrap();
    let third = rotate_client_secret(store.as_ref(), "svc-reports", 60, g.clock.now())
        .await
        .unwrap();
    assert!(third.version > second.version && second.version > first.version);
    assert_eq!(token(&g, &id, first.secret.expose(), &CC).await.0, 401);
    assert_eq!(token(&g, &id, second.secret.expose(), &CC).await.0, 200);
    assert_eq!(token(&g, &id, third.secret.expose(), &CC).await.0, 200);
}
on_both_backends!(rotation_without_grace_refuses_the_old_secret_at_once);

async fn rotating_a_public_or_unknown_client_changes_nothing(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &oauth_policy()).await;
    let store = g.running.gatehouse.store.clone();
    let generation = store.generation().await.unwrap();

    let public = rotate_client_secret(store.as_ref(), "spa-web", 0, g.clock.now()).await;
    assert!(
        matches!(public, Err(AdminError::PublicClient(_))),
        "{public:?}"
    );
    let unknown = rotate_client_secret(store.as_ref(), "nobody", 0, g.clock.now()).await;
    assert!(
        matches!(unknown, Err(AdminError::UnknownClient(_))),
        "{unknown:?}"
    );
    assert_eq!(store.generation().await.unwrap(), generation);
    g.service_token("svc-reports").await;
}
on_both_backends!(rotating_a_public_or_unknown_client_changes_nothing);

#[tokio::test]
async fn rotate_secret_command_prints_the_new_secret_once_and_refuses_public_or_unknown_clients() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"sqlite://{db}\"\n[keys]\nencryption_key_path = \"{kek}\"\n",
            db = dir.path().join("gatehouse.db").display(),
            kek = dir.path().join("encryption-key").display(),
        ),
    )
    .unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, oauth_policy()).unwrap();
    let run = |args: &[&str]| {
        let mut command = gatehouse();
        command.arg("--config").arg(&config).args(args);
        command.output()
    };
    let applied = run(&["apply", policy.to_str().unwrap()]).await.unwrap();
    assert!(applied.status.success());
    let id = crate::support::binary::created_client_id(
        &String::from_utf8(applied.stdout).unwrap(),
        "svc-reports",
    );

    let rotated = run(&["client", "rotate-secret", "svc-reports", "--grace", "30"])
        .await
        .unwrap();
    assert!(rotated.status.success(), "{rotated:?}");
    let stdout = String::from_utf8(rotated.stdout).unwrap();
    assert!(
        stdout.contains("previous secret accepted for 30 s more"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("permissions changed: client {id}")),
        "{stdout}"
    );
    let secret = stdout
        .split("client_secret=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_eq!(secret.len(), 43);

    // The printed secret is the one stored (as its hash).
    let loaded = gatehouse::config::Config::load(Some(&config)).unwrap();
    let store = gatehouse::server::open_store(&loaded).await.unwrap();
    let client = store.client(&id).await.unwrap().unwrap();
    let hash = client.secret_hash.unwrap();
    assert!(gatehouse::credentials::verify_client_secret(
        &id, &secret, &hash
    ));
    assert!(client.previous_secret.is_some());

    for (name, message) in [
        (
            "spa-web",
            "client spa-web is public: it has no secret to rotate",
        ),
        ("nobody", "no client named nobody"),
    ] {
        let refused = run(&["client", "rotate-secret", name]).await.unwrap();
        assert!(!refused.status.success());
        let stderr = String::from_utf8(refused.stderr).unwrap();
        assert!(stderr.contains(message), "{stderr}");
        assert!(refused.stdout.is_empty());
    }
}

/// The issuer caches client records per store generation: a replica that has just served a
/// client refuses it on the very next request once its secret is rotated or it is disabled
/// through another process, with no reload in between.
async fn a_cached_client_is_refused_on_the_next_request_after_a_rotation_or_a_disable(
    backend: Backend,
) {
    let g = TestGatehouse::start_on(backend, &oauth_policy()).await;
    let replica = g.replica(|_| {}).await;
    let id = g.clients["svc-reports"].id.clone();
    let old = g.clients["svc-reports"].secret.clone().unwrap();
    for gatehouse in [&g, &replica] {
        assert_eq!(token(gatehouse, &id, &old, &CC).await.0, 200);
    }

    let store = g.running.gatehouse.store.clone();
    let rotated = rotate_client_secret(store.as_ref(), "svc-reports", 0, g.clock.now())
        .await
        .unwrap();
    for gatehouse in [&g, &replica] {
        assert_eq!(token(gatehouse, &id, &old, &CC).await.0, 401);
        assert_eq!(
            token(gatehouse, &id, rotated.secret.expose(), &CC).await.0,
            200
        );
    }

    let client = "  - name: svc-reports\n    kind: confidential\n";
    let disabled = oauth_policy().replacen(client, &format!("{client}    disabled: true\n"), 1);
    assert_ne!(disabled, oauth_policy());
    gatehouse::admin::apply(store.as_ref(), &disabled)
        .await
        .unwrap();
    for gatehouse in [&g, &replica] {
        assert_eq!(
            token(gatehouse, &id, rotated.secret.expose(), &CC).await.0,
            401
        );
    }
}
on_both_backends!(a_cached_client_is_refused_on_the_next_request_after_a_rotation_or_a_disable);
