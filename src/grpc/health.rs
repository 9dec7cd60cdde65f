//! `grpc.health.v1` on the ext_authz port: NOT_SERVING until gatehouse is ready (every trusted
//! issuer's keys loaded, the store answering), then SERVING, and back when the store stops
//! answering. The overall status (`""`) and `envoy.service.auth.v3.Authorization` move together.

use tokio::sync::watch;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;

use super::CheckService;

/// The services whose status is reported.
const SERVICES: [&str; 2] = [
    "",
    <AuthorizationServer<CheckService> as NamedService>::NAME,
];

/// The health service, NOT_SERVING for now, and a task that follows `ready` until `stopped`.
pub(super) async fn service(
    mut ready: watch::Receiver<bool>,
    mut stopped: watch::Receiver<bool>,
) -> HealthServer<impl Health> {
    let (reporter, service) = tonic_health::server::health_reporter();
    let serving = *ready.borrow_and_update();
    report(&reporter, serving).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = ready.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let serving = *ready.borrow_and_update();
                    report(&reporter, serving).await;
                }
                _ = async { stopped.wait_for(|stop| *stop).await.is_ok() } => {
                    // Draining: load balancers should stop sending new checks.
                    report(&reporter, false).await;
                    return;
                }
            }
        }
    });
    service
}

async fn report(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for name in SERVICES {
        reporter.set_service_status(name, status).await;
    }
    tracing::info!(serving, "gRPC health status");
}
