//! Configuration: a TOML file, then `GATEHOUSE_<SECTION>__<KEY>` environment variables, then
//! command-line flags, each overriding the one before; every key defaulted, the whole validated
//! before any port is bound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

use crate::check::{CheckSettings, MethodMap};
use crate::issuer::IssuerSettings;
use crate::tokens::{OwnClaims, VerifyPolicy};

mod http_authz;
mod issuers;
mod keys;
mod limits;

pub use http_authz::{Cidr, HttpAuthzConfig};
pub use issuers::{IssuerConfig, KeySource, TrustedIssuerConfig};
pub use keys::KeysConfig;
pub use limits::LimitsConfig;

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
    /// A key that does not exist or a value of the wrong shape, in the file, the environment
    /// or a flag; `origin` names where it came from.
    #[error("configuration key {key} ({origin}): {problem}")]
    Key {
        key: String,
        origin: String,
        problem: String,
    },
}

/// The longest refresh-token lifetime the configuration accepts: one year.
const REFRESH_LIFETIME_MAX: i64 = 365 * 86_400;

/// Environment variables read as configuration: `GATEHOUSE_<SECTION>__<KEY>`.
pub const ENV_PREFIX: &str = "GATEHOUSE_";

/// Values given as command-line flags; they override the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--grpc-addr` → `server.grpc_addr`.
    pub grpc_addr: Option<String>,
    /// `--http-addr` → `server.http_addr`.
    pub http_addr: Option<String>,
    /// `--store-url` → `store.url` (may carry a password: kept out of `Debug` output).
    pub store_url: Option<crate::secret::Secret>,
    /// `--log-level` → `log.level`.
    pub log_level: Option<String>,
    /// `--log-format` → `log.format`.
    pub log_format: Option<String>,
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
    /// `[http_authz]`: Envoy's HTTP ext_authz protocol and forward-auth proxies.
    pub http_authz: HttpAuthzConfig,
    /// `[admin]`: the administration API on the HTTP port.
    pub admin: AdminConfig,
    /// `[issuer]`: whether this gatehouse issues tokens.
    pub issuer: IssuerConfig,
    /// `[[issuers]]`: external issuers whose tokens are trusted.
    pub issuers: Vec<TrustedIssuerConfig>,
    /// `[limits]`: brute-force limits on client secrets and passwords.
    pub limits: LimitsConfig,
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
    /// A refresh token unused for this many seconds expires (idle lifetime).
    pub refresh_idle_seconds: i64,
    /// No refresh token of a family is honoured this long after the first was issued
    /// (absolute lifetime), however often it was rotated.
    pub refresh_absolute_seconds: i64,
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
            refresh_idle_seconds: 86_400,
            refresh_absolute_seconds: 30 * 86_400,
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
    /// Level of the one record per permitted request.
    pub permit_level: String,
    /// Level of the one record per denied request (our own faults, 503, are always `warn`).
    pub deny_level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "plain".into(),
            permit_level: "debug".into(),
            deny_level: "info".into(),
        }
    }
}

impl LogConfig {
    /// The level of permit records.
    pub fn permit_level(&self) -> tracing::Level {
        parse_level(&self.permit_level).unwrap_or(tracing::Level::DEBUG)
    }

    /// The level of deny records.
    pub fn deny_level(&self) -> tracing::Level {
        parse_level(&self.deny_level).unwrap_or(tracing::Level::INFO)
    }
}

/// The administration API (`/admin/...` on the HTTP port).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Off unless set: the endpoints are not even routed.
    pub enabled: bool,
    /// The scope a gatehouse access token must carry to use them.
    pub scope: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            scope: "gatehouse.admin".into(),
        }
    }
}

fn parse_level(text: &str) -> Option<tracing::Level> {
    match text {
        "trace" => Some(tracing::Level::TRACE),
        "debug" => Some(tracing::Level::DEBUG),
        "info" => Some(tracing::Level::INFO),
        "warn" => Some(tracing::Level::WARN),
        "error" => Some(tracing::Level::ERROR),
        _ => None,
    }
}

