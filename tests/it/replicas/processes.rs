//! Two `gatehouse serve` processes (the real binary) on one Postgres database, with one
//! key-encryption key file as a Kubernetes Secret would mount it, and changes made by a third
//! process running `gatehouse apply`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Child;

use crate::support::binary::{created_client_id, free_port, gatehouse, wait_ready};
use crate::support::{
    ALICE_PASSWORD, TestDatabase, answer, check_request, example_policy, postgres_enabled,
};

struct Process {
    child: Child,
    grpc: u16,
    http: u16,
}

fn write_config(dir: &Path, name: &str, url: &str, grpc: u16, http: u16) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[server]\ngrpc_addr = \"127.0.0.1:{grpc}\"\nhttp_addr = \"127.0.0.1:{http}\"\n\
             [store]\nurl = \"{url}\"\n[keys]\nencryption_key_path = \"{key}\"\n\
             [tokens]\nissuer = \"https://auth.test\"\naudience = \"invoices-api\"\n",
            key = dir.join("shared-encryption-key").display(),
        ),
    )
    .unwrap();
    path
}

async fn serve(dir: &Path, name: &str, url: &str) -> Process {
    let (grpc, http) = (free_port(), free_port());
    let config = write_config(dir, name, url, grpc, http);
    let child = gatehouse()
        .args(["--config", config.to_str().unwrap(), "serve"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_ready(http).await;
    Process { child, grpc, http }
}

async fn apply(dir: &Path, url: &str, policy: &str) -> String {
    let file = dir.join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    let config = write_config(dir, "admin", url, free_port(), free_port());
    let output = gatehouse()
        .args([
            "--config",
            config.to_str().unwrap(),
            "apply",
            file.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn check(process: &Process, token: &str) -> crate::support::Answer {
    let auth = format!("Bearer {token}");
    let request = check_request(
        "GET",
        "/v1/invoices/inv-1",
        &[("authorization", &auth)],
        &[("resource_type", "invoices")],
    );
    let mut client = envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::connect(
        format!("http://127.0.0.1:{}", process.grpc),
    )
    .await
    .unwrap();
    answer(&client.check(request).await.unwrap().into_inner())
}

#[tokio::test]
async fn two_processes_share_tokens_and_a_revocation_through_a_third_is_honoured_without_restart() {
    if !postgres_enabled() {
        return;
    }
    let database = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let created = apply(dir.path(), &database.url, &example_policy()).await;
    let web = created_client_id(&created, "invoices-web");

    // The first process generates the key file; the second reads the same file.
    let a = serve(dir.path(), "a", &database.url).await;
    let b = serve(dir.path(), "b", &database.url).await;

    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/token", a.http))
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
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        check(&b, &token).await.http_status,
        200,
        "b accepts a's token"
    );
    assert_eq!(check(&a, &token).await.http_status, 200);

    let revoked = example_policy().replace("  - { role: invoice-reader, account: alice }\n", "");
    apply(dir.path(), &database.url, &revoked).await;
    let applied_at = Instant::now();
    let took = loop {
        let answer = check(&b, &token).await;
        if answer.http_status == 401 {
            assert_eq!(answer.reason(), "permissions_changed");
            break applied_at.elapsed();
        }
        assert_eq!(answer.http_status, 200);
        assert!(
            applied_at.elapsed() < Duration::from_secs(5),
            "b never saw the revocation"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(check(&a, &token).await.http_status, 401);
    eprintln!(
        "replica processes: revocation through `gatehouse apply` honoured by the other process after {took:?}"
    );

    drop((a.child, b.child));
}
