//! Clients nobody here wrote: PyJWT verifies gatehouse's tokens against `/jwks` (named directly,
//! or found through the discovery document), and jsonwebtoken (a Rust library gatehouse does
//! not use at run time) mints tokens gatehouse accepts.

use std::path::Path;

use crate::support::{
    ALICE_PASSWORD, TestGatehouse, answer, assert_deny, assert_permit, example_policy, forge,
    oauth_policy,
};

pub(crate) fn python() -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    assert!(
        path.exists(),
        "{} missing: run scripts/install-envoy.sh",
        path.display()
    );
    path
}

#[tokio::test]
async fn pyjwt_verifies_tokens_with_the_published_jwks() {
    let g = TestGatehouse::start(&example_policy()).await;
    let body = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/pyjwt_verify.py");
    let jwks = g.url("/jwks");
    let output = tokio::process::Command::new(python())
        .args([script, &jwks, &token, "https://auth.test", "invoices-api"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verified: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verified["header"]["typ"], "at+jwt");
    assert_eq!(verified["claims"]["sub"], "alice");
    assert_eq!(
        verified["claims"]["client_id"],
        g.clients["invoices-web"].id.as_str()
    );

    // PyJWT refuses a token whose payload was altered.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] =
        forge::b64(forge::with(&forge::payload(&token), "sub", Some("mallory".into())).to_string());
    let tampered = parts.join(".");
    let output = tokio::process::Command::new(python())
        .args([
            script,
            &jwks,
            &tampered,
            "https://auth.test",
            "invoices-api",
        ])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
}

#[tokio::test]
async fn pyjwt_finds_the_keys_through_discovery_and_verifies_tokens() {
    let g = TestGatehouse::start_at_own_url(&oauth_policy()).await;
    let base = g.url("");
    assert_eq!(g.config().tokens.issuer, base);
    let token = g.service_token("svc-reports").await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/pyjwt_discovery.py"
    );
    let run = |token: String| {
        tokio::process::Command::new(python())
            .args([script, &base, &token, "invoices-api"])
            .output()
    };

    let output = run(token.clone()).await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verified: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verified["jwks_uri"], format!("{base}/jwks"));
    assert_eq!(verified["claims"]["iss"], base.as_str());
    assert_eq!(
        verified["claims"]["sub"],
        g.clients["svc-reports"].id.as_str()
    );

    // A token whose payload was altered is refused.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = forge::b64(
        forge::with(
            &forge::payload(&token),
            "scope",
            Some("documents admin".into()),
        )
        .to_string(),
    );
    let output = run(parts.join(".")).await.unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Signature verification failed"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn tokens_minted_by_an_independent_library_are_accepted_only_with_at_jwt_type() {
    let g = TestGatehouse::start(&example_policy()).await;
    let real = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
    let claims = forge::payload(real["access_token"].as_str().unwrap());
    let pem = g.signing_key().to_pem().unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose().as_bytes()).unwrap();

    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(g.signing_key().kid().to_owned());
    header.typ = Some("at+jwt".into());
    let minted = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let auth = format!("Bearer {minted}");
    let extensions = [("resource_type", "invoices")];
    assert_permit(&answer(
        &g.check(
            "GET",
            "/v1/invoices/1",
            &[("authorization", &auth)],
            &extensions,
        )
        .await,
    ));

    header.typ = Some("JWT".into());
    let id_like = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let auth = format!("Bearer {id_like}");
    let a = answer(
        &g.check(
            "GET",
            "/v1/invoices/1",
            &[("authorization", &auth)],
            &extensions,
        )
        .await,
    );
    assert_deny(&a, 401);
    assert_eq!(a.reason(), "token_type_refused");
}
