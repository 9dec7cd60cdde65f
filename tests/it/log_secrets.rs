//! No token, secret, password, Authorization or Cookie value reaches any log line, even at the
//! most verbose level (B33). The real binary runs with `RUST_LOG=trace`, decisions logged at
//! `trace` too, in JSON and in plain output, and replays the shapes of B01, B10, B20–B29:
//! unsigned and non-canonical tokens, refresh tokens as bearers, several and oversized
//! credentials, `?access_token=`, CR/LF in `sub`, credentials in the body, the query and Basic
//! at once, refresh grants and unknown users.

use std::process::Stdio;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use gatehouse::keys::SigningKey;

use crate::support::binary::{created_client_id, free_port, gatehouse, wait_ready};
use crate::support::{ALICE_PASSWORD, AUDITOR_PASSWORD, check_request, example_policy, forge};

#[tokio::test]
async fn secrets_never_reach_the_logs_at_trace_level() {
    replay_hostile_inputs("json").await;
}

#[tokio::test]
async fn secrets_never_reach_plain_logs_and_crlf_stays_inside_one_record() {
    replay_hostile_inputs("plain").await;
}

async fn replay_hostile_inputs(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    // Imported as the store's first signing key, so the test can sign with it too.
    let key = SigningKey::generate().unwrap();
    std::fs::write(dir.path().join("key.pem"), key.to_pem().unwrap().expose()).unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ngrpc_addr = \"127.0.0.1:{grpc}\"\nhttp_addr = \"127.0.0.1:{http}\"\n\
             [store]\nurl = \"sqlite://{db}\"\n\
             [keys]\nencryption_key_path = \"{kek}\"\nsigning_key_path = \"{key}\"\n\
             [log]\nlevel = \"trace\"\nformat = \"{format}\"\n\
             permit_level = \"trace\"\ndeny_level = \"trace\"\n",
            db = dir.path().join("g.db").display(),
            kek = dir.path().join("encryption-key").display(),
            key = dir.path().join("key.pem").display(),
        ),
    )
    .unwrap();
    let policy = dir.path().join("policy.yaml");
    // Plus a confidential client that holds real refresh tokens.
    let with_refresh = example_policy().replacen(
        "\nclients:\n",
        "\nclients:\n  - { name: reports-service, kind: confidential, \
         grant_types: [password, refresh_token], scopes: [invoices] }\n",
        1,
    );
    std::fs::write(&policy, with_refresh).unwrap();

    let applied = gatehouse()
        .args([
            "--config",
            config.to_str().unwrap(),
            "apply",
            policy.to_str().unwrap(),
        ])
        .env("RUST_LOG", "trace")
        .output()
        .await
        .unwrap();
    assert!(applied.status.success());
    let stdout = String::from_utf8(applied.stdout).unwrap();
    let field = |line: &str, name: &str| -> String {
        let start = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[start..].split_whitespace().next().unwrap().to_owned()
    };
    let service = stdout
        .lines()
        .find(|l| l.contains("\"invoice-service\""))
        .unwrap();
    let (service_id, service_secret) =
        (field(service, "client_id"), field(service, "client_secret"));
    let web_id = created_client_id(&stdout, "invoices-web");
    let reports = stdout
        .lines()
        .find(|l| l.contains("\"reports-service\""))
        .unwrap();
    let (reports_id, reports_secret) =
        (field(reports, "client_id"), field(reports, "client_secret"));
    let mut all_output = String::from_utf8_lossy(&applied.stderr).into_owned();

    // Output goes to files: a pipe nobody drains would block the server at trace level.
    let out_path = dir.path().join("serve.out");
    let err_path = dir.path().join("serve.err");
    let mut server = gatehouse()
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::from(std::fs::File::create(&out_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_ready(http).await;
    let http_client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{http}");

    let token_form = |form: &[(&str, &str)]| http_client.post(format!("{base}/token")).form(form);
    let mut tokens = Vec::new();
    for (user, password) in [
        ("alice", ALICE_PASSWORD),
        ("bulk-auditor", AUDITOR_PASSWORD),
    ] {
        let body: serde_json::Value = token_form(&[
            ("grant_type", "password"),
            ("client_id", &web_id),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    let service_token: serde_json::Value = token_form(&[("grant_type", "client_credentials")])
        .basic_auth(&service_id, Some(&service_secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens.push(service_token["access_token"].as_str().unwrap().to_owned());

    // B28 with real refresh tokens: issued, rotated, replayed, introspected and revoked.
    let oauth = |path: &str, form: &[(&str, &str)]| {
        http_client
            .post(format!("{base}{path}"))
            .basic_auth(&reports_id, Some(&reports_secret))
            .form(form)
    };
    let first: serde_json::Value = oauth(
        "/token",
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", ALICE_PASSWORD),
        ],
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let mut refresh_tokens = vec![first["refresh_token"].as_str().unwrap().to_owned()];
    tokens.push(first["access_token"].as_str().unwrap().to_owned());
    let second: serde_json::Value = oauth(
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_tokens[0]),
        ],
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    refresh_tokens.push(second["refresh_token"].as_str().unwrap().to_owned());
    tokens.push(second["access_token"].as_str().unwrap().to_owned());
    let replay = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_tokens[0].as_str()),
    ];
    oauth("/token", &replay).send().await.unwrap();
    for path in ["/introspect", "/revoke"] {
        for token in refresh_tokens.iter().chain(&tokens) {
            oauth(path, &[("token", token.as_str())])
                .send()
                .await
                .unwrap();
        }
    }

    // Refused requests carrying secrets in the wrong places.
    let canary_password = "P@ss-CANARY-1";
    let canary_secret = "S3cret-CANARY-2";
    let canary_refresh = "RT-CANARY-5";
    for form in [
        vec![
            ("grant_type", "password"),
            ("client_id", web_id.as_str()),
            ("username", "alice"),
            ("password", canary_password),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", service_id.as_str()),
            ("client_secret", canary_secret),
        ],
    ] {
        token_form(&form).send().await.unwrap();
    }
    token_form(&[("grant_type", "client_credentials")])
        .basic_auth(&service_id, Some(canary_secret))
        .send()
        .await
        .unwrap();
    // B28 (d): another client's Basic credentials presenting a refresh token.
    let canary_audit = "Audit-CANARY-3";
    token_form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh_tokens[1]),
    ])
    .basic_auth(&service_id, Some(canary_audit))
    .send()
    .await
    .unwrap();
    // B25: Basic and a body secret at once; B27/B28: refresh grants; B29: an unknown user.
    token_form(&[
        ("grant_type", "client_credentials"),
        ("client_secret", canary_secret),
    ])
    .basic_auth(&service_id, Some(&service_secret))
    .send()
    .await
    .unwrap();
    for form in [
        vec![
            ("grant_type", "refresh_token"),
            ("client_id", web_id.as_str()),
            ("refresh_token", canary_refresh),
        ],
        vec![
            ("grant_type", "password"),
            ("client_id", web_id.as_str()),
            ("username", "mallory"),
            ("password", canary_password),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("access_token", &tokens[0]),
        ],
    ] {
        token_form(&form).send().await.unwrap();
    }
    http_client
        .post(format!("{base}/token?client_secret={canary_secret}"))
        .header("cookie", "session=Cookie-CANARY-4")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();

    // Checks with tokens in every place an attacker might put them.
    let mut grpc_client = envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::connect(
        format!("http://127.0.0.1:{grpc}"),
    )
    .await
    .unwrap();
    // B01: unsigned and non-canonically encoded; B10: a refresh token as a bearer; B21:
    // oversized; B24: `sub` with CR/LF and NUL, signed with gatehouse's own key.
    let claims = forge::payload(&tokens[0]);
    let mut hostile = vec![
        format!("{}\r\nx-admin: true", tokens[0]),
        forge::unsigned(
            &serde_json::json!({"alg": "none", "typ": "at+jwt"}),
            &claims,
        ),
        format!("{}=", tokens[0]),
        canary_refresh.to_owned(),
        format!("{}{}", tokens[0], "A".repeat(20 * 1024)),
    ];
    for sub in [
        "acct-1001\r\nx-admin: true",
        "acct-1001\nx-admin: true",
        "acct-1001\u{0}admin",
    ] {
        let claims = forge::with(&claims, "sub", Some(serde_json::json!(sub)));
        hostile.push(forge::rs256(&key, &forge::access_header(&key), &claims));
    }
    for token in tokens.iter().chain(&hostile).chain(&refresh_tokens) {
        let bearer = format!("Bearer {token}");
        let query = format!("/v1/invoices/inv-1?access_token={token}");
        let joined = format!(
            "Bearer {token},Basic {}",
            STANDARD.encode("id:S3cret-CANARY-2")
        );
        let spaced = format!("bearer   {token}");
        for (target, auth) in [
            ("/v1/invoices/inv-1", bearer.as_str()),
            ("/v1/invoices/inv-1", spaced.as_str()),
            ("/v1/invoices/inv-1/../x", bearer.as_str()),
            (query.as_str(), ""),
            ("/v1/invoices/inv-1", joined.as_str()),
        ] {
            let mut headers = vec![("cookie", "session=Cookie-CANARY-4")];
            if !auth.is_empty() {
                headers.push(("authorization", auth));
            }
            let request =
                check_request("DELETE", target, &headers, &[("resource_type", "invoices")]);
            grpc_client.check(request).await.unwrap();
        }
    }

    server.start_kill().unwrap();
    let _ = server.wait().await;
    all_output.push_str(&std::fs::read_to_string(&out_path).unwrap());
    all_output.push_str(&std::fs::read_to_string(&err_path).unwrap());

    assert!(all_output.contains("decision.id"), "decisions were logged");
    assert!(all_output.contains("token issued"), "issuance was logged");
    assert!(
        all_output.contains("family revoked"),
        "the replay and the revocation were logged"
    );
    assert!(
        all_output.contains("TRACE"),
        "the most verbose level was on"
    );
    let basic = STANDARD.encode(format!("{service_id}:{service_secret}"));
    let mut forbidden = vec![
        canary_password.to_owned(),
        canary_refresh.to_owned(),
        canary_secret.to_owned(),
        canary_audit.to_owned(),
        "Cookie-CANARY-4".to_owned(),
        ALICE_PASSWORD.to_owned(),
        AUDITOR_PASSWORD.to_owned(),
        service_secret.clone(),
        basic,
        reports_secret.clone(),
    ];
    forbidden.extend(refresh_tokens.iter().cloned());
    // The random part alone, too.
    forbidden.extend(refresh_tokens.iter().map(|t| t["ghr_".len()..].to_owned()));
    for token in tokens.iter().chain(&hostile[1..2]).chain(&hostile[5..]) {
        forbidden.push(token.clone());
        // Any two-segment prefix of a JWT is already too much.
        let mut parts = token.split('.');
        forbidden.push(format!(
            "{}.{}",
            parts.next().unwrap(),
            parts.next().unwrap()
        ));
    }
    for needle in &forbidden {
        assert!(
            !all_output.contains(needle.as_str()),
            "a secret reached the logs: {}…",
            &needle[..8]
        );
    }
    assert!(
        !all_output.contains("eyJ"),
        "something JWT-shaped reached the logs"
    );
    // One event, one record: a CR or LF inside a value never starts a line of its own.
    for line in all_output.lines() {
        assert!(
            !line.trim_start().starts_with("x-admin"),
            "a claim split a record: {line}"
        );
    }
}
