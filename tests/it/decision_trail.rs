//! One decision id, three places: gatehouse's own decision log, the header the upstream
//! receives, and Envoy's access log — so operators can join them. Runs the real binary.

use std::process::Stdio;
use std::time::Duration;

use crate::support::binary::{created_client_id, free_port, gatehouse, wait_ready};
use crate::support::envoy::{Echo, Envoy};
use crate::support::{ALICE_PASSWORD, example_policy};

#[tokio::test]
async fn decision_id_joins_gatehouse_log_upstream_header_and_envoy_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ngrpc_addr = \"127.0.0.1:{grpc}\"\nhttp_addr = \"127.0.0.1:{http}\"\n\
             [store]\nurl = \"sqlite://{db}\"\n[keys]\nencryption_key_path = \"{key}\"\n\
             [log]\nformat = \"json\"\npermit_level = \"info\"\n",
            db = dir.path().join("g.db").display(),
            key = dir.path().join("encryption-key").display(),
        ),
    )
    .unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, example_policy()).unwrap();
    let applied = gatehouse()
        .args([
            "--config",
            config.to_str().unwrap(),
            "apply",
            policy.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    assert!(applied.status.success());
    let stdout = String::from_utf8(applied.stdout).unwrap();
    let web = created_client_id(&stdout, "invoices-web");

    let log_path = dir.path().join("gatehouse.log");
    let mut server = gatehouse()
        .args(["--config", config.to_str().unwrap(), "serve"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_ready(http).await;
    let client = reqwest::Client::new();

    let echo = Echo::start().await;
    let envoy = Envoy::start(
        dir.path(),
        format!("127.0.0.1:{grpc}").parse().unwrap(),
        echo.addr,
    )
    .await;
    let body: serde_json::Value = client
        .post(format!("http://127.0.0.1:{http}/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", web.as_str()),
            ("username", "alice"),
            ("password", ALICE_PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    let response = client
        .get(envoy.url("/v1/invoices/inv-1001"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let decision_id = echo.last().values("x-gatehouse-decision-id")[0].to_owned();

    assert!(
        envoy.logs_decision(&decision_id).await,
        "decision id missing from Envoy's access log"
    );
    let mut in_gatehouse = None;
    for _ in 0..100 {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        in_gatehouse = log
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|record| {
                record["decision.id"] == decision_id.as_str() && record["decision"] == "Permit"
            });
        if in_gatehouse.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record = in_gatehouse.expect("decision id missing from gatehouse's decision log");
    // The record names the whole tuple that was evaluated (B16).
    for (field, value) in [
        ("request.method", "GET"),
        ("request.path", "/v1/invoices/inv-1001"),
        ("resource.action", "read"),
        ("resource.type", "invoices"),
        ("subject", "alice"),
    ] {
        assert_eq!(record[field], value, "{field} in {record}");
    }
    server.start_kill().unwrap();
}
