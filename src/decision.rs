//! The decision model every check produces, and the outcome classes it maps onto.
//!
//! Field names and casing of [`Decision`] are part of the product contract: they are the JSON
//! body of every deny and the shape of the decision API.

mod reply;

pub use reply::{DECISION_HEADERS, Reply};

use serde::Serialize;

/// `Permit` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Permit,
    Deny,
}

/// Something the client must do; the product emits `reauth` at least.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Obligation {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub reason: &'static str,
}

impl Obligation {
    /// The token is close to expiry: fetch a new one soon.
    pub const TOKEN_EXPIRING: Obligation = Obligation {
        kind: "reauth",
        reason: "token_expiring",
    };
    /// The subject's permissions changed after the token was minted.
    pub const PERMISSIONS_CHANGED: Obligation = Obligation {
        kind: "reauth",
        reason: "permissions_changed",
    };
}

/// A hint the client may act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advice {
    pub message: String,
}

/// The decision object of the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub decision: Verdict,
    pub authenticated: bool,
    pub obligations: Vec<Obligation>,
    pub advice: Vec<Advice>,
    pub policy_id: String,
    pub reason: &'static str,
}

/// How an outcome is answered: the HTTP status and gRPC code pair of the contract's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Permit: OK.
    Permit,
    /// No credentials or a non-Bearer scheme: 401 without `error`.
    MissingCredentials,
    /// Malformed, badly signed, expired, revoked or stale token: 401 `invalid_token`.
    InvalidToken,
    /// More than one credential, or a non-canonical request target: 400 `invalid_request`.
    InvalidRequest,
    /// Valid token, not allowed: 403 `insufficient_scope`.
    InsufficientScope,
    /// A dependency is down: 503.
    Unavailable,
}

impl Outcome {
    /// The HTTP status Envoy sends to the client.
    pub fn http_status(self) -> u16 {
        match self {
            Outcome::Permit => 200,
            Outcome::MissingCredentials | Outcome::InvalidToken => 401,
            Outcome::InvalidRequest => 400,
            Outcome::InsufficientScope => 403,
            Outcome::Unavailable => 503,
        }
    }

    /// The `google.rpc.Code` carried in `CheckResponse.status`.
    pub fn grpc_code(self) -> i32 {
        match self {
            Outcome::Permit => 0,
            Outcome::InvalidRequest => 3,
            Outcome::InsufficientScope => 7,
            Outcome::Unavailable => 14,
            Outcome::MissingCredentials | Outcome::InvalidToken => 16,
        }
    }

    /// The RFC 6750 §3.1 `error` code, when the outcome has one.
    pub fn bearer_error(self) -> Option<&'static str> {
        match self {
            Outcome::InvalidToken => Some("invalid_token"),
            Outcome::InvalidRequest => Some("invalid_request"),
            Outcome::InsufficientScope => Some("insufficient_scope"),
            Outcome::Permit | Outcome::MissingCredentials | Outcome::Unavailable => None,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), if the outcome carries one.
    pub fn challenge(self, realm: &str) -> Option<String> {
        match self {
            Outcome::Permit | Outcome::Unavailable => None,
            Outcome::MissingCredentials => Some(format!("Bearer realm=\"{realm}\"")),
            other => other
                .bearer_error()
                .map(|error| format!("Bearer realm=\"{realm}\", error=\"{error}\"")),
        }
    }
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub client_id: String,
}

/// The tuple a check evaluated, kept for the decision log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EvaluatedTuple {
    pub method: String,
    pub path: String,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_name: Option<String>,
}

/// A finished check: the decision, how to answer it and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub decision: Decision,
    pub outcome: Outcome,
    pub principal: Option<Principal>,
    pub tuple: EvaluatedTuple,
}

impl Checked {
    /// The JSON text of the decision object.
    pub fn body(&self) -> String {
        serde_json::to_string(&self.decision).unwrap_or_else(|_| String::from("{}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_serialises_with_contract_field_names() {
        let decision = Decision {
            decision: Verdict::Permit,
            authenticated: true,
            obligations: vec![Obligation::TOKEN_EXPIRING],
            advice: vec![Advice {
                message: "Use scope invoice.read".into(),
            }],
            policy_id: "rbac-resource-v3".into(),
            reason: "granted",
        };
        let json: serde_json::Value = serde_json::to_value(&decision).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "decision": "Permit",
                "authenticated": true,
                "obligations": [{"type": "reauth", "reason": "token_expiring"}],
                "advice": [{"message": "Use scope invoice.read"}],
                "policyId": "rbac-resource-v3",
                "reason": "granted"
            })
        );
    }

    #[test]
    fn challenges_follow_rfc6750() {
        assert_eq!(
            Outcome::MissingCredentials
                .challenge("gatehouse")
                .as_deref(),
            Some("Bearer realm=\"gatehouse\"")
        );
        assert_eq!(
            Outcome::InvalidToken.challenge("r").as_deref(),
            Some("Bearer realm=\"r\", error=\"invalid_token\"")
        );
        assert_eq!(Outcome::Unavailable.challenge("r"), None);
        assert_eq!(Outcome::InsufficientScope.grpc_code(), 7);
    }
}
