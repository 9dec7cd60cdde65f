//! How a finished check is answered over HTTP, whichever protocol carries the answer: the
//! gRPC adapter wraps a [`Reply`] in a `CheckResponse`, the HTTP ext_authz adapter sends it as
//! a plain HTTP response. Both therefore set, remove and return exactly the same headers.

use super::{Checked, Outcome};

/// Headers gatehouse sets toward the upstream; client-sent copies never pass.
pub const DECISION_HEADERS: [&str; 7] = [
    "x-gatehouse-decision",
    "x-gatehouse-decision-id",
    "x-gatehouse-policy-id",
    "x-gatehouse-subject",
    "x-gatehouse-client-id",
    "x-gatehouse-obligations",
    "x-gatehouse-advice",
];

/// The answer to one check, per the contract's mapping table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 200 on permit; otherwise the deny status the client gets.
    pub status: u16,
    /// Permit: headers set on the upstream request, overwriting any client copy.
    /// Deny: headers of the response the client gets.
    pub headers: Vec<(&'static str, String)>,
    /// Permit: decision header names this decision does not set, to be removed from the
    /// upstream request so that a client-sent copy never reaches it.
    pub remove: Vec<&'static str>,
    /// Permit: headers added to the response the client gets (obligations).
    pub client_headers: Vec<(&'static str, String)>,
    /// Deny: the decision object as JSON.
    pub body: Option<String>,
}

impl Reply {
    /// Maps a finished check onto its answer.
    pub fn new(checked: &Checked, decision_id: &str, realm: &str) -> Self {
        let decision = &checked.decision;
        let obligations = (!decision.obligations.is_empty())
            .then(|| serde_json::to_string(&decision.obligations).unwrap_or_default());

        if checked.outcome != Outcome::Permit {
            let mut headers = vec![
                ("content-type", "application/json".to_owned()),
                ("cache-control", "no-store".to_owned()),
                ("x-gatehouse-decision-id", decision_id.to_owned()),
            ];
            if let Some(challenge) = checked.outcome.challenge(realm) {
                headers.push(("www-authenticate", challenge));
            }
            if let Some(obligations) = obligations {
                headers.push(("x-gatehouse-obligations", obligations));
            }
            return Self {
                status: checked.outcome.http_status(),
                headers,
                remove: Vec::new(),
                client_headers: Vec::new(),
                body: Some(checked.body()),
            };
        }

        let mut headers = Vec::with_capacity(DECISION_HEADERS.len());
        headers.extend([
            ("x-gatehouse-decision", "Permit".to_owned()),
            ("x-gatehouse-decision-id", decision_id.to_owned()),
            ("x-gatehouse-policy-id", decision.policy_id.clone()),
        ]);
        if let Some(principal) = &checked.principal {
            headers.push(("x-gatehouse-subject", principal.subject.clone()));
            headers.push(("x-gatehouse-client-id", principal.client_id.clone()));
        }
        let mut client_headers = Vec::new();
        if let Some(obligations) = obligations {
            client_headers.push(("x-gatehouse-obligations", obligations.clone()));
            headers.push(("x-gatehouse-obligations", obligations));
        }
        if !decision.advice.is_empty() {
            let advice = serde_json::to_string(&decision.advice).unwrap_or_default();
            headers.push(("x-gatehouse-advice", advice));
        }
        // Envoy removes `headers_to_remove` after setting `headers`, so only names this
        // decision does not set are listed; the set ones overwrite any client copy.
        let remove = DECISION_HEADERS
            .into_iter()
            .filter(|name| !headers.iter().any(|(set, _)| set == name))
            .collect();
        Self {
            status: 200,
            headers,
            remove,
            client_headers,
            body: None,
        }
    }
}
