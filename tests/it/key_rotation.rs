//! Rotating the signing key with `[keys] extra_public_keys`, replica by replica:
//! (1) publish the next key everywhere, (2) sign with it and keep the old one as an extra key,
//! (3) after the longest token lifetime, drop the old key. A token stays valid until its key
//! is dropped, and a token of a dropped key is refused.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use gatehouse::keys::SigningKey;
use serde_json::Value;

use crate::support::{
    ALICE_PASSWORD, TestGatehouse, answer, assert_deny, assert_permit, example_policy,
};

/// Writes `key` as PKCS#8 PEM (`private.pem`) and its public half as SPKI PEM (`public.pem`)
/// under `dir/name`.
fn write_key(dir: &Path, name: &str, key: &SigningKey) -> (PathBuf, PathBuf) {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let private_pem = key.to_pem().unwrap();
    let private = folder.join("private.pem");
    std::fs::write(&private, private_pem.expose()).unwrap();

    let der = pem::parse(private_pem.expose()).unwrap();
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(der.contents()).unwrap();
    let spki = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
    let public = folder.join("public.pem");
    std::fs::write(
        &public,
        pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec())),
    )
    .unwrap();
    (private, public)
}

async fn token(g: &TestGatehouse) -> String {
    let body = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
    body["access_token"].as_str().unwrap().to_owned()
}

fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn published(g: &TestGatehouse) -> Vec<String> {
    let jwks: Value = g
        .http
        .get(g.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| {
            assert!(key.get("d").is_none(), "only public members are published");
            key["kid"].as_str().unwrap().to_owned()
        })
        .collect();
    kids.sort();
    kids
}

fn sorted(mut kids: Vec<String>) -> Vec<String> {
    kids.sort();
    kids
}

async fn status(g: &TestGatehouse, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    let response = g
        .check(
            "GET",
            "/v1/invoices/inv-1001",
            &[("authorization", &auth)],
            &[],
        )
        .await;
    answer(&response).http_status as u16
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_the_old_key_is_dropped() {
    // Before: every replica signs with the old key.
    let before = TestGatehouse::start(&example_policy()).await;
    let old = before.signing_key();
    let old_token = token(&before).await;
    assert_eq!(kid(&old_token), old.kid());

    let next = SigningKey::generate().unwrap();
    let dir = before.dir.path();
    let old_private = before.config().keys.signing_key_path.clone();
    let (next_private, next_public) = write_key(dir, "next", &next);

    // (1) Publish the next key (its public half only) on every replica.
    let step1 = before
        .replica(|c| c.keys.extra_public_keys = vec![next_public.clone()])
        .await;
    assert_eq!(
        published(&step1).await,
        sorted(vec![old.kid().to_owned(), next.kid().to_owned()])
    );
    let step1_token = token(&step1).await;
    assert_eq!(kid(&step1_token), old.kid(), "an extra key never signs");
    assert_eq!(status(&step1, &old_token).await, 200);

    // (2) Sign with the next key; the old one stays as an extra key.
    let step2 = before
        .replica(|c| {
            c.keys.signing_key_path = next_private.clone();
            c.keys.extra_public_keys = vec![old_private.clone()];
        })
        .await;
    let new_token = token(&step2).await;
    assert_eq!(kid(&new_token), next.kid());
    assert_eq!(
        published(&step2).await,
        sorted(vec![old.kid().to_owned(), next.kid().to_owned()])
    );
    // Old tokens still pass everywhere; new tokens pass on replicas still at step 1.
    assert_eq!(status(&step2, &old_token).await, 200);
    assert_eq!(status(&step2, &new_token).await, 200);
    assert_eq!(status(&step1, &new_token).await, 200);
    // A replica not yet at step 1 would refuse new tokens: why step 1 comes first.
    assert_eq!(status(&before, &new_token).await, 401);

    // (3) After the longest token lifetime, drop the old key.
    let step3 = before
        .replica(|c| {
            c.keys.signing_key_path = next_private.clone();
            c.keys.extra_public_keys = Vec::new();
        })
        .await;
    assert_eq!(published(&step3).await, vec![next.kid().to_owned()]);
    assert_eq!(status(&step3, &new_token).await, 200);
    let auth = format!("Bearer {old_token}");
    let refused = answer(
        &step3
            .check(
                "GET",
                "/v1/invoices/inv-1001",
                &[("authorization", &auth)],
                &[],
            )
            .await,
    );
    assert_deny(&refused, 401);
    assert!(
        refused.www_authenticate().contains("invalid_token"),
        "{refused:?}"
    );
    let permitted = answer(
        &step3
            .check(
                "GET",
                "/v1/invoices/inv-1001",
                &[("authorization", &format!("Bearer {new_token}"))],
                &[],
            )
            .await,
    );
    assert_permit(&permitted);
}

#[tokio::test]
async fn an_unreadable_extra_key_stops_start_up_with_its_path() {
    let g = TestGatehouse::start(&example_policy()).await;
    let missing = g.dir.path().join("missing.pem");
    let garbage = g.dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for path in [missing, garbage] {
        let mut config = g.config().clone();
        config.server.grpc_addr = "127.0.0.1:0".parse().unwrap();
        config.server.http_addr = "127.0.0.1:0".parse().unwrap();
        config.keys.extra_public_keys = vec![path.clone()];
        let clock = std::sync::Arc::new(gatehouse::clock::SystemClock);
        let error = gatehouse::server::spawn(config, clock).await.unwrap_err();
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }
}
