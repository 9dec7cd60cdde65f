//! `[limits]`: brute-force limits on client secrets and passwords (RFC 6749 §2.3.1, §10.10).

use serde::Deserialize;

use super::{ConfigError, invalid};
use crate::store::ThrottlePolicy;

/// Failed secret and password checks, counted in the store per client id and per username.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Failures in a row (each within `window_seconds` of the last) that lock the key.
    pub max_failures: u32,
    /// How long a failure is remembered after the last failure or lock.
    pub window_seconds: i64,
    /// Locks start at 1 s and double with each further failure up to this.
    pub max_lockout_seconds: i64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let policy = ThrottlePolicy::default();
        Self {
            max_failures: policy.max_failures,
            window_seconds: policy.window_seconds,
            max_lockout_seconds: policy.max_lockout_seconds,
        }
    }
}

impl LimitsConfig {
    /// The policy the issuer applies.
    pub fn policy(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: self.max_failures,
            window_seconds: self.window_seconds,
            max_lockout_seconds: self.max_lockout_seconds,
        }
    }

    /// Checks every value; a bad one names its key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=1000).contains(&self.max_failures) {
            return Err(invalid("limits.max_failures", "must be between 1 and 1000"));
        }
        if !(1..=86_400).contains(&self.window_seconds) {
            return Err(invalid(
                "limits.window_seconds",
                "must be between 1 and 86400",
            ));
        }
        if !(1..=86_400).contains(&self.max_lockout_seconds) {
            return Err(invalid(
                "limits.max_lockout_seconds",
                "must be between 1 and 86400",
            ));
        }
        Ok(())
    }
}
