//! Benchmark baselines (`scripts/bench.sh`): two allow-everything ext_authz servers that
//! decide nothing, so that Envoy's cost of the authorization hop can be measured apart from
//! any decision.
//!
//! - `--grpc ADDR`: a minimal tonic `envoy.service.auth.v3.Authorization/Check` server on
//!   tonic's default settings, answering every check with OK (mode 2);
//! - `--http ADDR`: a naive HTTP server answering every request with 200, for Envoy's HTTP
//!   ext_authz mode (mode 7).
//!
//! ```text
//! cargo run --release --example bench_allow -- --grpc 127.0.0.1:9101 --http 127.0.0.1:9102
//! ```

use std::net::SocketAddr;

use axum::Router;
use clap::Parser;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use tonic::{Request, Response, Status};

/// Allow-everything ext_authz servers.
#[derive(Debug, Parser)]
struct Args {
    /// Address of the gRPC ext_authz server.
    #[arg(long)]
    grpc: Option<SocketAddr>,
    /// Address of the HTTP ext_authz server.
    #[arg(long)]
    http: Option<SocketAddr>,
}

/// Answers every `Check` with OK and no header changes.
#[derive(Debug, Default)]
struct AllowAll;

#[tonic::async_trait]
impl Authorization for AllowAll {
    async fn check(
        &self,
        _request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        Ok(Response::new(CheckResponse {
            status: Some(rpc::Status {
                code: 0,
                ..rpc::Status::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            ..CheckResponse::default()
        }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut tasks = Vec::new();
    if let Some(addr) = args.grpc {
        tasks.push(tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(AuthorizationServer::new(AllowAll))
                .serve(addr)
                .await
                .map_err(anyhow::Error::from)
        }));
    }
    if let Some(addr) = args.http {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tasks.push(tokio::spawn(async move {
            let app = Router::new().fallback(|| async { "" });
            axum::serve(listener, app)
                .await
                .map_err(anyhow::Error::from)
        }));
    }
    anyhow::ensure!(!tasks.is_empty(), "give --grpc and/or --http");
    for task in tasks {
        task.await??;
    }
    Ok(())
}
