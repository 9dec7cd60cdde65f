//! Decide-only sidecars trusting a central gatehouse's `/jwks`, discovery documents, tokens
//! claiming another issuer's name, and the configuration of trusted issuers.

use std::time::{Duration, Instant};

use gatehouse::config::{Config, ConfigError, KeySource, TrustedIssuerConfig};
use gatehouse::keys::SigningKey;
use serde_json::json;

use super::{
    IDP, MockJwks, assert_permits_alice, assert_unavailable, check, external_token, now, readyz,
    serve, sidecar, trusting, wait_until_ready,
};
use crate::support::{
    ALICE_PASSWORD, AUDITOR_PASSWORD, Backend, TestGatehouse, assert_deny, example_policy, forge,
    on_both_backends,
};

/// The central gatehouse's issuer name (set by the test harness).
const CENTRAL: &str = "https://auth.test";

async fn access_token(g: &TestGatehouse, username: &str, password: &str) -> String {
    let body = g.user_token("invoices-web", username, password).await;
    body["access_token"].as_str().unwrap().to_owned()
}

on_both_backends!(decide_only_sidecar_accepts_the_central_gatehouses_tokens);
async fn decide_only_sidecar_accepts_the_central_gatehouses_tokens(backend: Backend) {
    let central = TestGatehouse::start_on(backend, &example_policy()).await;
    let jwks_url = central.url("/jwks");
    // On the central gatehouse's store, trusting its /jwks, issuing nothing.
    let sidecar = central
        .replica(move |config: &mut Config| {
            config.issuer.enabled = false;
            config.issuers = vec![TrustedIssuerConfig::new(CENTRAL, KeySource::Jwks(jwks_url))];
        })
        .await;
    wait_until_ready(&sidecar).await;
    assert_eq!(readyz(&sidecar).await, 200);

    let (status, _) = sidecar
        .token_request(None, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 404, "a decide-only gatehouse serves no /token");
    let jwks = sidecar.http.get(sidecar.url("/jwks")).send().await.unwrap();
    assert_eq!(jwks.status(), 404, "nor /jwks");

    // Grants in the token, checked against the shared store's permission versions.
    let alice = access_token(&central, "alice", ALICE_PASSWORD).await;
    assert_permits_alice(&check(&sidecar, &alice).await);
    // The database marker: decided by the sidecar's query on the shared store.
    let auditor = access_token(&central, "bulk-auditor", AUDITOR_PASSWORD).await;
    assert_eq!(forge::payload(&auditor)["grants"], "db");
    let queries = sidecar.grant_queries();
    let a = check(&sidecar, &auditor).await;
    crate::support::assert_permit(&a);
    assert_eq!(a.headers["x-gatehouse-subject"], "bulk-auditor");
    assert!(sidecar.grant_queries() > queries);

    // gatehouse claims keep their meaning: a permission change makes alice's token stale.
    central
        .reapply(&example_policy().replace("  - { role: invoice-reader, account: alice }\n", ""))
        .await;
    let started = Instant::now();
    loop {
        let a = check(&sidecar, &alice).await;
        if a.http_status == 401 {
            assert_eq!(a.reason(), "permissions_changed", "{a:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{a:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn discovery_document_supplies_the_jwks_uri_and_must_name_the_issuer() {
    let k1 = SigningKey::generate().unwrap();
    let mock = MockJwks::start(serve(&[&k1])).await;
    let discovery = TrustedIssuerConfig::new(IDP, KeySource::Discovery(mock.discovery_url()));
    let g = sidecar(discovery.clone()).await;
    wait_until_ready(&g).await;
    assert_permits_alice(&check(&g, &external_token(&k1, now(&g))).await);

    // Metadata naming another issuer is refused: its keys are never used.
    let impostor = MockJwks::start(serve(&[&k1])).await;
    impostor.set_discovery_issuer("https://impostor.test");
    let g = sidecar(TrustedIssuerConfig::new(
        IDP,
        KeySource::Discovery(impostor.discovery_url()),
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(readyz(&g).await, 503);
    assert_unavailable(&check(&g, &external_token(&k1, now(&g))).await);
    assert_eq!(
        impostor.hits(),
        0,
        "the key set named by a wrong document is never fetched"
    );
}

#[tokio::test]
async fn a_token_must_claim_the_issuer_whose_key_signed_it() {
    let idp_key = SigningKey::generate().unwrap();
    let mock = MockJwks::start(serve(&[&idp_key])).await;
    // gatehouse issuing as CENTRAL and also trusting IDP.
    let trusted = trusting(&mock, |_| {});
    let g = TestGatehouse::start_with(&example_policy(), move |config: &mut Config| {
        config.issuers = vec![trusted];
    })
    .await;
    wait_until_ready(&g).await;
    let own = access_token(&g, "alice", ALICE_PASSWORD).await;
    let own_claims = forge::payload(&own);
    assert_permits_alice(&check(&g, &own).await);
    assert_permits_alice(&check(&g, &external_token(&idp_key, now(&g))).await);

    // The IdP's key signing gatehouse's claims and name; gatehouse's key claiming the IdP.
    let forged = [
        forge::rs256(&idp_key, &forge::access_header(&idp_key), &own_claims),
        forge::rs256(
            &g.signing_key(),
            &forge::access_header(&g.signing_key()),
            &forge::with(&own_claims, "iss", Some(json!(IDP))),
        ),
    ];
    for token in forged {
        let a = check(&g, &token).await;
        assert_deny(&a, 401);
        assert_eq!(a.reason(), "token_issuer_mismatch", "{a:?}");
    }

    // An external token's `scope`, when present, narrows like gatehouse's own.
    let scoped = forge::with(
        &forge::payload(&external_token(&idp_key, now(&g))),
        "scope",
        Some(json!("ledger")),
    );
    let a = check(
        &g,
        &forge::rs256(&idp_key, &forge::access_header(&idp_key), &scoped),
    )
    .await;
    assert_deny(&a, 403);
    assert_eq!(a.reason(), "scope_lacks_resource_type");
    assert_eq!(mock.hits(), 1);
}

fn invalid_key(config: &Config) -> &'static str {
    match config.validate() {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("accepted: {other:?}"),
    }
}

#[test]
fn trusted_issuers_are_validated() {
    let entry = || TrustedIssuerConfig::new(IDP, KeySource::Jwks("https://idp.test/jwks".into()));
    let with = |adjust: &dyn Fn(&mut TrustedIssuerConfig)| {
        let mut config = Config::default();
        let mut trusted = entry();
        adjust(&mut trusted);
        config.issuers = vec![trusted];
        config
    };
    assert!(with(&|_| {}).validate().is_ok());

    let mut decide_only = Config::default();
    decide_only.issuer.enabled = false;
    assert_eq!(invalid_key(&decide_only), "issuers");

    assert_eq!(
        invalid_key(&with(&|t| t.issuer = String::new())),
        "issuers.issuer"
    );
    assert_eq!(
        invalid_key(&with(&|t| t.issuer = " ".into())),
        "issuers.issuer"
    );
    let both = |t: &mut TrustedIssuerConfig| {
        t.discovery_url = Some("https://idp.test/.well-known/openid-configuration".into())
    };
    assert_eq!(invalid_key(&with(&both)), "issuers.jwks_url");
    assert_eq!(
        invalid_key(&with(&|t| t.jwks_url = None)),
        "issuers.jwks_url"
    );
    for url in [
        "idp.test/jwks",
        "file:///etc/passwd",
        "https://user:pw@idp.test/jwks",
    ] {
        let bad = |t: &mut TrustedIssuerConfig| t.jwks_url = Some(url.into());
        assert_eq!(invalid_key(&with(&bad)), "issuers.jwks_url", "{url}");
    }
    assert_eq!(
        invalid_key(&with(&|t| t.audience = Some(String::new()))),
        "issuers.audience"
    );
    assert_eq!(
        invalid_key(&with(&|t| t.refresh_interval_seconds = 0)),
        "issuers.refresh_interval_seconds"
    );
    assert_eq!(
        invalid_key(&with(&|t| t.max_stale_seconds = 10)),
        "issuers.max_stale_seconds"
    );
    assert_eq!(
        invalid_key(&with(&|t| t.refetch_cooldown_seconds = 0)),
        "issuers.refetch_cooldown_seconds"
    );
    assert_eq!(
        invalid_key(&with(&|t| t.fetch_timeout_ms = 0)),
        "issuers.fetch_timeout_ms"
    );
    // gatehouse's own name, while it issues under that name.
    let own = Config::default().tokens.issuer;
    assert_eq!(
        invalid_key(&with(&|t| t.issuer = own.clone())),
        "issuers.issuer"
    );

    let mut twice = with(&|_| {});
    twice.issuers.push(entry());
    assert_eq!(invalid_key(&twice), "issuers.issuer");
}

#[test]
fn trusted_issuers_are_read_from_toml_with_their_defaults() {
    let config: Config = toml::from_str(
        r#"
        [issuer]
        enabled = false

        [[issuers]]
        issuer = "https://auth.example.com"
        jwks_url = "https://auth.example.com/jwks"
        "#,
    )
    .unwrap();
    config.validate().unwrap();
    let trusted = &config.issuers[0];
    assert_eq!(
        (
            trusted.refresh_interval_seconds,
            trusted.max_stale_seconds,
            trusted.refetch_cooldown_seconds,
            trusted.fetch_timeout_ms,
        ),
        (300, 3600, 30, 2000)
    );
    assert_eq!(trusted.verify_policy(&config.tokens).audience, "gatehouse");
}
