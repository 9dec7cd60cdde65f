//! Permission fingerprints: a digest of everything that decides what a subject may do.
//!
//! Every backend computes the same fingerprint after an apply; a subject whose fingerprint
//! changed gets a new permission version, which makes its older tokens stale.

use sha2::{Digest, Sha256};

use crate::resources::Resource;

/// The inputs of a subject's fingerprint.
#[derive(Debug, Default, Clone)]
pub struct SubjectState<'a> {
    pub disabled: bool,
    /// The password hash (accounts) or secret hash (clients).
    pub credential: &'a [u8],
    /// Kind, grant types and scopes (clients only).
    pub settings: String,
    pub resources: Vec<&'a Resource>,
}

/// SHA-256 over an unambiguous encoding of the state; resources in id order.
pub fn fingerprint(state: &SubjectState<'_>) -> Vec<u8> {
    let mut resources = state.resources.clone();
    resources.sort_by(|a, b| a.id.cmp(&b.id));
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(&[u8::from(state.disabled)]);
    field(state.credential);
    field(state.settings.as_bytes());
    for resource in resources {
        for part in [
            &resource.id,
            &resource.kind,
            &resource.name,
            &resource.action,
            &resource.url,
        ] {
            field(part.as_bytes());
        }
    }
    hasher.finalize().to_vec()
}
