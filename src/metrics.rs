//! Prometheus metrics, recorded by the adapters (gRPC, HTTP, key fetching, the grant cache) and
//! served at `/metrics`. Every label takes values from a fixed set (decision reasons, grant
//! types and OAuth error codes are constants; issuers come from the configuration), so the
//! number of series is bounded whatever requests arrive.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::decision::{Checked, Verdict};

/// `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of `gatehouse_decisions_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
    status: u16,
    reason: &'static str,
}

/// One label, `result`, `issuer`, `grant_type` or `error`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabel {
    issuer: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantTypeLabel {
    grant_type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    error: &'static str,
}

/// Every metric of the process.
#[derive(Debug)]
struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    check_duration: Histogram,
    grant_cache: Family<ResultLabel, Counter>,
    db_queries: Family<ResultLabel, Counter>,
    jwks_refreshes: Family<IssuerLabel, Counter>,
    jwks_failures: Family<IssuerLabel, Counter>,
    tokens_issued: Family<GrantTypeLabel, Counter>,
    token_errors: Family<ErrorLabel, Counter>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let decisions = Family::default();
        // 100 µs to about 3.3 s.
        let check_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let grant_cache = Family::default();
        let db_queries = Family::default();
        let jwks_refreshes = Family::default();
        let jwks_failures = Family::default();
        let tokens_issued = Family::default();
        let token_errors = Family::default();
        // The text encoder appends `_total` to counters.
        registry.register(
            "gatehouse_decisions",
            "Decisions by verdict, HTTP status and reason code",
            decisions.clone(),
        );
        registry.register(
            "gatehouse_check_duration_seconds",
            "Time to decide one request, from receipt to answer",
            check_duration.clone(),
        );
        registry.register(
            "gatehouse_grant_cache_lookups",
            "Database-path questions answered from the grant cache (hit) or the store (miss)",
            grant_cache.clone(),
        );
        registry.register(
            "gatehouse_db_queries",
            "Database-path grant queries by result (granted, denied, error, timeout)",
            db_queries.clone(),
        );
        registry.register(
            "gatehouse_jwks_refreshes",
            "Successful key-set fetches per trusted issuer",
            jwks_refreshes.clone(),
        );
        registry.register(
            "gatehouse_jwks_refresh_failures",
            "Failed key-set fetches per trusted issuer",
            jwks_failures.clone(),
        );
        registry.register(
            "gatehouse_tokens_issued",
            "Access tokens minted at /token by grant type",
            tokens_issued.clone(),
        );
        registry.register(
            "gatehouse_token_errors",
            "Refused /token requests by OAuth error code",
            token_errors.clone(),
        );
        Self {
            registry,
            decisions,
            check_duration,
            grant_cache,
            db_queries,
            jwks_refreshes,
            jwks_failures,
            tokens_issued,
            token_errors,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The exposition text of every metric.
pub fn encode() -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &METRICS.registry);
    text
}

/// One decision and how long it took.
pub fn decision(checked: &Checked, took: Duration) {
    let labels = DecisionLabels {
        decision: match checked.decision.decision {
            Verdict::Permit => "permit",
            Verdict::Deny => "deny",
        },
        status: checked.outcome.http_status(),
        reason: checked.decision.reason,
    };
    METRICS.decisions.get_or_create(&labels).inc();
    METRICS.check_duration.observe(took.as_secs_f64());
}

/// A database-path question: answered from the cache (`hit`) or not.
pub fn grant_cache_lookup(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    METRICS
        .grant_cache
        .get_or_create(&ResultLabel { result })
        .inc();
}

/// One grant query against the store: `granted`, `denied`, `error` or `timeout`.
pub fn db_query(result: &'static str) {
    METRICS
        .db_queries
        .get_or_create(&ResultLabel { result })
        .inc();
}

/// One key-set fetch of `issuer`.
pub fn jwks_fetch(issuer: &str, succeeded: bool) {
    let family = if succeeded {
        &METRICS.jwks_refreshes
    } else {
        &METRICS.jwks_failures
    };
    family
        .get_or_create(&IssuerLabel {
            issuer: issuer.to_owned(),
        })
        .inc();
}

/// One token minted.
pub fn token_issued(grant_type: &'static str) {
    METRICS
        .tokens_issued
        .get_or_create(&GrantTypeLabel { grant_type })
        .inc();
}

/// One `/token` request refused with `error`.
pub fn token_error(error: &'static str) {
    METRICS
        .token_errors
        .get_or_create(&ErrorLabel { error })
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_prometheus_names() {
        token_issued("client_credentials");
        token_error("invalid_client");
        jwks_fetch("https://idp.test", false);
        let text = encode();
        assert!(text.contains("gatehouse_tokens_issued_total{grant_type=\"client_credentials\"}"));
        assert!(text.contains("gatehouse_token_errors_total{error=\"invalid_client\"}"));
        assert!(
            text.contains("gatehouse_jwks_refresh_failures_total{issuer=\"https://idp.test\"}")
        );
        assert!(text.contains("# TYPE gatehouse_check_duration_seconds histogram"));
    }
}
