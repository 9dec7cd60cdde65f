//! Signing keys kept in the store: `/jwks` (B15), the private keys sealed under the
//! key-encryption key file, start-up with a wrong or missing one, importing a PEM key, and the
//! `gatehouse keys` command against a running gatehouse.

mod replicas;

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::clock::{Clock as _, SystemClock};
use gatehouse::keys::{KeyEncryptionKey, SigningKey};
use serde_json::Value;
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::key_rotation::{kid, published, rotate_now, sorted, status, token};
use crate::support::binary::gatehouse;
use crate::support::{Backend, TestGatehouse, example_policy, on_both_backends};

/// Private or symmetric JWK members that must never be published (RFC 7518 §6.3.2, §6.4.1).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// `GET /jwks`: asserts B15's expectations on the answer and returns its kids.
async fn public_keys_only(g: &TestGatehouse) -> Vec<String> {
    let response = g.http.get(g.url("/jwks")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cache_control = response.headers()["cache-control"].to_str().unwrap();
    assert!(cache_control.contains("max-age="), "{cache_control}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let mut kids = Vec::new();
    for key in body["keys"].as_array().unwrap() {
        let mut names: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"], "{key}");
        for member in PRIVATE_MEMBERS {
            assert!(key.get(member).is_none(), "{member} published: {key}");
        }
        assert_eq!(key["kty"], "RSA", "no oct (or other) keys: {key}");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], "RS256");
        kids.push(key["kid"].as_str().unwrap().to_owned());
    }
    kids.sort();
    kids
}

async fn jwks_publishes_public_members_only_in_steady_state_and_mid_rotation(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &example_policy()).await;
    let k1 = g.signing_key();
    assert_eq!(public_keys_only(&g).await, [k1.kid()]);

    let k2 = rotate_now(&g).await.kid;
    assert_eq!(public_keys_only(&g).await, sorted(&[k1.kid(), &k2]));

    let post = g.http.post(g.url("/jwks")).send().await.unwrap();
    assert_eq!(post.status(), 405);
}
on_both_backends!(jwks_publishes_public_members_only_in_steady_state_and_mid_rotation);

async fn private_keys_are_stored_sealed_under_the_encryption_key(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &example_policy()).await;
    let url = &g.config().store.url;
    let sql = "SELECT kid, private_key, public_jwk FROM signing_keys";
    let rows: Vec<(String, Vec<u8>, String)> = match backend {
        Backend::Sqlite => {
            let mut connection = SqliteConnection::connect(url).await.unwrap();
            sqlx::query_as(sql)
                .fetch_all(&mut connection)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut connection = PgConnection::connect(url).await.unwrap();
            sqlx::query_as(sql)
                .fetch_all(&mut connection)
                .await
                .unwrap()
        }
    };
    let key = g.signing_key();
    let der = key.to_pkcs8_der().unwrap();
    let [(kid, sealed, public)] = rows.as_slice() else {
        panic!("one key expected: {rows:?}");
    };
    assert_eq!(kid, key.kid());
    assert!(!String::from_utf8_lossy(sealed).contains("PRIVATE KEY"));
    assert_ne!(sealed, &der);
    assert!(
        !sealed
            .windows(64)
            .any(|window| der.windows(64).any(|d| d == window))
    );
    let public: Value = serde_json::from_str(public).unwrap();
    assert!(public.get("d").is_none(), "{public}");

    // Only the key-encryption key opens it.
    let path = &g.config().keys.encryption_key_path;
    let kek = KeyEncryptionKey::from_text(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(kek.open(kid, sealed).unwrap().kid(), kid);
    let other = KeyEncryptionKey::generate().unwrap();
    assert!(other.open(kid, sealed).is_err());
}
on_both_backends!(private_keys_are_stored_sealed_under_the_encryption_key);

#[tokio::test]
async fn the_encryption_key_is_generated_once_with_mode_0600() {
    let g = TestGatehouse::start(&example_policy()).await;
    let path = g.config().keys.encryption_key_path.clone();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        KeyEncryptionKey::from_text(&text).is_ok(),
        "32 bytes of base64"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second start on the same store keeps the file and the key.
    let replica = g.replica(|_| {}).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert_eq!(replica.signing_key().kid(), g.signing_key().kid());
}

