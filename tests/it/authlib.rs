//! Authlib's OAuth 2.0 client (a library nobody here wrote) runs client credentials, the
//! authorization-code grant with PKCE by driving the sign-in form, and refresh.

use serde_json::Value;

use crate::interop::python;
use crate::support::{ALICE_CANARY, TestGatehouse, answer, assert_permit, forge, oauth_policy};

#[tokio::test]
async fn authlib_runs_client_credentials_pkce_sign_in_and_refresh() {
    let g = TestGatehouse::start(&oauth_policy()).await;
    let reports = &g.clients["svc-reports"];
    let spa = &g.clients["spa-web"];
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/authlib_flows.py");
    let base = g.url("");
    let output = tokio::process::Command::new(python())
        .args([
            script,
            base.trim_end_matches('/'),
            &reports.id,
            reports.secret.as_deref().unwrap(),
            "http://127.0.0.1/callback",
            &spa.id,
            "http://127.0.0.1/spa/callback",
            "alice",
            ALICE_CANARY,
        ])
        // The test talks plain HTTP on loopback.
        .env("AUTHLIB_INSECURE_TRANSPORT", "1")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();

    let service = results["client_credentials"]["access_token"]
        .as_str()
        .unwrap();
    assert_eq!(forge::payload(service)["sub"], reports.id.as_str());
    let code = &results["authorization_code"];
    for token in [
        code["access_token"].as_str().unwrap(),
        code["refreshed_access_token"].as_str().unwrap(),
        results["public_authorization_code"]["access_token"]
            .as_str()
            .unwrap(),
    ] {
        assert_eq!(forge::payload(token)["sub"], "alice");
        let bearer = format!("Bearer {token}");
        let decided = g
            .check(
                "GET",
                "/v1/documents/doc-42",
                &[("authorization", &bearer)],
                &[("resource_type", "documents")],
            )
            .await;
        assert_permit(&answer(&decided));
    }
    let id_token = forge::payload(code["id_token"].as_str().unwrap());
    assert_eq!(id_token["aud"], reports.id.as_str());
    assert_eq!(id_token["nonce"], "n-authlib");
}
