//! A real Envoy started from `envoy/envoy.yaml`, and an echo upstream that records requests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::routing::any;
use tokio::process::{Child, Command};

use super::binary::free_port;

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// Every value of a header, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// An echo upstream in this process.
#[derive(Clone)]
pub struct Echo {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Echo {
    pub async fn start() -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let app = axum::Router::new().fallback(any(move |request: Request| {
            let record = record.clone();
            async move {
                let entry = Seen {
                    method: request.method().to_string(),
                    path: request.uri().to_string(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                };
                record.lock().unwrap().push(entry);
                "echo"
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, seen }
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }
}

/// The Envoy binary installed by `scripts/install-envoy.sh`. Its absence fails the test:
/// the end-to-end suite never skips.
pub fn envoy_binary() -> PathBuf {
    let path = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/envoy"));
    assert!(
        path.exists(),
        "Envoy not found at {}: run scripts/install-envoy.sh (or set ENVOY_BIN)",
        path.display()
    );
    path
}

/// A running Envoy; killed on drop.
pub struct Envoy {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub log: PathBuf,
}

impl Envoy {
    /// Starts Envoy with `envoy/envoy.yaml`, its four ports moved to the given and free ones.
    pub async fn start(dir: &Path, gatehouse_grpc: SocketAddr, upstream: SocketAddr) -> Self {
        Self::start_with(dir, gatehouse_grpc, upstream, |yaml| yaml).await
    }

    /// Like [`Envoy::start`], with the configuration text changed by `edit` first.
    pub async fn start_with(
        dir: &Path,
        gatehouse_grpc: SocketAddr,
        upstream: SocketAddr,
        edit: impl FnOnce(String) -> String,
    ) -> Self {
        let ports = [(9001, gatehouse_grpc.port()), (8081, upstream.port())];
        Self::launch(dir, "envoy.yaml", &ports, edit).await
    }

    /// Starts Envoy with `envoy/<file>`: its listener and admin ports moved to free ones, and
    /// each `(from, to)` of `ports` moved (`port_value: from` becomes `port_value: to`).
    pub async fn start_config(dir: &Path, file: &str, ports: &[(u16, u16)]) -> Self {
        Self::launch(dir, file, ports, |yaml| yaml).await
    }

    async fn launch(
        dir: &Path,
        file: &str,
        ports: &[(u16, u16)],
        edit: impl FnOnce(String) -> String,
    ) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("envoy")
            .join(file);
        let template = edit(std::fs::read_to_string(path).unwrap());
        let port = free_port();
        let admin_port = free_port();
        let mut config = template
            .replace("port_value: 10000", &format!("port_value: {port}"))
            .replace("port_value: 9901", &format!("port_value: {admin_port}"));
        for (from, to) in ports {
            config = config.replace(&format!("port_value: {from}"), &format!("port_value: {to}"));
        }
        let config_path = dir.join(file);
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join(format!("{file}.log"));
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&config_path)
            .arg("--use-dynamic-base-id")
            .arg("--log-level")
            .arg("warn")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let envoy = Self {
            child,
            port,
            admin_port,
            log,
        };
        envoy.wait_ready().await;
        envoy
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let ready = format!("http://127.0.0.1:{}/ready", self.admin_port);
        for _ in 0..200 {
            if let Ok(response) = client.get(&ready).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("Envoy did not become ready; see {}", self.log.display());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Envoy's access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether a record for `decision_id` reaches the access log within five seconds (Envoy
    /// writes it asynchronously).
    pub async fn logs_decision(&self, decision_id: &str) -> bool {
        let needle = format!("decision_id={decision_id}");
        for _ in 0..50 {
            if self.access_log().contains(&needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
