//! The signing key rotated by `gatehouse keys rotate` (the real command, on the store of a
//! running `gatehouse serve`) while load runs with tokens minted before and after: no wrong
//! decision, no 401 for a valid token, tokens of the previous key honoured throughout, and the
//! previous key kept until the last token it signed has expired.
//!
//! The configuration shortens the schedule to seconds: `jwks_max_age_seconds = 1`,
//! `publish_lead_seconds = 2`.

use std::time::{Duration, Instant};

use gatehouse::config::Config;
use reqwest::Method;

use super::process::{Deployment, created_client_secret};
use super::{Load, Probe, sidecar};
use crate::key_rotation::kid;
use crate::support::binary::created_client_id;
use crate::support::envoy::Echo;
use crate::support::{Backend, example_policy, forge};

const INVOICE: &str = "/v1/invoices/inv-1";
const PUBLISH_LEAD: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotated_mid_load_changes_no_decision_and_old_tokens_stay_valid() {
    let mut d = Deployment::new(
        Backend::Sqlite,
        "jwks_max_age_seconds = 1\npublish_lead_seconds = 2",
    )
    .await;
    let created = d.apply(&example_policy()).await;
    let (id, secret) = (
        created_client_id(&created, "invoice-service"),
        created_client_secret(&created, "invoice-service"),
    );
    d.serve().await;
    let echo = Echo::start().await;
    let envoy = sidecar(d.log_dir(), d.grpc_addr(), &echo).await;

    let before = d.service_token(&id, &secret).await;
    let k1 = kid(&before);
    let attacker = gatehouse::keys::SigningKey::generate().unwrap();
    let header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": k1});
    let forged = forge::rs256(&attacker, &header, &forge::payload(&before));
    let probes = vec![
        Probe::permit("before_rotation", Method::GET, INVOICE, Some(&before)),
        Probe::deny(
            "before_rotation_delete",
            403,
            Method::DELETE,
            INVOICE,
            Some(&before),
        ),
        Probe::deny("forged", 401, Method::GET, INVOICE, Some(&forged)),
        Probe::deny("no_token", 401, Method::GET, INVOICE, None),
    ];
    let mut load = Load::start("key_rotation", envoy.url(""), probes);
    load.run_for(Duration::from_secs(1)).await;

    load.fault_begins();
    let (ok, rotated, errors) = d.command(&["keys", "rotate"]).await;
    assert!(ok, "{errors}");
    load.fault_ends();
    let rotated_at = Instant::now();
    let k2 = rotated
        .strip_prefix("new key ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("{rotated}"))
        .to_owned();

    // Tokens minted every 200 ms join the load: first still signed by k1, then by k2.
    let mut minted = vec![forge::payload(&before)];
    let mut first_k2: Option<Instant> = None;
    while first_k2.is_none_or(|at| at.elapsed() < Duration::from_secs(1)) {
        assert!(
            rotated_at.elapsed() < PUBLISH_LEAD + Duration::from_secs(8),
            "no token signed by the new key"
        );
        let token = d.service_token(&id, &secret).await;
        let signer = kid(&token);
        let name = if signer == k2 && first_k2.is_none() {
            first_k2 = Some(Instant::now());
            // The first token of the new key marks recovery.
            "first_new_key".to_owned()
        } else {
            assert!(signer == k1 || signer == k2, "signed by a third key");
            format!("minted_{}", minted.len())
        };
        let probe = Probe::permit(&name, Method::GET, INVOICE, Some(&token));
        load.add(if name == "first_new_key" {
            probe.marking_recovery()
        } else {
            probe
        });
        let mut claims = forge::payload(&token);
        claims["kid"] = signer.into();
        minted.push(claims);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_k2_after = first_k2.unwrap() - rotated_at;
    load.until_recovered().await;
    load.run_for(Duration::from_secs(1)).await;
    let report = load.finish(&echo).await;
    report.print(&format!(
        " tokens_minted={} new_key_signing_after_ms={}",
        minted.len(),
        first_k2_after.as_millis()
    ));

    report.assert_clean();
    assert_eq!(report.tolerated, 0);

    // The schedule the command wrote: k2 signs exactly from its sign_from on, and k1 is kept
    // until the last token it signed has expired.
    let mut config = Config::default();
    config.store.url = d.store_url.clone();
    let store = gatehouse::server::open_store(&config).await.unwrap();
    let keys = store.signing_keys().await.unwrap();
    let times = |kid: &str| keys.iter().find(|key| key.kid == kid).unwrap().times;
    let sign_from = times(&k2).sign_from;
    let drop_at = times(&k1).drop_at.expect("k1 is scheduled to be dropped");
    for claims in &minted[1..] {
        let iat = claims["iat"].as_i64().unwrap();
        let new_key = claims["kid"] == k2.as_str();
        assert_eq!(
            new_key,
            iat >= sign_from,
            "iat {iat}, sign_from {sign_from}"
        );
    }
    let last_k1_exp = minted
        .iter()
        .filter(|claims| claims["kid"] != k2.as_str())
        .map(|claims| claims["exp"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(
        drop_at >= last_k1_exp,
        "k1 dropped at {drop_at}, before its last token expires at {last_k1_exp}"
    );
}
