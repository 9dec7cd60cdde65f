//! Reading the `authorization` header (B21): scheme casing, spacing and oversized credentials.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Forger, assert_invalid_token, assert_permits_alice};
use crate::support::{assert_deny, forge};

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_tolerates_repeated_spaces() {
    let f = Forger::start().await;
    let t = &f.token;
    for value in [
        format!("Bearer {t}"),
        format!("bearer {t}"),
        format!("BEARER {t}"),
        format!("bEaReR {t}"),
        format!("Bearer   {t}"),
    ] {
        assert_permits_alice(&f.authorize(&value).await, &value[..10]);
    }
}

#[tokio::test]
async fn malformed_bearer_values_are_invalid_tokens() {
    let f = Forger::start().await;
    let t = &f.token;
    let cases = [
        ("Bearer", "Bearer".to_owned()),
        ("Bearer + space", "Bearer ".to_owned()),
        ("Bearer + spaces", "Bearer    ".to_owned()),
        ("Bearer Bearer <T>", format!("Bearer Bearer {t}")),
        ("Bearer <T> extra", format!("Bearer {t} extra")),
        ("Bearer <T> + space", format!("Bearer {t} ")),
        ("Bearer <T> + NBSP", format!("Bearer {t}\u{a0}")),
        ("Bearer NBSP <T>", format!("Bearer \u{a0}{t}")),
    ];
    for (case, value) in cases {
        let a = f.authorize(&value).await;
        assert_invalid_token(&a, case);
        assert!(
            !a.body.to_string().contains(t.as_str()),
            "{case}: token echoed"
        );
    }
}

#[tokio::test]
async fn other_schemes_and_bare_tokens_are_missing_credentials() {
    let f = Forger::start().await;
    let t = &f.token;
    let cases = [
        ("Bearer<TAB><T>", format!("Bearer\t{t}")),
        ("Token <T>", format!("Token {t}")),
        ("<T> alone", t.clone()),
        ("<T> extra", format!("{t} extra")),
        ("Basic", "Basic dXNlcjpwdw==".to_owned()),
        ("Bearer-<T>", format!("Bearer-{t}")),
    ];
    for (case, value) in cases {
        let a = f.authorize(&value).await;
        assert_eq!((a.code, a.http_status), (16, 401), "{case}: {a:?}");
        assert_deny(&a, 401);
        assert_eq!(a.www_authenticate(), "Bearer realm=\"gatehouse\"", "{case}");
        assert_eq!(a.reason(), "missing_credentials", "{case}");
    }
}

#[tokio::test]
async fn oversized_credentials_are_refused_before_decoding() {
    let f = Forger::start().await;
    assert_eq!(f.g.config().tokens.max_token_bytes, 16 * 1024);

    let junk = forge::b64(
        (0..48 * 1024)
            .map(|_| rand::random::<u8>())
            .collect::<Vec<u8>>(),
    );
    assert!(junk.len() >= 64 * 1024);
    let padding = "x".repeat(1024 * 1024);
    let huge = f.sign(&forge::with(&f.claims, "padding", Some(json!(padding))));
    assert!(huge.len() > 1024 * 1024);
    // Just over the cap, and well-formed apart from its size.
    let over_cap = f.sign(&forge::with(
        &f.claims,
        "padding",
        Some(json!("x".repeat(12 * 1024))),
    ));
    assert!(over_cap.len() > 16 * 1024 && over_cap.len() < 20 * 1024);

    for (case, token) in [
        ("64 KiB of base64url", junk),
        ("1 MiB payload", huge),
        ("just over the cap", over_cap),
    ] {
        let started = Instant::now();
        let a = f.bearer(&token).await;
        assert_invalid_token(&a, case);
        assert_eq!(a.reason(), "token_too_large", "{case}");
        assert!(started.elapsed() < Duration::from_secs(5), "{case}");
        assert!(a.body.to_string().len() < 1024, "{case}: body echoes input");
    }
    // The service is unharmed.
    assert_permits_alice(&f.bearer(&f.token).await, "control");
}
