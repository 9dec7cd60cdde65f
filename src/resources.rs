//! Resources: the `(type, name, action, url)` tuples grants point at.

mod template;

use serde::{Deserialize, Serialize};

pub use template::{TemplateError, UrlTemplate};

/// A protected resource. A request matches it only on every element of the tuple.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub action: String,
    pub url: String,
    #[serde(default)]
    pub description: String,
}

/// Whether `value` is a valid identifier for resources, roles, clients and accounts:
/// 1–128 characters from `A-Z a-z 0-9 . _ - : @`.
pub fn is_identifier(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'@'))
}
