//! The real `gatehouse` binary for the fault tests: one configuration file, a store, the
//! commands `apply` and `keys`, and `serve` processes that can be killed and started again on
//! the same ports.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use serde_json::Value;
use tokio::process::Child;

use crate::support::binary::{free_port, gatehouse, wait_ready};
use crate::support::{Backend, TestDatabase};

/// A store, a configuration file naming it, and at most one `gatehouse serve` on it.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub store_url: String,
    pub grpc: u16,
    pub http: u16,
    serving: Option<Child>,
    starts: u32,
    /// Dropped after the processes that use it.
    _database: Option<Arc<TestDatabase>>,
}

impl Deployment {
    /// A fresh store on `backend`, and a configuration naming it, on free ports, with `keys`
    /// (TOML lines) added to its `[keys]` section.
    pub async fn new(backend: Backend, keys: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Arc::new(TestDatabase::create().await)),
        };
        let store_url = match &database {
            None => format!("sqlite://{}", dir.path().join("gatehouse.db").display()),
            Some(database) => database.url.clone(),
        };
        let (grpc, http) = (free_port(), free_port());
        let config = dir.path().join("gatehouse.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\ngrpc_addr = \"127.0.0.1:{grpc}\"\nhttp_addr = \"127.0.0.1:{http}\"\n\
                 [store]\nurl = \"{store_url}\"\n\
                 [keys]\nencryption_key_path = \"{key}\"\n{keys}\n\
                 [tokens]\nissuer = \"https://auth.test\"\naudience = \"invoices-api\"\n",
                key = dir.path().join("encryption-key").display(),
            ),
        )
        .unwrap();
        Self {
            dir,
            config,
            store_url,
            grpc,
            http,
            serving: None,
            starts: 0,
            _database: database,
        }
    }

    pub fn grpc_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.grpc))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// Runs `gatehouse ARGS` on this deployment's configuration: success, standard output and
    /// standard error.
    pub async fn command(&self, args: &[&str]) -> (bool, String, String) {
        let output = gatehouse()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .await
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `gatehouse apply` of `policy`, which must succeed; its output.
    pub async fn apply(&self, policy: &str) -> String {
        let file = self.dir.path().join("policy.yaml");
        std::fs::write(&file, policy).unwrap();
        let (ok, output, errors) = self.command(&["apply", file.to_str().unwrap()]).await;
        assert!(ok, "{errors}");
        output
    }

    /// Starts `gatehouse serve` (its log in `serve-N.log`) without waiting for it.
    pub fn spawn(&mut self) {
        assert!(self.serving.is_none(), "gatehouse is already running");
        self.starts += 1;
        let log = self.dir.path().join(format!("serve-{}.log", self.starts));
        let child = gatehouse()
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.serving = Some(child);
    }

    /// Starts `gatehouse serve` and waits until it is ready.
    pub async fn serve(&mut self) {
        self.spawn();
        wait_ready(self.http).await;
    }

    /// SIGKILL: no shutdown, no flush, nothing the process could still do.
    pub async fn kill(&mut self) {
        let mut child = self.serving.take().expect("gatehouse is running");
        child.kill().await.unwrap();
    }

    /// `POST path` with a form body and optional Basic credentials; status and JSON body.
    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new().post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A password-grant access token through the public client `client_id`.
    pub async fn user_token(&self, client_id: &str, username: &str, password: &str) -> String {
        let (status, body) = self
            .post_form(
                "/token",
                None,
                &[
                    ("grant_type", "password"),
                    ("client_id", client_id),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A client_credentials access token.
    pub async fn service_token(&self, client_id: &str, secret: &str) -> String {
        let (status, body) = self
            .post_form(
                "/token",
                Some((client_id, secret)),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The secret `gatehouse apply` printed for the newly created confidential client `name`.
pub fn created_client_secret(apply_output: &str, name: &str) -> String {
    apply_output
        .lines()
        .find(|line| line.contains(&format!("\"{name}\"")))
        .and_then(|line| line.split("client_secret=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("apply printed no secret for {name}: {apply_output}"))
        .to_owned()
}
