//! Operating gatehouse: configuration precedence and refusal, readiness on gRPC health and
//! `/readyz`, Prometheus counters after real traffic through Envoy, and a SIGTERM that lets an
//! in-flight request finish. Configuration and shutdown run the real binary.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use gatehouse::config::Config;
use gatehouse::keys::SigningKey;
use tokio::process::Child;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::issuers::{Behaviour, MockJwks, serve, trusting};
use crate::support::binary::{created_client_id, free_port, gatehouse};
use crate::support::envoy::{Echo, Envoy};
use crate::support::{ALICE_PASSWORD, TestGatehouse, example_policy};

const EVENTUALLY: Duration = Duration::from_secs(20);

/// A configuration file in `dir` with its own store and key, listening on the given ports.
fn config_file(dir: &Path, grpc: u16, http: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.join("gatehouse.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\ngrpc_addr = \"127.0.0.1:{grpc}\"\nhttp_addr = \"127.0.0.1:{http}\"\n\
             [store]\nurl = \"sqlite://{db}\"\n[keys]\nencryption_key_path = \"{key}\"\n{extra}",
            db = dir.join("g.db").display(),
            key = dir.join("encryption-key").display(),
        ),
    )
    .unwrap();
    path
}

/// `gatehouse --config FILE serve` with `env`, output to files in `dir`.
fn serve_binary(dir: &Path, config: &Path, env: &[(&str, &str)], args: &[&str]) -> Child {
    let mut command = gatehouse();
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .arg("serve")
        .stdout(Stdio::from(
            std::fs::File::create(dir.join("serve.out")).unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("serve.err")).unwrap(),
        ))
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().unwrap()
}

/// Waits until `GET url` answers at all; panics after [`EVENTUALLY`].
async fn wait_for(url: &str) -> reqwest::Response {
    let started = Instant::now();
    loop {
        if let Ok(response) = reqwest::get(url).await {
            return response;
        }
        assert!(started.elapsed() < EVENTUALLY, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn environment_overrides_the_file_and_flags_override_both() {
    let dir = tempfile::tempdir().unwrap();
    let (file_grpc, file_http, env_grpc, env_http, flag_grpc) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let config = config_file(dir.path(), file_grpc, file_http, "");
    let env_http_addr = format!("127.0.0.1:{env_http}");
    let env_grpc_addr = format!("127.0.0.1:{env_grpc}");
    let flag_grpc_addr = format!("127.0.0.1:{flag_grpc}");
    let mut server = serve_binary(
        dir.path(),
        &config,
        &[
            ("GATEHOUSE_SERVER__HTTP_ADDR", &env_http_addr),
            ("GATEHOUSE_SERVER__GRPC_ADDR", &env_grpc_addr),
        ],
        &["--grpc-addr", &flag_grpc_addr],
    );

    let healthz = wait_for(&format!("http://{env_http_addr}/healthz")).await;
    assert_eq!(healthz.status(), 200, "the environment's HTTP port answers");
    assert!(
        reqwest::get(format!("http://127.0.0.1:{file_http}/healthz"))
            .await
            .is_err(),
        "the file's HTTP port is not used"
    );
    let mut health = health_client(&format!("http://{flag_grpc_addr}")).await;
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("the flag's gRPC port answers");
    for port in [file_grpc, env_grpc] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} is not used"
        );
    }
    server.start_kill().unwrap();
    let _ = server.wait().await;
}