/// Starts a gatehouse on `g`'s store with another encryption key file; the error.
async fn start_error(g: &TestGatehouse, kek_path: &Path) -> String {
    let mut config = g.config().clone();
    config.server.grpc_addr = "127.0.0.1:0".parse().unwrap();
    config.server.http_addr = "127.0.0.1:0".parse().unwrap();
    config.keys.encryption_key_path = kek_path.to_owned();
    let clock = std::sync::Arc::new(gatehouse::clock::SystemClock);
    match gatehouse::server::spawn(config, clock).await {
        Ok(_) => panic!("started with the encryption key {}", kek_path.display()),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn a_wrong_or_missing_encryption_key_stops_start_up_naming_the_file() {
    let g = TestGatehouse::start(&example_policy()).await;
    let wrong = g.dir.path().join("wrong-key");
    let other = KeyEncryptionKey::generate().unwrap();
    std::fs::write(&wrong, other.to_text().expose()).unwrap();
    let error = start_error(&g, &wrong).await;
    assert!(error.contains(&wrong.display().to_string()), "{error}");
    assert!(error.contains("does not open signing key"), "{error}");

    let garbage = g.dir.path().join("garbage-key");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let error = start_error(&g, &garbage).await;
    assert!(error.contains(&garbage.display().to_string()), "{error}");

    // Missing while the store holds keys: never silently replaced by a new one.
    let missing = g.dir.path().join("missing-key");
    let error = start_error(&g, &missing).await;
    assert!(error.contains(&missing.display().to_string()), "{error}");
    assert!(!missing.exists());
    assert_eq!(public_keys_only(&g).await, [g.signing_key().kid()]);
}

#[tokio::test]
async fn a_pem_signing_key_is_imported_only_into_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let old = SigningKey::generate().unwrap();
    let pem = dir.path().join("old-signing-key.pem");
    std::fs::write(&pem, old.to_pem().unwrap().expose()).unwrap();
    let g = TestGatehouse::start_with(&example_policy(), |config| {
        config.keys.signing_key_path = Some(pem.clone());
    })
    .await;
    assert_eq!(g.signing_key().kid(), old.kid());
    assert_eq!(kid(&token(&g).await), old.kid());

    // The store holds a key now: another file is not imported.
    let other = SigningKey::generate().unwrap();
    std::fs::write(&pem, other.to_pem().unwrap().expose()).unwrap();
    let replica = g.replica(|_| {}).await;
    assert_eq!(replica.signing_key().kid(), old.kid());
}

/// Runs `gatehouse keys ARGS` on `g`'s store and encryption key; status and standard output.
pub async fn keys_command(g: &TestGatehouse, args: &[&str]) -> (bool, String) {
    let config = g.dir.path().join("keys-command.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nencryption_key_path = \"{}\"\n",
            g.config().store.url,
            g.config().keys.encryption_key_path.display()
        ),
    )
    .unwrap();
    let output = gatehouse()
        .arg("--config")
        .arg(&config)
        .arg("keys")
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stdout.contains("PRIVATE") && !stderr.contains("PRIVATE"));
    (output.status.success(), format!("{stdout}{stderr}"))
}

/// Waits until `g` publishes exactly `kids`; how long that took.
pub async fn until_published(g: &TestGatehouse, kids: &[String]) -> Duration {
    let started = Instant::now();
    while published(g).await.0 != kids {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{kids:?} not published"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn the_keys_command_rotates_lists_and_drops_while_gatehouse_runs() {
    let g = TestGatehouse::start(&example_policy()).await;
    let k1 = g.signing_key().kid().to_owned();
    let t1 = token(&g).await;

    let (ok, listed) = keys_command(&g, &["list"]).await;
    assert!(ok, "{listed}");
    assert!(listed.starts_with(&format!("{k1}\tsigning\t")), "{listed}");

    let (ok, rotated) = keys_command(&g, &["rotate"]).await;
    assert!(ok, "{rotated}");
    // The command runs on the system clock; gatehouse's agrees with it.
    g.clock.set(SystemClock.now());
    let k2 = rotated
        .strip_prefix("new key ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("{rotated}"))
        .to_owned();
    assert!(
        rotated.contains(&format!("key {k1}: signs until ")),
        "{rotated}"
    );
    // The running gatehouse finds the change by polling the store.
    until_published(&g, &sorted(&[&k1, &k2])).await;
    let (_, listed) = keys_command(&g, &["list"]).await;
    assert!(listed.contains(&format!("{k2}\tpending\t")), "{listed}");
    assert!(listed.contains(&format!("{k1}\tsigning\t")), "{listed}");

    let (ok, refused) = keys_command(&g, &["drop", "no-such-kid"]).await;
    assert!(!ok && refused.contains("no key no-such-kid"), "{refused}");
    let (ok, dropped) = keys_command(&g, &["drop", &k1]).await;
    assert!(ok, "{dropped}");
    until_published(&g, std::slice::from_ref(&k2)).await;
    assert_eq!(status(&g, &t1).await, 401);
    assert_eq!(kid(&token(&g).await), k2);
    let (ok, only) = keys_command(&g, &["drop", &k2]).await;
    assert!(!ok && only.contains("only key"), "{only}");
}

/// A `kid` is a base64url thumbprint and may begin with `-`: the command reads it as the kid,
/// never as an option.
#[tokio::test]
async fn a_kid_beginning_with_a_hyphen_is_read_as_a_kid() {
    let g = TestGatehouse::start(&example_policy()).await;
    let (ok, refused) = keys_command(&g, &["drop", "-e0K2wQ"]).await;
    assert!(!ok && refused.contains("no key -e0K2wQ"), "{refused}");
}
