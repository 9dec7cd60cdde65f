//! Registered and gatehouse claims: `nbf`/`iat` (B05), `exp` (B06), `aud` (B07), `iss` (B08),
//! claims copied into headers (B24) and the `grants` claim.
//!
//! The configured leeway is 60 s, the maximum lifetime 86400 s, the issuer
//! `https://auth.test` and the audience `invoices-api`.

use std::time::Duration;

use gatehouse::config::{Config, ConfigError};
use serde_json::{Value, json};

use super::{Forger, assert_invalid_token, assert_permits_alice};

fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn leeway_is_sixty_seconds_and_lifetime_is_capped() {
    let f = Forger::start().await;
    let tokens = &f.g.config().tokens;
    assert_eq!(tokens.leeway_seconds, 60);
    assert_eq!(tokens.max_lifetime_seconds, 86_400);
    assert_eq!(
        f.claims["iat"], f.now,
        "the issuer and the check share the clock"
    );
}

#[tokio::test]
async fn nbf_and_future_iat_are_enforced_with_the_leeway() {
    let f = Forger::start().await;
    let now = f.now;
    let at = |nbf: Option<i64>, iat: i64, exp: i64| {
        let claims = forge_times(&f.claims, nbf, iat, exp);
        f.sign(&claims)
    };
    let denied = [
        ("nbf = now + 3600", at(Some(now + 3600), now, now + 7200)),
        ("nbf = now + 61", at(Some(now + 61), now, now + 600)),
        ("iat = now + 3600, no nbf", at(None, now + 3600, now + 7200)),
        ("iat = now + 61, no nbf", at(None, now + 61, now + 600)),
    ];
    for (case, token) in denied {
        let a = f.bearer(&token).await;
        assert_invalid_token(&a, case);
        assert_eq!(a.reason(), "token_not_yet_valid", "{case}");
    }
    let permitted = [
        ("nbf = now + 59", at(Some(now + 59), now, now + 600)),
        ("nbf = now + 60", at(Some(now + 60), now, now + 600)),
        ("iat = now + 59, no nbf", at(None, now + 59, now + 600)),
    ];
    for (case, token) in permitted {
        assert_permits_alice(&f.bearer(&token).await, case);
    }
}

#[tokio::test]
async fn exp_is_enforced_with_the_leeway() {
    let f = Forger::start().await;
    let now = f.now;
    let at = |exp: i64| f.sign(&forge_times(&f.claims, Some(now - 600), now - 600, exp));
    for exp in [now - 61, now - 60, now - 3600] {
        let a = f.bearer(&at(exp)).await;
        let case = format!("exp = now - {}", now - exp);
        assert_invalid_token(&a, &case);
        assert_eq!(a.reason(), "token_expired", "{case}");
    }
    for exp in [now - 59, now - 1, now, now + 1] {
        assert_permits_alice(
            &f.bearer(&at(exp)).await,
            &format!("exp = now {:+}", exp - now),
        );
    }
}

fn forge_times(claims: &Value, nbf: Option<i64>, iat: i64, exp: i64) -> Value {
    let claims = crate::support::forge::with(claims, "nbf", nbf.map(Value::from));
    let claims = crate::support::forge::with(&claims, "iat", Some(json!(iat)));
    crate::support::forge::with(&claims, "exp", Some(json!(exp)))
}

