//! Benchmark baselines (`scripts/bench.sh`): two allow-everything ext_authz servers that
//! decide nothing, so that Envoy's cost of the authorization hop can be measured apart from
//! any decision.
//!
//! - `--grpc ADDR`: a minimal tonic `envoy.service.auth.v3.Authorization/Check` server on
//!   tonic's default settings, answering every check with OK (mode 2);
//! - `--grpc-answered ADDR`: the same server answering every check with the permit gatehouse
//!   would send (its decision headers, the removals and the dynamic metadata, built by
//!   gatehouse's own `to_check_response`), so that Envoy's cost of applying gatehouse's answer
//!   is measured apart from the cost of deciding (mode 2h);
//! - `--http ADDR`: a naive HTTP server answering every request with 200, for Envoy's HTTP
//!   ext_authz mode (mode 7).
//!
//! ```text
//! cargo run --release --example bench_allow -- --grpc 127.0.0.1:9101 --http 127.0.0.1:9102 \
//!     --grpc-answered 127.0.0.1:9103
//! ```

use std::net::SocketAddr;

use axum::Router;
use clap::Parser;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use gatehouse::decision::{Checked, Decision, EvaluatedTuple, Outcome, Principal, Verdict};
use gatehouse::grpc::to_check_response;
use tonic::{Request, Response, Status};

/// Allow-everything ext_authz servers.
#[derive(Debug, Parser)]
struct Args {
    /// Address of the gRPC ext_authz server.
    #[arg(long)]
    grpc: Option<SocketAddr>,
    /// Address of the gRPC ext_authz server that answers with gatehouse's permit.
    #[arg(long)]
    grpc_answered: Option<SocketAddr>,
    /// Which parts of gatehouse's permit `--grpc-answered` sends.
    #[arg(long, value_enum, default_value_t = Parts::All)]
    answer: Parts,
    /// Address of the HTTP ext_authz server.
    #[arg(long)]
    http: Option<SocketAddr>,
}

/// Parts of gatehouse's permit, to tell what Envoy's cost of applying it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Parts {
    /// Headers, removals and dynamic metadata, as gatehouse sends them.
    All,
    /// The decision headers and removals, no dynamic metadata.
    Headers,
    /// The dynamic metadata, no header changes.
    Metadata,
}

/// Answers every `Check` with OK and the same answer each time.
#[derive(Debug)]
struct AllowAll(CheckResponse);

impl AllowAll {
    /// OK and no header changes.
    fn bare() -> Self {
        Self(CheckResponse {
            status: Some(rpc::Status {
                code: 0,
                ..rpc::Status::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            ..CheckResponse::default()
        })
    }

    /// The permit gatehouse sends for a service token on the claims path.
    fn answered(parts: Parts) -> Self {
        let checked = Checked {
            decision: Decision {
                decision: Verdict::Permit,
                authenticated: true,
                obligations: Vec::new(),
                advice: Vec::new(),
                policy_id: "gatehouse-rbac-v1".to_owned(),
                reason: "granted",
            },
            outcome: Outcome::Permit,
            principal: Some(Principal {
                subject: "svc_0123456789abcdef".to_owned(),
                client_id: "svc_0123456789abcdef".to_owned(),
            }),
            tuple: EvaluatedTuple::default(),
        };
        let decision_id = "0123456789abcdef0123456789abcdef";
        let mut response = to_check_response(&checked, decision_id, "gatehouse");
        match parts {
            Parts::All => {}
            Parts::Headers => response.dynamic_metadata = None,
            Parts::Metadata => {
                response.http_response = Some(HttpResponse::OkResponse(OkHttpResponse::default()))
            }
        }
        Self(response)
    }
}

#[tonic::async_trait]
impl Authorization for AllowAll {
    async fn check(
        &self,
        _request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        Ok(Response::new(self.0.clone()))
    }
}

fn serve_grpc(addr: SocketAddr, server: AllowAll) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(AuthorizationServer::new(server))
            .serve(addr)
            .await
            .map_err(anyhow::Error::from)
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut tasks = Vec::new();
    if let Some(addr) = args.grpc {
        tasks.push(serve_grpc(addr, AllowAll::bare()));
    }
    if let Some(addr) = args.grpc_answered {
        tasks.push(serve_grpc(addr, AllowAll::answered(args.answer)));
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
    anyhow::ensure!(
        !tasks.is_empty(),
        "give --grpc, --grpc-answered and/or --http"
    );
    for task in tasks {
        task.await??;
    }
    Ok(())
}
