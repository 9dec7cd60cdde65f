//! The Envoy configurations users copy, each run with a real Envoy: `envoy/sidecar.yaml`
//! (gatehouse on localhost), `envoy/front-proxy.yaml` (gatehouse shared by several virtual
//! hosts, context_extensions per route) and `envoy/jwt-authn-remote-jwks.yaml` (Envoy's own
//! JWT filter on gatehouse's `/jwks`). `envoy/http-authz.yaml` is run in `http_authz`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::support::envoy::{Echo, Envoy};
use crate::support::{ALICE_PASSWORD, AUDITOR_PASSWORD, TestGatehouse, example_policy};

async fn bearer(g: &TestGatehouse, username: &str, password: &str) -> String {
    let token = g.user_token("invoices-web", username, password).await;
    format!("Bearer {}", token["access_token"].as_str().unwrap())
}

/// `method` on `host` `path` through Envoy; the status.
async fn status(envoy: &Envoy, method: &str, host: &str, path: &str, auth: Option<&str>) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = reqwest::Client::new()
        .request(method, envoy.url(path))
        .header("host", host);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn sidecar_configuration_permits_and_denies() {
    let g = TestGatehouse::start(&example_policy()).await;
    let echo = Echo::start().await;
    let envoy = Envoy::start_config(
        g.dir.path(),
        "sidecar.yaml",
        &[(9001, g.running.grpc_addr.port()), (8081, echo.addr.port())],
    )
    .await;
    let auth = bearer(&g, "alice", ALICE_PASSWORD).await;

    let path = "/v1/invoices/inv-1001";
    assert_eq!(
        status(&envoy, "GET", "localhost", path, Some(&auth)).await,
        200
    );
    assert_eq!(echo.last().values("x-gatehouse-subject"), ["alice"]);
    assert_eq!(
        status(&envoy, "DELETE", "localhost", path, Some(&auth)).await,
        403
    );
    assert_eq!(status(&envoy, "GET", "localhost", path, None).await, 401);
    assert_eq!(echo.count(), 1);
}

#[tokio::test]
async fn envoy_yaml_is_the_sidecar_configuration() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/envoy");
    let sidecar = std::fs::read_to_string(format!("{dir}/sidecar.yaml")).unwrap();
    let envoy = std::fs::read_to_string(format!("{dir}/envoy.yaml")).unwrap();
    assert_eq!(sidecar, envoy);
}

#[tokio::test]
async fn front_proxy_routes_carry_their_resource_type_and_name() {
    let g = TestGatehouse::start(&example_policy()).await;
    let invoices = Echo::start().await;
    let ledgers = Echo::start().await;
    let envoy = Envoy::start_config(
        g.dir.path(),
        "front-proxy.yaml",
        &[
            (9001, g.running.grpc_addr.port()),
            (8081, invoices.addr.port()),
            (8082, ledgers.addr.port()),
        ],
    )
    .await;
    let alice = bearer(&g, "alice", ALICE_PASSWORD).await;
    let auditor = bearer(&g, "bulk-auditor", AUDITOR_PASSWORD).await;
    let billing = "billing.example.com";

    // Permitted on the billing host, with the type (and, for attachments, the name) of the
    // route; denied for an action not granted, and without a token.
    let invoice = "/v1/invoices/inv-1001";
    assert_eq!(
        status(&envoy, "GET", billing, invoice, Some(&alice)).await,
        200
    );
    let attachment = "/v1/invoices/inv-1001/attachments/scan.pdf";
    assert_eq!(
        status(&envoy, "GET", billing, attachment, Some(&alice)).await,
        200
    );
    assert_eq!(
        status(&envoy, "DELETE", billing, invoice, Some(&alice)).await,
        403
    );
    assert_eq!(status(&envoy, "GET", billing, invoice, None).await, 401);
    assert_eq!(invoices.count(), 2);

    // The ledger host: the auditor's grants are in the database; alice has none there.
    let entry = "/v1/ledgers/2016-01/entries/7";
    let ledgers_host = "ledgers.example.com";
    assert_eq!(
        status(&envoy, "GET", ledgers_host, entry, Some(&auditor)).await,
        200
    );
    assert_eq!(
        status(&envoy, "GET", ledgers_host, entry, Some(&alice)).await,
        403
    );
    assert_eq!(ledgers.count(), 1);

    // The same invoice path on the ledger host is not an invoice: no route, no permit.
    assert_eq!(
        status(&envoy, "GET", ledgers_host, invoice, Some(&alice)).await,
        404
    );
    // An exempt route is not checked.
    assert_eq!(status(&envoy, "GET", billing, "/healthz", None).await, 200);
}

#[tokio::test]
async fn jwt_authn_with_remote_jwks_accepts_gatehouse_tokens_and_refuses_tampered_ones() {
    // The shipped file names gatehouse's default issuer and audience.
    let g = TestGatehouse::start_with(&example_policy(), |config| {
        let defaults = gatehouse::config::TokensConfig::default();
        config.tokens.issuer = defaults.issuer;
        config.tokens.audience = defaults.audience;
    })
    .await;
    let echo = Echo::start().await;
    let envoy = Envoy::start_config(
        g.dir.path(),
        "jwt-authn-remote-jwks.yaml",
        &[(9000, g.running.http_addr.port()), (8081, echo.addr.port())],
    )
    .await;
    let body = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
    let token = body["access_token"].as_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let path = "/v1/invoices/inv-1001";

    assert_eq!(
        status(
            &envoy,
            "GET",
            "localhost",
            path,
            Some(&format!("Bearer {token}"))
        )
        .await,
        200
    );
    assert_eq!(echo.count(), 1);

    // One bit of the signature flipped.
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[17] ^= 0x01;
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(&signature)
    );
    // The payload edited, the signature kept.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "mallory".into();
    let edited = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    for tampered in [flipped, edited] {
        let auth = format!("Bearer {tampered}");
        assert_eq!(
            status(&envoy, "GET", "localhost", path, Some(&auth)).await,
            401
        );
    }
    assert_eq!(status(&envoy, "GET", "localhost", path, None).await, 401);
    assert_eq!(echo.count(), 1, "no tampered request reached the upstream");
}
