//! The decision core: given a request, the trusted keys, the policy snapshot and the time,
//! decide. No I/O happens here; when the token defers to the database the core returns a
//! [`Lookup`] that the adapter answers with one store query and hands back.

mod credential;
mod methods;

pub use credential::{Credential, read_credential};
pub use methods::MethodMap;

use crate::catalogue::{PolicySnapshot, Subject};
use crate::decision::{
    Advice, Checked, Decision, EvaluatedTuple, Obligation, Outcome, Principal, Verdict,
};
use crate::keys::VerificationKeys;
use crate::path::{canonical_path, segments};
use crate::tokens::{Grants, VerifiedToken, VerifyPolicy, verify};

/// Settings of the decision core, fixed by configuration.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    pub verify: VerifyPolicy,
    pub methods: MethodMap,
    /// A permit for a token expiring within this many seconds carries `reauth/token_expiring`.
    pub expiring_within: i64,
}

/// One request to decide, as the adapter extracted it.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub method: &'a str,
    /// The raw request target (path and query) exactly as the proxy saw it.
    pub target: &'a str,
    /// Every `authorization` value the request carried.
    pub credential: Credential<'a>,
    /// `type` of the resource, when the route supplies it.
    pub resource_type: Option<&'a str>,
    /// `name` of the resource, when the route supplies it.
    pub resource_name: Option<&'a str>,
}

/// What the core needs besides the request.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub keys: &'a VerificationKeys,
    pub snapshot: &'a PolicySnapshot,
    pub settings: &'a CheckSettings,
    pub now: i64,
}

/// The result of [`evaluate`]: a decision, or a question for the database.
#[derive(Debug)]
pub enum Step {
    Done(Checked),
    Lookup(Lookup),
}

/// A pending database-path decision: does `subject` hold a grant on any of `candidates`?
#[derive(Debug)]
pub struct Lookup {
    pub subject: Subject,
    pub candidates: Vec<String>,
    pending: Pending,
}

#[derive(Debug)]
struct Pending {
    policy_id: String,
    principal: Principal,
    tuple: EvaluatedTuple,
    obligations: Vec<Obligation>,
}

impl Lookup {
    /// Finishes the decision with the store's answer; `None` means the store was unavailable.
    pub fn finish(self, granted: Option<bool>) -> Checked {
        let Pending {
            policy_id,
            principal,
            tuple,
            obligations,
        } = self.pending;
        match granted {
            Some(true) => permit(policy_id, principal, tuple, obligations),
            Some(false) => forbid(policy_id, principal, tuple, "not_granted", Vec::new()),
            None => {
                let mut checked = deny(policy_id, Outcome::Unavailable, "store_unavailable", tuple);
                checked.decision.authenticated = true;
                checked.principal = Some(principal);
                checked
            }
        }
    }
}

