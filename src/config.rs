//! Configuration: a TOML file with every key defaulted, validated before any port is bound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::check::{CheckSettings, MethodMap};
use crate::issuer::IssuerSettings;
use crate::tokens::{OwnClaims, VerifyPolicy};

mod issuers;

pub use issuers::{IssuerConfig, KeySource, TrustedIssuerConfig};

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration key {key}: {problem}")]
    Invalid { key: &'static str, problem: String },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub keys: KeysConfig,
    pub tokens: TokensConfig,
    pub check: CheckConfig,
    pub log: LogConfig,
    /// `[issuer]`: whether this gatehouse issues tokens.
    pub issuer: IssuerConfig,
    /// `[[issuers]]`: external issuers whose tokens are trusted.
    pub issuers: Vec<TrustedIssuerConfig>,
}

/// Listening addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Envoy ext_authz v3 gRPC.
    pub grpc_addr: SocketAddr,
    /// `/token`, `/jwks`, `/healthz`, `/readyz`.
    pub http_addr: SocketAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9000)),
        }
    }
}

/// The database.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB` (shared by replicas).
    pub url: String,
    /// A database-path check waits at most this long for its query, then answers 503.
    pub query_timeout_ms: u64,
    /// How often the store's generation is polled to refresh the in-memory snapshot.
    pub reload_interval_ms: u64,
    /// Database-path answers kept in memory (0 disables the cache).
    pub grant_cache_capacity: u64,
    /// How long a cached database-path answer is kept; any permission change clears it.
    pub grant_cache_ttl_ms: u64,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A database URL may carry a password.
        let scheme = self.url.split(':').next().unwrap_or("");
        f.debug_struct("StoreConfig")
            .field("url", &format_args!("{scheme}:***"))
            .field("query_timeout_ms", &self.query_timeout_ms)
            .field("reload_interval_ms", &self.reload_interval_ms)
            .field("grant_cache_capacity", &self.grant_cache_capacity)
            .field("grant_cache_ttl_ms", &self.grant_cache_ttl_ms)
            .finish()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://gatehouse.db".into(),
            query_timeout_ms: 150,
            reload_interval_ms: 250,
            grant_cache_capacity: 100_000,
            grant_cache_ttl_ms: 30_000,
        }
    }
}

/// Signing keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// PKCS#8 PEM RSA key; generated (mode 0600) on first start when missing.
    pub signing_key_path: PathBuf,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            signing_key_path: "gatehouse-signing-key.pem".into(),
        }
    }
}

/// Access tokens: what is minted and what is accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// `iss` of minted tokens, and the only issuer accepted.
    pub issuer: String,
    /// `aud` of minted tokens, and the audience required.
    pub audience: String,
    /// Access-token lifetime in seconds (5–15 minutes recommended).
    pub ttl_seconds: i64,
    /// Clock-skew leeway for `exp`, `nbf` and `iat`.
    pub leeway_seconds: i64,
    /// Tokens whose `exp − iat` exceeds this are refused.
    pub max_lifetime_seconds: i64,
    /// Bearer tokens longer than this are refused before decoding.
    pub max_token_bytes: usize,
    /// Above this many grants a token carries the database marker instead of the ids.
    pub grants_in_token_max: usize,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:9000".into(),
            audience: "gatehouse".into(),
            ttl_seconds: 600,
            leeway_seconds: 60,
            max_lifetime_seconds: 86_400,
            max_token_bytes: 16 * 1024,
            grants_in_token_max: 100,
        }
    }
}

/// The check path.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckConfig {
    /// `realm` of `WWW-Authenticate` challenges.
    pub realm: String,
    /// Permits for tokens expiring within this many seconds carry `reauth/token_expiring`.
    pub expiring_within_seconds: i64,
    /// HTTP method → action; replaces the default table when given.
    pub methods: Option<HashMap<String, String>>,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            realm: "gatehouse".into(),
            expiring_within_seconds: 60,
            methods: None,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `gatehouse=debug`.
    pub level: String,
    /// `plain` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "plain".into(),
        }
    }
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

impl Config {
    /// Reads and validates a file, or returns the validated defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let config = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|error| ConfigError::Parse {
                    path: path.to_owned(),
                    message: error.message().to_owned(),
                })?
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value; a bad one names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let tokens = &self.tokens;
        if tokens.issuer.trim().is_empty() {
            return Err(invalid("tokens.issuer", "must not be empty"));
        }
        if tokens.audience.trim().is_empty() {
            return Err(invalid("tokens.audience", "must not be empty"));
        }
        if !(60..=3600).contains(&tokens.ttl_seconds) {
            return Err(invalid("tokens.ttl_seconds", "must be between 60 and 3600"));
        }
        if !(0..=300).contains(&tokens.leeway_seconds) {
            return Err(invalid(
                "tokens.leeway_seconds",
                "must be between 0 and 300",
            ));
        }
        if tokens.max_lifetime_seconds < tokens.ttl_seconds {
            return Err(invalid(
                "tokens.max_lifetime_seconds",
                "must be at least tokens.ttl_seconds",
            ));
        }
        if !(1024..=1024 * 1024).contains(&tokens.max_token_bytes) {
            return Err(invalid(
                "tokens.max_token_bytes",
                "must be between 1024 and 1048576",
            ));
        }
        let url = &self.store.url;
        if !["sqlite:", "postgres:", "postgresql:"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Err(invalid("store.url", "must be a sqlite: or postgres: URL"));
        }
        if self.store.query_timeout_ms == 0 || self.store.reload_interval_ms == 0 {
            return Err(invalid("store", "timeouts and intervals must be positive"));
        }
        if !matches!(self.log.format.as_str(), "plain" | "json") {
            return Err(invalid("log.format", "must be plain or json"));
        }
        if self.check.realm.contains(['"', '\\']) || self.check.realm.is_empty() {
            return Err(invalid(
                "check.realm",
                "must be non-empty without quotes or backslashes",
            ));
        }
        issuers::validate(self)
    }

    /// Settings of the decision core.
    pub fn check_settings(&self) -> CheckSettings {
        CheckSettings {
            methods: self
                .check
                .methods
                .clone()
                .map(MethodMap::new)
                .unwrap_or_default(),
            expiring_within: self.check.expiring_within_seconds,
        }
    }

    /// What gatehouse's own tokens must satisfy.
    pub fn own_verify_policy(&self) -> VerifyPolicy {
        VerifyPolicy {
            issuer: self.tokens.issuer.clone(),
            audience: self.tokens.audience.clone(),
            leeway: self.tokens.leeway_seconds,
            max_lifetime: self.tokens.max_lifetime_seconds,
            max_token_bytes: self.tokens.max_token_bytes,
            own_claims: OwnClaims::Required,
        }
    }

    /// Settings of the issuer.
    pub fn issuer_settings(&self) -> IssuerSettings {
        IssuerSettings {
            issuer: self.tokens.issuer.clone(),
            audience: self.tokens.audience.clone(),
            ttl: self.tokens.ttl_seconds,
            grants_in_token_max: self.tokens.grants_in_token_max,
        }
    }
}
