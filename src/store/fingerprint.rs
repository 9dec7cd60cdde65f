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

/// One subject as both backends read it for fingerprinting.
#[derive(Debug, Clone)]
pub struct SubjectRow {
    pub kind: String,
    pub id: String,
    pub disabled: bool,
    /// The password hash (accounts) or secret hash (clients), as bytes.
    pub credential: Vec<u8>,
    /// `kind|grant types|scopes` for clients, empty for accounts.
    pub settings: String,
}

/// A permission-version row to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionWrite {
    pub kind: String,
    pub id: String,
    pub version: i64,
    pub fingerprint: Vec<u8>,
    /// `true` when the subject had no version yet (first apply that declares it).
    pub new: bool,
}

/// Decides which permission versions an apply writes: a subject without a version starts at 1,
/// a subject whose fingerprint changed moves to the next version, the rest stay as they are.
///
/// `granted` holds `(subject kind, subject id, resource)` for every resolved grant; `current`
/// maps `(kind, id)` to the stored version and fingerprint.
pub fn plan_versions(
    granted: Vec<(String, String, Resource)>,
    subjects: Vec<SubjectRow>,
    current: &std::collections::HashMap<(String, String), (i64, Vec<u8>)>,
) -> Vec<VersionWrite> {
    let mut resources: std::collections::HashMap<(String, String), Vec<Resource>> =
        std::collections::HashMap::new();
    for (kind, id, resource) in granted {
        resources.entry((kind, id)).or_default().push(resource);
    }
    let mut writes = Vec::new();
    for subject in subjects {
        let key = (subject.kind, subject.id);
        let state = SubjectState {
            disabled: subject.disabled,
            credential: &subject.credential,
            settings: subject.settings,
            resources: resources
                .get(&key)
                .map(|list| list.iter().collect())
                .unwrap_or_default(),
        };
        let print = fingerprint(&state);
        let (version, new) = match current.get(&key) {
            Some((_, old)) if *old == print => continue,
            Some((version, _)) => (version + 1, false),
            None => (1, true),
        };
        writes.push(VersionWrite {
            kind: key.0,
            id: key.1,
            version,
            fingerprint: print,
            new,
        });
    }
    writes
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn row(id: &str, disabled: bool) -> SubjectRow {
        SubjectRow {
            kind: "account".into(),
            id: id.into(),
            disabled,
            credential: b"hash".to_vec(),
            settings: String::new(),
        }
    }

    #[test]
    fn versions_start_at_one_and_move_only_when_the_fingerprint_changes() {
        let first = plan_versions(Vec::new(), vec![row("a", false)], &HashMap::new());
        assert_eq!((first[0].version, first[0].new), (1, true));

        let mut current = HashMap::new();
        current.insert(
            ("account".into(), "a".into()),
            (1, first[0].fingerprint.clone()),
        );
        assert!(plan_versions(Vec::new(), vec![row("a", false)], &current).is_empty());

        let disabled = plan_versions(Vec::new(), vec![row("a", true)], &current);
        assert_eq!((disabled[0].version, disabled[0].new), (2, false));
    }
}