/// Decides one request.
pub fn evaluate(request: &AccessRequest<'_>, context: &Context<'_>) -> Step {
    let policy_id = context.snapshot.policy_id.clone();
    let mut tuple = EvaluatedTuple {
        method: request.method.to_owned(),
        resource_type: request.resource_type.map(str::to_owned),
        resource_name: request.resource_name.map(str::to_owned),
        ..EvaluatedTuple::default()
    };

    let Ok(path) = canonical_path(request.target) else {
        return Step::Done(deny(
            policy_id,
            Outcome::InvalidRequest,
            "non_canonical_path",
            tuple,
        ));
    };
    tuple.path = path.to_owned();

    let token = match request.credential {
        Credential::Bearer(token) => token,
        Credential::Multiple => {
            return Step::Done(deny(
                policy_id,
                Outcome::InvalidRequest,
                "multiple_credentials",
                tuple,
            ));
        }
        Credential::Absent | Credential::OtherScheme => {
            return Step::Done(deny(
                policy_id,
                Outcome::MissingCredentials,
                "missing_credentials",
                tuple,
            ));
        }
        Credential::MalformedBearer => {
            return Step::Done(deny(
                policy_id,
                Outcome::InvalidToken,
                "token_malformed",
                tuple,
            ));
        }
    };

    let settings = context.settings;
    let token = match verify(token, context.keys, &settings.verify, context.now) {
        Ok(token) => token,
        Err(error) => {
            return Step::Done(deny(
                policy_id,
                Outcome::InvalidToken,
                error.reason(),
                tuple,
            ));
        }
    };
    let principal = Principal {
        subject: token.subject.clone(),
        client_id: token.client_id.clone(),
    };
    let subject = if token.is_account_token() {
        Subject::Account(token.subject.clone())
    } else {
        Subject::Client(token.subject.clone())
    };

    if is_stale(&token, &subject, context.snapshot) {
        let mut checked = deny(
            policy_id,
            Outcome::InvalidToken,
            "permissions_changed",
            tuple,
        );
        checked
            .decision
            .obligations
            .push(Obligation::PERMISSIONS_CHANGED);
        checked.principal = Some(principal);
        return Step::Done(checked);
    }

    let Some(action) = settings.methods.action(request.method) else {
        return Step::Done(forbid(
            policy_id,
            principal,
            tuple,
            "method_not_mapped",
            Vec::new(),
        ));
    };
    tuple.action = Some(action.to_owned());

    let path_segments = segments(path);
    let mut in_scope = Vec::new();
    let mut missing_scope: Option<&str> = None;
    let candidates = context.snapshot.catalogue.candidates(
        action,
        &path_segments,
        request.resource_type,
        request.resource_name,
    );
    for resource in candidates {
        if token.scopes.contains(&resource.kind) {
            in_scope.push(resource.id.as_str());
        } else {
            missing_scope.get_or_insert(resource.kind.as_str());
        }
    }
    if in_scope.is_empty() {
        let (reason, advice) = match missing_scope {
            Some(kind) => (
                "scope_lacks_resource_type",
                vec![Advice {
                    message: format!("Use scope {kind}"),
                }],
            ),
            None => ("no_matching_resource", Vec::new()),
        };
        return Step::Done(forbid(policy_id, principal, tuple, reason, advice));
    }

    let mut obligations = Vec::new();
    if token.expires_at - (context.now as f64) <= settings.expiring_within as f64 {
        obligations.push(Obligation::TOKEN_EXPIRING);
    }

    match &token.grants {
        Grants::Listed(ids) => {
            if in_scope
                .iter()
                .any(|candidate| ids.iter().any(|id| id == candidate))
            {
                Step::Done(permit(policy_id, principal, tuple, obligations))
            } else {
                Step::Done(forbid(
                    policy_id,
                    principal,
                    tuple,
                    "not_granted",
                    Vec::new(),
                ))
            }
        }
        Grants::Lookup(_) => Step::Lookup(Lookup {
            subject,
            candidates: in_scope.into_iter().map(str::to_owned).collect(),
            pending: Pending {
                policy_id,
                principal,
                tuple,
                obligations,
            },
        }),
    }
}

/// A token is stale when its subject (or, for account tokens, its client) is gone or has a
/// newer permission version than the token carries.
fn is_stale(token: &VerifiedToken, subject: &Subject, snapshot: &PolicySnapshot) -> bool {
    let older = |subject: &Subject, carried: u64| {
        snapshot
            .versions
            .get(subject)
            .is_none_or(|current| carried < current)
    };
    if older(subject, token.pver) {
        return true;
    }
    match token.cver {
        Some(cver) => older(&Subject::Client(token.client_id.clone()), cver),
        None => false,
    }
}

fn decision(
    policy_id: String,
    verdict: Verdict,
    authenticated: bool,
    reason: &'static str,
) -> Decision {
    Decision {
        decision: verdict,
        authenticated,
        obligations: Vec::new(),
        advice: Vec::new(),
        policy_id,
        reason,
    }
}

fn deny(
    policy_id: String,
    outcome: Outcome,
    reason: &'static str,
    tuple: EvaluatedTuple,
) -> Checked {
    Checked {
        decision: decision(policy_id, Verdict::Deny, false, reason),
        outcome,
        principal: None,
        tuple,
    }
}

fn forbid(
    policy_id: String,
    principal: Principal,
    tuple: EvaluatedTuple,
    reason: &'static str,
    advice: Vec<Advice>,
) -> Checked {
    let mut decision = decision(policy_id, Verdict::Deny, true, reason);
    decision.advice = advice;
    Checked {
        decision,
        outcome: Outcome::InsufficientScope,
        principal: Some(principal),
        tuple,
    }
}

fn permit(
    policy_id: String,
    principal: Principal,
    tuple: EvaluatedTuple,
    obligations: Vec<Obligation>,
) -> Checked {
    let mut decision = decision(policy_id, Verdict::Permit, true, "granted");
    decision.obligations = obligations;
    Checked {
        decision,
        outcome: Outcome::Permit,
        principal: Some(principal),
        tuple,
    }
}
