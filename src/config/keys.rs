//! `[keys]`: where the key-encryption key lives, and how rotations are scheduled. The signing
//! keys themselves are in the store.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, ConfigError, invalid};
use crate::keyring::RotationSettings;

/// The longest `jwks_max_age_seconds` and `publish_lead_seconds` accepted: one day and 30 days.
const MAX_AGE_LIMIT: u64 = 86_400;
const LEAD_LIMIT: u64 = 30 * 86_400;

/// Signing keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// 32 random bytes, base64: seals the private keys kept in the store. Generated (mode 0600)
    /// on first start when missing and the store holds no key; replicas mount one copy.
    pub encryption_key_path: PathBuf,
    /// A PKCS#8 PEM RSA key imported as the first signing key when the store holds none, so a
    /// deployment keeps the key it had before keys were stored; unused otherwise.
    pub signing_key_path: Option<PathBuf>,
    /// The longest `Cache-Control: max-age` of `/jwks`; shorter when a scheduled key change is
    /// nearer.
    pub jwks_max_age_seconds: u64,
    /// Between publishing a rotated key and signing with it; at least `jwks_max_age_seconds`
    /// (its default), so every cache of `/jwks` has the key before the first token it signs.
    pub publish_lead_seconds: Option<u64>,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            encryption_key_path: "gatehouse-encryption-key".into(),
            signing_key_path: None,
            jwks_max_age_seconds: 300,
            publish_lead_seconds: None,
        }
    }
}

impl KeysConfig {
    /// Seconds between publishing a rotated key and signing with it.
    pub fn publish_lead(&self) -> u64 {
        self.publish_lead_seconds
            .unwrap_or(self.jwks_max_age_seconds)
    }
}

impl Config {
    /// How `gatehouse keys rotate` schedules: the publish lead, and the longest an access
    /// token signed by the previous key stays valid (lifetime plus leeway).
    pub fn rotation_settings(&self) -> RotationSettings {
        RotationSettings {
            publish_lead: self.keys.publish_lead() as i64,
            token_lifetime: self.tokens.ttl_seconds + self.tokens.leeway_seconds,
        }
    }
}

pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let keys = &config.keys;
    if keys.encryption_key_path.as_os_str().is_empty() {
        return Err(invalid("keys.encryption_key_path", "must not be empty"));
    }
    if keys.jwks_max_age_seconds > MAX_AGE_LIMIT {
        return Err(invalid(
            "keys.jwks_max_age_seconds",
            "must be at most 86400",
        ));
    }
    if keys.publish_lead() < keys.jwks_max_age_seconds {
        return Err(invalid(
            "keys.publish_lead_seconds",
            "must be at least keys.jwks_max_age_seconds: every cache of /jwks must hold a key \
             before it signs",
        ));
    }
    if keys.publish_lead() > LEAD_LIMIT {
        return Err(invalid(
            "keys.publish_lead_seconds",
            "must be at most 2592000",
        ));
    }
    Ok(())
}
