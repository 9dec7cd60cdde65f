//! Discovery: `GET /.well-known/oauth-authorization-server` (RFC 8414) and
//! `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0), one document built
//! by a pure function from the configured issuer and the scopes gatehouse knows.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::server::Gatehouse;

/// The metadata document. Every endpoint is the issuer URL plus its path, so the document
/// is only true when `[tokens] issuer` is the URL clients reach gatehouse's HTTP port at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// Exactly the configured issuer (RFC 8414 §3.3: the client compares it byte for byte).
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub grant_types_supported: &'static [&'static str],
    pub response_types_supported: &'static [&'static str],
    pub response_modes_supported: &'static [&'static str],
    /// Confidential clients use HTTP Basic only; public clients send only `client_id`.
    pub token_endpoint_auth_methods_supported: &'static [&'static str],
    pub revocation_endpoint_auth_methods_supported: &'static [&'static str],
    pub introspection_endpoint_auth_methods_supported: &'static [&'static str],
    pub code_challenge_methods_supported: &'static [&'static str],
    pub scopes_supported: Vec<String>,
    pub subject_types_supported: &'static [&'static str],
    pub id_token_signing_alg_values_supported: &'static [&'static str],
    /// RFC 9207: the authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    pub claims_supported: &'static [&'static str],
}

/// The metadata for `issuer`, advertising `openid` and `scopes` (sorted, without duplicates).
pub fn metadata(issuer: &str, scopes: impl IntoIterator<Item = String>) -> Metadata {
    // An issuer written with a trailing slash must not produce `//token`.
    let base = issuer.trim_end_matches('/');
    let endpoint = |path: &str| format!("{base}{path}");
    let mut scopes_supported: Vec<String> =
        std::iter::once("openid".to_owned()).chain(scopes).collect();
    scopes_supported.sort();
    scopes_supported.dedup();
    Metadata {
        issuer: issuer.to_owned(),
        authorization_endpoint: endpoint("/authorize"),
        token_endpoint: endpoint("/token"),
        jwks_uri: endpoint("/jwks"),
        introspection_endpoint: endpoint("/introspect"),
        revocation_endpoint: endpoint("/revoke"),
        grant_types_supported: &[
            "authorization_code",
            "client_credentials",
            "refresh_token",
            "password",
        ],
        response_types_supported: &["code"],
        response_modes_supported: &["query"],
        token_endpoint_auth_methods_supported: &["client_secret_basic", "none"],
        revocation_endpoint_auth_methods_supported: &["client_secret_basic", "none"],
        introspection_endpoint_auth_methods_supported: &["client_secret_basic"],
        code_challenge_methods_supported: &["S256"],
        scopes_supported,
        subject_types_supported: &["public"],
        id_token_signing_alg_values_supported: &["RS256"],
        authorization_response_iss_parameter_supported: true,
        claims_supported: &[
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "client_id",
            "scope",
            "azp",
            "auth_time",
            "nonce",
        ],
    }
}

pub(super) fn routes() -> Router<Arc<Gatehouse>> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/.well-known/openid-configuration", get(discovery))
}

/// Both documents are the same: OpenID Provider metadata is a superset of RFC 8414's.
async fn discovery(State(gatehouse): State<Arc<Gatehouse>>) -> Response {
    let config = &gatehouse.config;
    // Scopes are the resource types in the catalogue, and the admin scope where it is used.
    let mut scopes: Vec<String> = gatehouse
        .snapshot()
        .catalogue
        .resource_types()
        .into_iter()
        .map(str::to_owned)
        .collect();
    if config.admin.enabled {
        scopes.push(config.admin.scope.clone());
    }
    let mut response = axum::Json(metadata(&config.tokens.issuer, scopes)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_hang_off_the_issuer_which_is_kept_exactly() {
        let document = metadata("https://auth.example.com", ["invoices".to_owned()]);
        assert_eq!(document.issuer, "https://auth.example.com");
        assert_eq!(document.token_endpoint, "https://auth.example.com/token");
        assert_eq!(document.jwks_uri, "https://auth.example.com/jwks");
        assert_eq!(
            document.authorization_endpoint,
            "https://auth.example.com/authorize"
        );
        assert_eq!(
            document.introspection_endpoint,
            "https://auth.example.com/introspect"
        );
        assert_eq!(
            document.revocation_endpoint,
            "https://auth.example.com/revoke"
        );
        assert_eq!(document.scopes_supported, ["invoices", "openid"]);

        let slashed = metadata("https://auth.example.com/tenant/", []);
        assert_eq!(slashed.issuer, "https://auth.example.com/tenant/");
        assert_eq!(
            slashed.token_endpoint,
            "https://auth.example.com/tenant/token"
        );
    }

    #[test]
    fn the_document_says_what_gatehouse_does_and_nothing_else() {
        let json = serde_json::to_value(metadata("https://a.test", [])).unwrap();
        assert_eq!(
            json["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(
            json["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "none"])
        );
        assert_eq!(json["authorization_response_iss_parameter_supported"], true);
        assert_eq!(
            json["id_token_signing_alg_values_supported"],
            serde_json::json!(["RS256"])
        );
        // No signed client assertions: the member must be absent, not empty.
        assert!(
            json.get("token_endpoint_auth_signing_alg_values_supported")
                .is_none()
        );
        assert!(
            json["claims_supported"]
                .as_array()
                .unwrap()
                .contains(&"sub".into())
        );
    }
}
