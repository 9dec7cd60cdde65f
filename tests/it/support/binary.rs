//! Running the real `gatehouse` binary: free ports, `apply` output, readiness.

use std::time::Duration;

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A command running the binary under test with the logging its configuration asks for: a
/// `RUST_LOG` in the environment the tests run in would override `[log] level` and hide the
/// records a test reads. A test that wants `RUST_LOG` sets it on the returned command.
pub fn gatehouse() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BINARY);
    command.env_remove("RUST_LOG");
    command
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The client id `gatehouse apply` printed for the newly created client `name`.
pub fn created_client_id(apply_output: &str, name: &str) -> String {
    apply_output
        .lines()
        .find(|line| line.contains(&format!("\"{name}\"")))
        .and_then(|line| line.split("client_id=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("apply printed no client {name}: {apply_output}"))
        .to_owned()
}

/// Waits until the gatehouse whose HTTP listener is on `port` answers `/readyz` with 200.
pub async fn wait_ready(port: u16) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gatehouse on port {port} did not become ready");
}
