//! The decision core: given a request, the trusted keys, the policy snapshot and the time,
//! decide. No I/O happens here; when the token defers to the database the core returns a
//! [`Lookup`] that the adapter answers with one store query and hands back, and when the
//! token's key is unknown it returns [`Step::Refetch`] so the adapter may fetch keys again.

mod credential;
mod methods;

pub use credential::{Credential, read_credential};
pub use methods::MethodMap;

use std::borrow::Borrow;

use crate::catalogue::{PolicySnapshot, Subject, Versions};
use crate::decision::{
    Advice, Checked, Decision, EvaluatedTuple, Obligation, Outcome, Principal, Verdict,
};
use crate::path::{canonical_path, segments};
use crate::tokens::{Grants, TokenError, TrustSet, VerifiedToken, verify};

/// Settings of the decision core, fixed by configuration. What tokens must satisfy is part of
/// the trust set (one policy per trusted issuer).
#[derive(Debug, Clone)]
pub struct CheckSettings {
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
    /// The `:authority` (host) of the request, for the route table.
    pub host: &'a str,
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
    pub trust: &'a TrustSet,
    pub snapshot: &'a PolicySnapshot,
    pub settings: &'a CheckSettings,
    pub now: i64,
}

/// The result of [`evaluate`]: a decision, or a question for the database.
#[derive(Debug)]
pub enum Step {
    Done(Checked),
    Lookup(Lookup),
    /// No trusted key has the token's `kid`, or its issuer's keys are unavailable: the
    /// adapter may fetch keys again (bounded) and evaluate once more, else answer this deny.
    Refetch(Checked),
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
    evaluate_with(request, context, |token| {
        verify(token, context.trust, context.now)
    })
}

/// Decides one request as [`evaluate`] does, with the bearer token verified by
/// `verify_token` instead of [`verify`]: the adapter's verified-token cache in front of it.
/// Everything after verification (staleness against the snapshot included) runs every time.
pub fn evaluate_with<T: Borrow<VerifiedToken>>(
    request: &AccessRequest<'_>,
    context: &Context<'_>,
    verify_token: impl FnOnce(&str) -> Result<T, TokenError>,
) -> Step {
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
    let verified = match verify_token(token) {
        Ok(verified) => verified,
        Err(error) => {
            // Missing keys are our fault, not the token's: 503, so clients keep good tokens.
            let outcome = match error {
                TokenError::KeysUnavailable => Outcome::Unavailable,
                _ => Outcome::InvalidToken,
            };
            let denied = deny(policy_id, outcome, error.reason(), tuple);
            return match error {
                TokenError::UnknownKey | TokenError::KeysUnavailable => Step::Refetch(denied),
                _ => Step::Done(denied),
            };
        }
    };
    let token: &VerifiedToken = verified.borrow();
    let principal = Principal {
        subject: token.subject.clone(),
        client_id: token.client_id.clone(),
    };
    let versions = &context.snapshot.versions;
    let current = if token.is_account_token() {
        versions.account(&token.subject)
    } else {
        versions.client(&token.subject)
    };

    // Revoked at `/revoke` (or with its refresh family) before it expired.
    if context.snapshot.revoked.contains(&token.jti) {
        let mut checked = deny(policy_id, Outcome::InvalidToken, "token_revoked", tuple);
        checked.principal = Some(principal);
        return Step::Done(checked);
    }
    if stale(token, current, versions) {
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
    // A token without a permission version (an external issuer's) still speaks only for a
    // live, enabled subject: a disabled or removed account gets nothing.
    if token.pver.is_none() && current.is_none() {
        return Step::Done(forbid(
            policy_id,
            principal,
            tuple,
            "subject_unknown_or_disabled",
            Vec::new(),
        ));
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
    // Route-supplied context wins; the route table fills in where the mesh cannot set it.
    let (resource_type, resource_name) = match (request.resource_type, request.resource_name) {
        (None, None) => match context
            .snapshot
            .routes
            .resolve(request.host, &path_segments)
        {
            Some((kind, name)) => {
                tuple.resource_type = Some(kind.to_owned());
                tuple.resource_name = name.map(str::to_owned);
                (Some(kind), name)
            }
            None => (None, None),
        },
        // Already in the tuple, from the request.
        given => given,
    };
    let mut in_scope = Vec::new();
    let mut missing_scope: Option<&str> = None;
    let candidates =
        context
            .snapshot
            .catalogue
            .candidates(action, &path_segments, resource_type, resource_name);
    for resource in candidates {
        if token
            .scopes
            .as_ref()
            .is_none_or(|scopes| scopes.contains(&resource.kind))
        {
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
            subject: if token.is_account_token() {
                Subject::Account(token.subject.clone())
            } else {
                Subject::Client(token.subject.clone())
            },
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
/// newer permission version than the token carries. A token without `pver` (an external
/// issuer's) carries no version to compare: its own lifetime bounds it.
pub fn is_stale(token: &VerifiedToken, subject: &Subject, snapshot: &PolicySnapshot) -> bool {
    stale(token, snapshot.versions.get(subject), &snapshot.versions)
}

/// [`is_stale`], given the current version of the token's subject.
fn stale(token: &VerifiedToken, current: Option<u64>, versions: &Versions) -> bool {
    let older =
        |current: Option<u64>, carried: u64| current.is_none_or(|current| carried < current);
    if token.pver.is_some_and(|pver| older(current, pver)) {
        return true;
    }
    match token.cver {
        Some(cver) => older(versions.client(&token.client_id), cver),
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