/// The first problem figment found, as one line naming the key and where it was set.
fn key_error(error: figment::Error) -> ConfigError {
    // figment's path already ends with the offending key, unknown ones included.
    let path = error.path.clone();
    let problem = match &error.kind {
        figment::error::Kind::UnknownField(..) => "no such key".to_owned(),
        kind => kind.to_string(),
    };
    let origin = match error.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        Some(figment::Source::File(file)) => format!("in {}", file.display()),
        // Flags are the only values merged from code.
        Some(_) => "from a command-line flag".to_owned(),
        // The environment: named as the operator wrote the variable.
        None => format!("from {ENV_PREFIX}{}", path.join("__").to_ascii_uppercase()),
    };
    ConfigError::Key {
        key: path.join("."),
        origin,
        problem: problem.replace('\n', " "),
    }
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

impl Config {
    /// Reads the file (the defaults when `path` is `None`) and the environment, and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, &Overrides::default())
    }

    /// Reads the file, then the environment, then `flags`, and validates the result.
    pub fn load_with(path: Option<&Path>, flags: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            // Syntax errors are reported by the TOML parser itself, which knows the line.
            toml::from_str::<toml::Table>(&text).map_err(|error| ConfigError::Parse {
                path: path.to_owned(),
                message: error.message().replace('\n', " "),
            })?;
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only `SECTION__KEY` names: `GATEHOUSE_CONFIG` and other GATEHOUSE_ variables that
        // are not configuration keys are left alone.
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        for (key, value) in [
            ("server.grpc_addr", flags.grpc_addr.as_deref()),
            ("server.http_addr", flags.http_addr.as_deref()),
            (
                "store.url",
                flags.store_url.as_ref().map(|url| url.expose()),
            ),
            ("log.level", flags.log_level.as_deref()),
            ("log.format", flags.log_format.as_deref()),
        ] {
            if let Some(value) = value {
                figment = figment.merge(Serialized::default(key, value));
            }
        }
        let config: Config = figment.extract().map_err(key_error)?;
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
        if !(60..=REFRESH_LIFETIME_MAX).contains(&tokens.refresh_idle_seconds) {
            return Err(invalid(
                "tokens.refresh_idle_seconds",
                "must be between 60 and 31536000",
            ));
        }
        if !(tokens.refresh_idle_seconds..=REFRESH_LIFETIME_MAX)
            .contains(&tokens.refresh_absolute_seconds)
        {
            return Err(invalid(
                "tokens.refresh_absolute_seconds",
                "must be at least tokens.refresh_idle_seconds and at most 31536000",
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
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                "must be a tracing filter such as info",
            ));
        }
        if !crate::resources::is_identifier(&self.admin.scope) {
            return Err(invalid("admin.scope", "must be a scope identifier"));
        }
        if self.admin.enabled && !self.issuer.enabled {
            return Err(invalid(
                "admin.enabled",
                "needs [issuer] enabled: the admin API accepts only gatehouse's own tokens",
            ));
        }
        if parse_level(&self.log.permit_level).is_none() {
            return Err(invalid(
                "log.permit_level",
                "must be trace, debug, info, warn or error",
            ));
        }
        if parse_level(&self.log.deny_level).is_none() {
            return Err(invalid(
                "log.deny_level",
                "must be trace, debug, info, warn or error",
            ));
        }
        // The realm is copied into every `WWW-Authenticate` challenge: visible ASCII and
        // spaces only, so it can neither end the quoted string nor start another header.
        let realm = &self.check.realm;
        if realm.is_empty()
            || realm
                .bytes()
                .any(|b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
        {
            return Err(invalid(
                "check.realm",
                "must be non-empty printable ASCII without quotes or backslashes",
            ));
        }
        self.limits.validate()?;
        keys::validate(self)?;
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
            throttle: self.limits.policy(),
            refresh_idle: self.tokens.refresh_idle_seconds,
            refresh_absolute: self.tokens.refresh_absolute_seconds,
        }
    }
}