#[tokio::test]
async fn a_bad_key_or_value_exits_non_zero_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    // (file section, environment, flags, the key the one line must name)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: [Case; 6] = [
        ("[check]\nrelm = \"x\"\n", &[], &[], "check.relm"),
        (
            "[tokens]\nttl_seconds = 5\n",
            &[],
            &[],
            "tokens.ttl_seconds",
        ),
        (
            "",
            &[("GATEHOUSE_STORE__QUERY_TIMEOUT_MS", "soon")],
            &[],
            "store.query_timeout_ms",
        ),
        ("", &[("GATEHOUSE_LOG__COLOUR", "red")], &[], "log.colour"),
        ("", &[], &["--http-addr", "localhost"], "server.http_addr"),
        ("", &[], &["--log-format", "xml"], "log.format"),
    ];
    for (extra, env, args, key) in cases {
        let config = config_file(dir.path(), grpc, http, extra);
        let mut command = gatehouse();
        command
            .arg("--config")
            .arg(&config)
            .args(args)
            .arg("serve")
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let output = tokio::time::timeout(Duration::from_secs(10), command.output())
            .await
            .expect("a bad configuration exits at once")
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{key}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{key}: {stderr}");
        assert!(stderr.contains(key), "{key}: {stderr}");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", http)).is_err(),
            "{key}: no port was bound"
        );
    }
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_token_request_finish_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let config = config_file(dir.path(), grpc, http, "");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, example_policy()).unwrap();
    let applied = gatehouse()
        .arg("--config")
        .arg(&config)
        .arg("apply")
        .arg(&policy)
        .output()
        .await
        .unwrap();
    assert!(applied.status.success());
    let stdout = String::from_utf8(applied.stdout).unwrap();
    let web_id = created_client_id(&stdout, "invoices-web");

    let mut server = serve_binary(dir.path(), &config, &[], &[]);
    let base = format!("http://127.0.0.1:{http}");
    wait_for(&format!("{base}/healthz")).await;

    // A password grant spends a deliberately slow argon2 verification: SIGTERM lands mid-way.
    let form = [
        ("grant_type", "password"),
        ("client_id", web_id.as_str()),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
    ];
    let client = reqwest::Client::new();
    let request = client.post(format!("{base}/token")).form(&form).send();
    let in_flight = tokio::spawn(async move { (request.await, Instant::now()) });
    // Long enough for the request to be accepted, well short of argon2 in a debug build.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let pid = server.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let killed_at = Instant::now();

    let (response, answered_at) = in_flight.await.unwrap();
    let response = response.expect("the in-flight request is answered");
    assert!(
        answered_at > killed_at,
        "the request was still in flight at SIGTERM"
    );
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["access_token"].is_string());
    let status = tokio::time::timeout(EVENTUALLY, server.wait())
        .await
        .expect("gatehouse exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", http)).is_err(),
        "no longer accepting"
    );
}

async fn health_client(url: &str) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

pub(crate) async fn health_status(g: &TestGatehouse, service: &str) -> ServingStatus {
    let mut client = health_client(&format!("http://{}", g.running.grpc_addr)).await;
    let response = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    response.status()
}

pub(crate) async fn readyz(g: &TestGatehouse) -> u16 {
    g.http
        .get(g.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn grpc_health_and_readyz_are_not_serving_until_the_issuer_keys_load() {
    let mock = MockJwks::start(Behaviour::Unavailable).await;
    let trusted = trusting(&mock, |t| {
        t.refresh_interval_seconds = 1;
        t.refetch_cooldown_seconds = 1;
    });
    let g = TestGatehouse::start_with(&example_policy(), |config: &mut Config| {
        config.issuer.enabled = false;
        config.issuers = vec![trusted];
    })
    .await;
    const CHECK: &str = "envoy.service.auth.v3.Authorization";

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(readyz(&g).await, 503);
    assert_eq!(health_status(&g, "").await, ServingStatus::NotServing);
    assert_eq!(health_status(&g, CHECK).await, ServingStatus::NotServing);

    let k1 = SigningKey::generate().unwrap();
    mock.set(serve(&[&k1]));
    let started = Instant::now();
    while health_status(&g, "").await != ServingStatus::Serving {
        assert!(started.elapsed() < EVENTUALLY, "never became SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(health_status(&g, CHECK).await, ServingStatus::Serving);
    assert_eq!(readyz(&g).await, 200);
}

/// The value of the first sample line starting with `prefix` in a Prometheus scrape.
fn sample(scrape: &str, prefix: &str) -> f64 {
    scrape
        .lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_count_permits_denies_and_issued_tokens_after_traffic_through_envoy() {
    let gatehouse = TestGatehouse::start(&example_policy()).await;
    let echo = Echo::start().await;
    let envoy = Envoy::start(gatehouse.dir.path(), gatehouse.running.grpc_addr, echo.addr).await;
    let http = reqwest::Client::new();

    let token = gatehouse
        .user_token("invoices-web", "alice", ALICE_PASSWORD)
        .await;
    let auth = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let (bad, _) = gatehouse
        .token_request(None, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(bad, 401);
    for (method, expected) in [("GET", 200), ("DELETE", 403)] {
        let response = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                envoy.url("/v1/invoices/inv-1001"),
            )
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{method}");
    }
    let anonymous = http
        .get(envoy.url("/v1/invoices/inv-1001"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    let response = http.get(gatehouse.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let scrape = response.text().await.unwrap();
    for prefix in [
        "gatehouse_decisions_total{decision=\"permit\",status=\"200\",reason=\"",
        "gatehouse_decisions_total{decision=\"deny\",status=\"403\",reason=\"",
        "gatehouse_decisions_total{decision=\"deny\",status=\"401\",reason=\"missing_credentials\"}",
        "gatehouse_tokens_issued_total{grant_type=\"password\"}",
        "gatehouse_token_errors_total{error=\"invalid_client\"}",
        "gatehouse_check_duration_seconds_count",
    ] {
        assert!(sample(&scrape, prefix) > 0.0, "{prefix} in\n{scrape}");
    }
}