#[tokio::test]
async fn exp_edge_values_are_refused_without_harming_the_service() {
    let f = Forger::start().await;
    let now = f.now;
    let refused: Vec<(String, Option<Value>)> = [
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551615",
        "1e308",
        "-1",
        "0",
        "-0.5",
    ]
    .iter()
    .map(|text| ((*text).to_owned(), Some(number(text))))
    .chain([
        (
            "string number".to_owned(),
            Some(json!((now + 600).to_string())),
        ),
        (
            "date string".to_owned(),
            Some(json!("2025-06-15T15:10:00Z")),
        ),
        ("null".to_owned(), Some(Value::Null)),
        ("true".to_owned(), Some(json!(true))),
        ("array".to_owned(), Some(json!([now + 600]))),
        ("absent".to_owned(), None),
        (
            "past fraction".to_owned(),
            Some(number(&format!("{}.5", now - 10_000))),
        ),
        ("lifetime over max".to_owned(), Some(json!(now + 86_401))),
    ])
    .collect();

    for (case, exp) in &refused {
        let token = f.with_claim("exp", exp.clone());
        for _ in 0..20 {
            assert_invalid_token(&f.bearer(&token).await, case);
            assert_permits_alice(&f.bearer(&f.token).await, "interleaved valid token");
        }
    }
    for case in ["-1", "0", "past fraction"] {
        let exp = refused.iter().find(|(c, _)| c == case).unwrap().1.clone();
        let a = f.bearer(&f.with_claim("exp", exp)).await;
        assert_eq!(a.reason(), "token_expired", "{case}");
    }
    for case in [
        "9223372036854775807",
        "18446744073709551615",
        "1e308",
        "lifetime over max",
    ] {
        let exp = refused.iter().find(|(c, _)| c == case).unwrap().1.clone();
        let a = f.bearer(&f.with_claim("exp", exp)).await;
        assert_eq!(a.reason(), "token_lifetime_too_long", "{case}");
    }

    // RFC 7519 NumericDates may be fractional.
    let fractional = number(&format!("{}.5", now + 600));
    assert_permits_alice(
        &f.bearer(&f.with_claim("exp", Some(fractional))).await,
        "now + 600.5",
    );
    // A lifetime of exactly the maximum is still accepted.
    let longest = f.with_claim("exp", Some(json!(now + 86_400)));
    assert_permits_alice(&f.bearer(&longest).await, "exp = iat + max lifetime");

    // Still healthy after the barrage.
    let health =
        f.g.http
            .get(f.g.url("/healthz"))
            .timeout(Duration::from_secs(10));
    assert_eq!(health.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn aud_must_be_the_configured_audience_as_string_or_array_member() {
    let f = Forger::start().await;
    assert_eq!(f.claims["aud"], "invoices-api");
    for aud in [
        json!("invoices-api"),
        json!(["billing", "invoices-api"]),
        json!(["invoices-api"]),
    ] {
        let token = f.with_claim("aud", Some(aud.clone()));
        assert_permits_alice(&f.bearer(&token).await, &format!("aud {aud}"));
    }
    let refused = [
        Some(json!(["billing"])),
        Some(json!([["invoices-api"]])),
        Some(json!([])),
        Some(json!("")),
        Some(json!("INVOICES-API")),
        Some(json!("invoices-api ")),
        Some(json!(" invoices-api")),
        Some(json!("invoices")),
        None,
        Some(json!({"0": "invoices-api"})),
        Some(json!(null)),
        Some(json!(["billing", 7, "invoices-api"])),
    ];
    for aud in refused {
        let a = f.bearer(&f.with_claim("aud", aud.clone())).await;
        assert_invalid_token(&a, &format!("aud {aud:?}"));
        assert_eq!(a.reason(), "token_audience_mismatch", "{aud:?}");
    }
}

#[tokio::test]
async fn iss_must_equal_the_configured_issuer_exactly() {
    let f = Forger::start().await;
    assert_eq!(f.claims["iss"], "https://auth.test");
    let refused = [
        Some(json!("https://auth.test.evil.example")),
        Some(json!("https://auth.tes")),
        Some(json!("https://auth.test/")),
        Some(json!("https://AUTH.test")),
        Some(json!("http://auth.test")),
        Some(json!("")),
        None,
        Some(json!(["https://auth.test"])),
        Some(json!(null)),
    ];
    for iss in refused {
        let a = f.bearer(&f.with_claim("iss", iss.clone())).await;
        assert_invalid_token(&a, &format!("iss {iss:?}"));
        assert_eq!(a.reason(), "token_issuer_mismatch", "{iss:?}");
    }
    let exact = f.with_claim("iss", Some(json!("https://auth.test")));
    assert_permits_alice(&f.bearer(&exact).await, "exact issuer");
}

#[test]
fn empty_issuer_configuration_is_refused() {
    for issuer in ["", "   "] {
        let mut config = Config::default();
        config.tokens.issuer = issuer.into();
        match config.validate() {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "tokens.issuer"),
            other => panic!("issuer {issuer:?} accepted: {other:?}"),
        }
    }
    assert!(Config::default().validate().is_ok());
}

#[tokio::test]
async fn gatehouse_serve_refuses_to_start_with_an_empty_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(&config, "[tokens]\nissuer = \"\"\n").unwrap();
    let mut child = crate::support::binary::gatehouse()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("gatehouse kept running with an empty issuer")
        .unwrap();
    assert!(!status.success());
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("tokens.issuer"), "{stderr}");
}

