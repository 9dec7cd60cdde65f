//! `[issuer]` (does this gatehouse issue tokens?) and `[[issuers]]` (whose tokens it trusts).

use std::time::Duration;

use serde::Deserialize;

use super::{Config, ConfigError, TokensConfig, invalid};
use crate::tokens::{OwnClaims, VerifyPolicy};

/// The embedded issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerConfig {
    /// `false` makes gatehouse decide-only: no signing key, no `/token`, no `/jwks`, and only
    /// the `[[issuers]]` are trusted.
    pub enabled: bool,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// An external issuer whose access tokens are accepted (another gatehouse, or any OAuth
/// server publishing RS256 keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// Its JWKS. Exactly one of `jwks_url` and `discovery_url`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Its OpenID discovery or RFC 8414 metadata, whose `jwks_uri` is used and whose `issuer`
    /// must equal `issuer`.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// The audience its tokens must carry; `[tokens] audience` when absent.
    #[serde(default)]
    pub audience: Option<String>,
    /// How often the keys are fetched again: the longest a removed key stays trusted.
    #[serde(default = "defaults::refresh_interval")]
    pub refresh_interval_seconds: u64,
    /// How long after the last successful fetch the keys are still used while the endpoint
    /// fails; past it the issuer's tokens are answered 503.
    #[serde(default = "defaults::max_stale")]
    pub max_stale_seconds: u64,
    /// A token with an unknown `kid` fetches the keys again at most once per this many seconds.
    #[serde(default = "defaults::refetch_cooldown")]
    pub refetch_cooldown_seconds: u64,
    /// One fetch (discovery document and key set) gives up after this long.
    #[serde(default = "defaults::fetch_timeout")]
    pub fetch_timeout_ms: u64,
}

mod defaults {
    pub fn refresh_interval() -> u64 {
        300
    }
    pub fn max_stale() -> u64 {
        3600
    }
    pub fn refetch_cooldown() -> u64 {
        30
    }
    pub fn fetch_timeout() -> u64 {
        2000
    }
}

/// Where an issuer's keys are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Jwks(String),
    Discovery(String),
}

impl TrustedIssuerConfig {
    /// A trusted issuer with every optional key at its default.
    pub fn new(issuer: impl Into<String>, source: KeySource) -> Self {
        let (jwks_url, discovery_url) = match source {
            KeySource::Jwks(url) => (Some(url), None),
            KeySource::Discovery(url) => (None, Some(url)),
        };
        Self {
            issuer: issuer.into(),
            jwks_url,
            discovery_url,
            audience: None,
            refresh_interval_seconds: defaults::refresh_interval(),
            max_stale_seconds: defaults::max_stale(),
            refetch_cooldown_seconds: defaults::refetch_cooldown(),
            fetch_timeout_ms: defaults::fetch_timeout(),
        }
    }

    /// Where its keys are found (validation guarantees exactly one source).
    pub fn source(&self) -> KeySource {
        match (&self.jwks_url, &self.discovery_url) {
            (Some(url), _) => KeySource::Jwks(url.clone()),
            (None, Some(url)) => KeySource::Discovery(url.clone()),
            (None, None) => KeySource::Jwks(String::new()),
        }
    }

    /// What its tokens must satisfy: its issuer and audience, `[tokens]` leeway and limits.
    pub fn verify_policy(&self, tokens: &TokensConfig) -> VerifyPolicy {
        VerifyPolicy {
            issuer: self.issuer.clone(),
            audience: self
                .audience
                .clone()
                .unwrap_or_else(|| tokens.audience.clone()),
            leeway: tokens.leeway_seconds,
            max_lifetime: tokens.max_lifetime_seconds,
            max_token_bytes: tokens.max_token_bytes,
            own_claims: OwnClaims::Optional,
        }
    }

    pub fn refresh_interval(&self) -> Duration {
        Duration::from_secs(self.refresh_interval_seconds)
    }

    pub fn refetch_cooldown(&self) -> Duration {
        Duration::from_secs(self.refetch_cooldown_seconds)
    }

    pub fn fetch_timeout(&self) -> Duration {
        Duration::from_millis(self.fetch_timeout_ms)
    }
}

/// Checks `[issuer]` and every `[[issuers]]` entry.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    if !config.issuer.enabled && config.issuers.is_empty() {
        return Err(invalid(
            "issuers",
            "a decide-only gatehouse ([issuer] enabled = false) needs at least one trusted issuer",
        ));
    }
    for (index, trusted) in config.issuers.iter().enumerate() {
        let problem = |text: &str| format!("entry {index}: {text}");
        if trusted.issuer.trim().is_empty() {
            return Err(invalid("issuers.issuer", problem("must not be empty")));
        }
        if config.issuers[..index]
            .iter()
            .any(|other| other.issuer == trusted.issuer)
        {
            return Err(invalid("issuers.issuer", problem("is listed twice")));
        }
        if config.issuer.enabled && trusted.issuer == config.tokens.issuer {
            return Err(invalid(
                "issuers.issuer",
                problem(
                    "is gatehouse's own tokens.issuer; set [issuer] enabled = false to trust another gatehouse under that name",
                ),
            ));
        }
        let url = match (&trusted.jwks_url, &trusted.discovery_url) {
            (Some(url), None) | (None, Some(url)) => url,
            _ => {
                return Err(invalid(
                    "issuers.jwks_url",
                    problem("exactly one of jwks_url and discovery_url is required"),
                ));
            }
        };
        match reqwest::Url::parse(url) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.has_host()
                    && url.username().is_empty()
                    && url.password().is_none() => {}
            _ => {
                return Err(invalid(
                    "issuers.jwks_url",
                    problem("must be an absolute http or https URL without credentials"),
                ));
            }
        }
        if trusted
            .audience
            .as_ref()
            .is_some_and(|audience| audience.trim().is_empty())
        {
            return Err(invalid("issuers.audience", problem("must not be empty")));
        }
        if trusted.refresh_interval_seconds == 0 {
            return Err(invalid(
                "issuers.refresh_interval_seconds",
                problem("must be positive"),
            ));
        }
        if trusted.max_stale_seconds < trusted.refresh_interval_seconds {
            return Err(invalid(
                "issuers.max_stale_seconds",
                problem("must be at least refresh_interval_seconds"),
            ));
        }
        if trusted.refetch_cooldown_seconds == 0 {
            return Err(invalid(
                "issuers.refetch_cooldown_seconds",
                problem("must be positive"),
            ));
        }
        if !(1..=60_000).contains(&trusted.fetch_timeout_ms) {
            return Err(invalid(
                "issuers.fetch_timeout_ms",
                problem("must be between 1 and 60000"),
            ));
        }
    }
    Ok(())
}
