//! A tiny upstream for demos and end-to-end tests: answers every method and
//! path with 200 and a JSON echo of what it received, so a caller can see
//! exactly which headers reached the upstream through Envoy.
//!
//! ```text
//! cargo run --example echo_upstream -- --addr 127.0.0.1:8081
//! ```
//!
//! Response body:
//! `{"method": "GET", "path": "/v1/x", "query": null, "headers": {"name": ["v1", "v2"]}}`

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, Method, Uri};
use clap::Parser;
use serde_json::{Map, Value, json};

/// Echo server: replies 200 with the request's method, path and headers.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    addr: SocketAddr,
}

async fn echo(method: Method, uri: Uri, headers: HeaderMap) -> Json<Value> {
    let mut seen: Map<String, Value> = Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        seen.insert(name.as_str().to_owned(), Value::Array(values));
    }
    Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": seen,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let app = Router::new().fallback(echo);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.addr))?;
    eprintln!("echo_upstream listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