#[tokio::test]
async fn sub_must_be_a_short_visible_ascii_string() {
    let f = Forger::start().await;
    let refused = [
        json!("alice\r\nx-admin: true"),
        json!("alice\nx-admin: true"),
        json!("alice\u{0}admin"),
        json!("alice\u{7f}"),
        json!("alice\t"),
        json!("alice smith"),
        json!("acct-\u{e9}"),
        json!("a".repeat(10 * 1024)),
        json!(""),
        json!(12345),
        json!({"a": 1}),
        json!(["alice"]),
        json!(null),
    ];
    for sub in refused {
        let a = f.bearer(&f.with_claim("sub", Some(sub.clone()))).await;
        let case = format!("sub {:.40}", sub.to_string());
        assert_invalid_token(&a, &case);
        assert_eq!(a.reason(), "token_claims_invalid", "{case}");
    }
    assert_invalid_token(&f.bearer(&f.with_claim("sub", None)).await, "no sub");
}

#[tokio::test]
async fn grants_claim_must_be_a_list_of_ids_or_the_database_marker() {
    let f = Forger::start().await;
    let refused = [
        None,
        Some(json!(null)),
        Some(json!("DB")),
        Some(json!("invoices.read")),
        Some(json!(1)),
        Some(json!({"invoices.read": true})),
        Some(json!([1, 2])),
        Some(json!(["invoices.read", null])),
        Some(json!([["invoices.read"]])),
    ];
    for grants in refused {
        let a = f.bearer(&f.with_claim("grants", grants.clone())).await;
        assert_invalid_token(&a, &format!("grants {grants:?}"));
        assert_eq!(a.reason(), "token_claims_invalid", "{grants:?}");
    }
    // An empty list is "no grants", not "look it up": a valid token, not allowed.
    let a = f.bearer(&f.with_claim("grants", Some(json!([])))).await;
    crate::support::assert_deny(&a, 403);
    assert_eq!(a.reason(), "not_granted");
}

/// B24 for the other claims copied into headers and logs: `client_id` becomes
/// `x-gatehouse-client-id`, `jti` is logged and listed as revoked. Both obey the rule `sub` does.
#[tokio::test]
async fn client_id_and_jti_must_be_short_visible_ascii_strings() {
    let f = Forger::start().await;
    let refused = [
        json!("web\r\nx-admin: true"),
        json!("web\nx-admin: true"),
        json!("web\u{0}admin"),
        json!("web\u{7f}"),
        json!("web client"),
        json!("caf\u{e9}"),
        json!("w".repeat(256)),
        json!(""),
        json!(12345),
        json!({"a": 1}),
        json!(null),
    ];
    for claim in ["client_id", "jti"] {
        for value in &refused {
            let a = f.bearer(&f.with_claim(claim, Some(value.clone()))).await;
            let case = format!("{claim} {:.40}", value.to_string());
            assert_invalid_token(&a, &case);
            assert_eq!(a.reason(), "token_claims_invalid", "{case}");
        }
        assert_invalid_token(&f.bearer(&f.with_claim(claim, None)).await, claim);
    }
    // The longest accepted value, and every permitted header value is visible ASCII.
    let longest = f.with_claim("jti", Some(json!("j".repeat(255))));
    let a = f.bearer(&longest).await;
    assert_permits_alice(&a, "jti of 255 bytes");
    for (name, value) in &a.headers {
        assert!(
            value.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{name}: {value:?}"
        );
    }
}
