//! Rotating the signing key with the store call `gatehouse keys rotate` makes, on the test's
//! clock: the next key is published at once and signs only after the publish lead; tokens of
//! the previous key stay valid until they expire; the previous key leaves `/jwks` at its
//! `drop_at`, after which a token it signed is refused. `gatehouse keys drop` removes a key at
//! once.

use gatehouse::admin::keys::{Rotation, drop_key, rotate};
use gatehouse::clock::Clock as _;
use gatehouse::keys::SigningKey;
use gatehouse::server::read_encryption_key;
use serde_json::{Value, json};

use crate::support::{
    ALICE_PASSWORD, Backend, TestGatehouse, answer, assert_deny, assert_permit, example_policy,
    forge, on_both_backends,
};

pub async fn token(g: &TestGatehouse) -> String {
    let body = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
    body["access_token"].as_str().unwrap().to_owned()
}

pub fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The kids `/jwks` publishes, sorted, and its `max-age`.
pub async fn published(g: &TestGatehouse) -> (Vec<String>, u64) {
    let response = g.http.get(g.url("/jwks")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cache_control = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    let max_age = cache_control
        .split("max-age=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no max-age in {cache_control}"))
        .parse()
        .unwrap();
    let jwks: Value = response.json().await.unwrap();
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    (kids, max_age)
}

pub fn sorted(kids: &[&str]) -> Vec<String> {
    let mut kids: Vec<String> = kids.iter().map(|kid| (*kid).to_owned()).collect();
    kids.sort();
    kids
}

/// The HTTP status the check path answers for `token`.
pub async fn status(g: &TestGatehouse, token: &str) -> u16 {
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

/// Rotates as `gatehouse keys rotate` does, at `g`'s clock, and reloads `g`.
pub async fn rotate_now(g: &TestGatehouse) -> Rotation {
    let kek = read_encryption_key(&g.config().keys.encryption_key_path, false).unwrap();
    let store = g.running.gatehouse.store.as_ref();
    let rotation = rotate(store, &kek, g.config().rotation_settings(), g.clock.now())
        .await
        .unwrap();
    g.running.gatehouse.reload().await.unwrap();
    rotation
}

/// A token signed by `key` with alice's claims, minted now and valid for an hour.
fn forged(key: &SigningKey, alice: &str, now: i64) -> String {
    let claims = forge::payload(alice);
    let claims = forge::with(&claims, "iat", Some(json!(now)));
    let claims = forge::with(&claims, "nbf", Some(json!(now)));
    let claims = forge::with(&claims, "exp", Some(json!(now + 3600)));
    let claims = forge::with(&claims, "jti", Some(json!("forged-with-the-old-key")));
    forge::rs256(key, &forge::access_header(key), &claims)
}

async fn rotation_publishes_first_signs_after_the_lead_and_drops_after_the_last_token(
    backend: Backend,
) {
    let g = TestGatehouse::start_on(backend, &example_policy()).await;
    let k1 = g.signing_key();
    let t1 = token(&g).await;
    assert_eq!(kid(&t1), k1.kid());
    let start = g.clock.now();

    let rotation = rotate_now(&g).await;
    let k2 = rotation.kid.clone();
    let (lead, lifetime) = (300, 600 + 60);
    assert_eq!(rotation.times.publish_at, start);
    assert_eq!(rotation.times.sign_from, start + lead);
    let drop_at = start + lead + lifetime;
    assert_eq!(rotation.retiring.len(), 1);
    assert_eq!(rotation.retiring[0].0, k1.kid());
    assert_eq!(rotation.retiring[0].1.retire_at, Some(start + lead));
    assert_eq!(rotation.retiring[0].1.drop_at, Some(drop_at));

    // Published at once, not signing yet; /jwks may be cached until k2 signs, no longer.
    let (kids, max_age) = published(&g).await;
    assert_eq!(kids, sorted(&[k1.kid(), &k2]));
    assert!(max_age <= 300, "{max_age}");
    g.clock.advance(lead - 40);
    let (kids, max_age) = published(&g).await;
    assert_eq!(kids, sorted(&[k1.kid(), &k2]));
    assert!(max_age <= 40, "sign_from is 40 s away, max-age {max_age}");
    assert_eq!(kid(&token(&g).await), k1.kid(), "k2 does not sign yet");
    assert_eq!(status(&g, &t1).await, 200);

    // From sign_from on, new tokens carry k2; k1's tokens stay valid.
    g.clock.advance(40);
    let t2 = token(&g).await;
    assert_eq!(kid(&t2), k2);
    assert_eq!(status(&g, &t2).await, 200);
    assert_eq!(status(&g, &t1).await, 200);
    let (kids, max_age) = published(&g).await;
    assert_eq!(kids, sorted(&[k1.kid(), &k2]));
    assert_eq!(max_age, 300);
    let late = forged(&k1, &t1, g.clock.now());
    assert_eq!(status(&g, &late).await, 200, "k1 is trusted until drop_at");

    // T1 is refused once it has expired (exp + leeway), k1 still published.
    g.clock
        .set(forge::payload(&t1)["exp"].as_i64().unwrap() + 61);
    assert_eq!(status(&g, &t1).await, 401);
    assert_eq!(status(&g, &late).await, 200);

    // At drop_at, k1 leaves /jwks and a token it signed is refused, however long it claims
    // to live.
    g.clock.set(drop_at - 1);
    assert_eq!(published(&g).await, (sorted(&[k1.kid(), &k2]), 1));
    g.clock.set(drop_at);
    assert_eq!(published(&g).await.0, vec![k2.clone()]);
    let refused = answer(
        &g.check(
            "GET",
            "/v1/invoices/inv-1001",
            &[("authorization", &format!("Bearer {late}"))],
            &[],
        )
        .await,
    );
    assert_deny(&refused, 401);
    assert!(
        refused.www_authenticate().contains("invalid_token"),
        "{refused:?}"
    );
    let t3 = token(&g).await;
    assert_eq!(kid(&t3), k2);
    assert_permit(&answer(
        &g.check(
            "GET",
            "/v1/invoices/inv-1001",
            &[("authorization", &format!("Bearer {t3}"))],
            &[],
        )
        .await,
    ));

    // The dropped key is deleted from the store at the next reload.
    g.running.gatehouse.reload().await.unwrap();
    let stored = g.running.gatehouse.store.signing_keys().await.unwrap();
    let stored: Vec<&str> = stored.iter().map(|record| record.kid.as_str()).collect();
    assert_eq!(stored, [k2.as_str()]);
}
on_both_backends!(rotation_publishes_first_signs_after_the_lead_and_drops_after_the_last_token);

async fn dropping_a_key_refuses_its_tokens_at_once(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &example_policy()).await;
    let k1 = g.signing_key();
    let t1 = token(&g).await;
    let now = g.clock.now();
    let store = g.running.gatehouse.store.as_ref();

    let only = drop_key(store, k1.kid(), now).await.unwrap_err();
    assert!(only.to_string().contains("only key"), "{only}");
    assert_eq!(status(&g, &t1).await, 200);

    // Emergency: rotate, then drop the current key; the new one signs at once.
    let k2 = rotate_now(&g).await.kid;
    drop_key(store, k1.kid(), now).await.unwrap();
    g.running.gatehouse.reload().await.unwrap();
    assert_eq!(published(&g).await.0, vec![k2.clone()]);
    assert_eq!(status(&g, &t1).await, 401);
    let t2 = token(&g).await;
    assert_eq!(kid(&t2), k2);
    assert_eq!(status(&g, &t2).await, 200);
}
on_both_backends!(dropping_a_key_refuses_its_tokens_at_once);
