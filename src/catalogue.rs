//! The in-memory picture of the policy the check path decides on: resources and the current
//! permission version of every subject. It is rebuilt from the store whenever the store's
//! generation changes, and swapped in whole.

use std::collections::{HashMap, HashSet};

use crate::policy::RouteSpec;
use crate::resources::{Resource, TemplateError, UrlTemplate};

/// Whom a token speaks for: an account (user) or a client acting for itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Account(String),
    Client(String),
}

impl Subject {
    /// `account` or `client`, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Account(_) => "account",
            Subject::Client(_) => "client",
        }
    }

    /// The account name or client id.
    pub fn id(&self) -> &str {
        match self {
            Subject::Account(id) | Subject::Client(id) => id,
        }
    }
}

/// A resource with its parsed URL template.
#[derive(Debug, Clone)]
struct Entry {
    resource: Resource,
    template: UrlTemplate,
}

/// Every resource, indexed by id and by action.
#[derive(Debug, Default)]
pub struct Catalogue {
    entries: Vec<Entry>,
    by_id: HashMap<String, usize>,
    by_action: HashMap<String, Vec<usize>>,
}

impl Catalogue {
    /// Builds the catalogue; a resource whose template does not parse is an error.
    pub fn new(resources: Vec<Resource>) -> Result<Self, TemplateError> {
        let mut catalogue = Catalogue::default();
        for resource in resources {
            let template = UrlTemplate::parse(&resource.url)?;
            let index = catalogue.entries.len();
            catalogue.by_id.insert(resource.id.clone(), index);
            catalogue
                .by_action
                .entry(resource.action.clone())
                .or_default()
                .push(index);
            catalogue.entries.push(Entry { resource, template });
        }
        Ok(catalogue)
    }

    /// The resource with this id.
    pub fn get(&self, id: &str) -> Option<&Resource> {
        self.by_id
            .get(id)
            .map(|index| &self.entries[*index].resource)
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every resource type, sorted, once each.
    pub fn resource_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self
            .entries
            .iter()
            .map(|entry| entry.resource.kind.as_str())
            .collect();
        types.sort_unstable();
        types.dedup();
        types
    }

    /// Whether the catalogue is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Resources whose whole tuple matches the request: the action, the URL template against
    /// the canonical path segments, and `type`/`name` where the route supplies them.
    pub fn candidates<'a>(
        &'a self,
        action: &str,
        segments: &'a [&'a str],
        resource_type: Option<&'a str>,
        resource_name: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Resource> + 'a {
        self.by_action
            .get(action)
            .into_iter()
            .flatten()
            .map(|index| &self.entries[*index])
            .filter(move |entry| {
                resource_type.is_none_or(|kind| entry.resource.kind == kind)
                    && resource_name.is_none_or(|name| entry.resource.name == name)
                    && entry.template.matches(segments)
            })
            .map(|entry| &entry.resource)
    }
}

/// One parsed route-table entry.
#[derive(Debug, Clone)]
struct Route {
    host: Option<String>,
    template: UrlTemplate,
    kind: String,
    name: Option<String>,
}

/// Host and path templates → resource type and name, for meshes that cannot set
/// `context_extensions`.
#[derive(Debug, Default)]
pub struct RouteTable(Vec<Route>);

impl RouteTable {
    /// Parses the route table; a template that does not parse is an error.
    pub fn new(routes: Vec<RouteSpec>) -> Result<Self, TemplateError> {
        routes
            .into_iter()
            .map(|spec| {
                Ok(Route {
                    template: UrlTemplate::parse(&spec.path)?,
                    host: spec.host,
                    kind: spec.kind,
                    name: spec.name,
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The `(type, name)` of the first entry matching `host` and the path segments.
    pub fn resolve(&self, host: &str, segments: &[&str]) -> Option<(&str, Option<&str>)> {
        self.0
            .iter()
            .find(|route| {
                route
                    .host
                    .as_deref()
                    .is_none_or(|wanted| host_matches(wanted, host))
                    && route.template.matches(segments)
            })
            .map(|route| (route.kind.as_str(), route.name.as_deref()))
    }
}

/// Case-insensitive host comparison; the request's port is ignored unless the entry names one.
fn host_matches(wanted: &str, host: &str) -> bool {
    if wanted.contains(':') {
        return wanted.eq_ignore_ascii_case(host);
    }
    let bare = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    wanted.eq_ignore_ascii_case(bare)
}

/// The current permission version of every live subject, accounts and clients apart so that
/// a check looks a name up without building a [`Subject`].
#[derive(Debug, Default, Clone)]
pub struct Versions {
    accounts: HashMap<String, u64>,
    clients: HashMap<String, u64>,
}

impl Versions {
    /// Wraps a version map.
    pub fn new(map: HashMap<Subject, u64>) -> Self {
        let mut versions = Self::default();
        for (subject, version) in map {
            match subject {
                Subject::Account(name) => versions.accounts.insert(name, version),
                Subject::Client(id) => versions.clients.insert(id, version),
            };
        }
        versions
    }

    /// The current version, or `None` when the subject no longer exists (or is disabled).
    pub fn get(&self, subject: &Subject) -> Option<u64> {
        match subject {
            Subject::Account(name) => self.account(name),
            Subject::Client(id) => self.client(id),
        }
    }

    /// The current version of the account `name`, as [`Versions::get`].
    pub fn account(&self, name: &str) -> Option<u64> {
        self.accounts.get(name).copied()
    }

    /// The current version of the client `id`, as [`Versions::get`].
    pub fn client(&self, id: &str) -> Option<u64> {
        self.clients.get(id).copied()
    }
}

/// Access tokens revoked before their expiry (RFC 7009), by `jti`.
#[derive(Debug, Default, Clone)]
pub struct RevokedTokens(HashSet<String>);

impl RevokedTokens {
    /// The set of revoked `jti` values.
    pub fn new(jtis: impl IntoIterator<Item = String>) -> Self {
        Self(jtis.into_iter().collect())
    }

    /// Whether the access token with this `jti` was revoked.
    pub fn contains(&self, jti: &str) -> bool {
        self.0.contains(jti)
    }

    /// How many tokens are listed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Everything the check path needs from the store, as one immutable value.
#[derive(Debug, Default)]
pub struct PolicySnapshot {
    pub generation: i64,
    pub policy_id: String,
    pub catalogue: Catalogue,
    pub versions: Versions,
    pub routes: RouteTable,
    /// Revoked access tokens that have not yet expired.
    pub revoked: RevokedTokens,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(id: &str, kind: &str, name: &str, action: &str, url: &str) -> Resource {
        Resource {
            id: id.into(),
            kind: kind.into(),
            name: name.into(),
            action: action.into(),
            url: url.into(),
            description: String::new(),
        }
    }

    #[test]
    fn candidates_match_every_element_of_the_tuple() {
        let catalogue = Catalogue::new(vec![
            resource("r1", "invoices", "invoice", "read", "/v1/invoices/{id}"),
            resource("r2", "invoices", "invoice", "write", "/v1/invoices/{id}"),
            resource("r3", "reports", "invoice", "read", "/v1/invoices/{id}"),
            resource("r4", "invoices", "lines", "read", "/v1/invoices/{id}/lines"),
        ])
        .unwrap();
        let segments = ["v1", "invoices", "inv-1"];
        let ids = |kind, name| -> Vec<String> {
            catalogue
                .candidates("read", &segments, kind, name)
                .map(|r| r.id.clone())
                .collect()
        };
        assert_eq!(ids(None, None), ["r1", "r3"]);
        assert_eq!(ids(Some("invoices"), None), ["r1"]);
        assert_eq!(ids(Some("invoices"), Some("lines")), Vec::<String>::new());
        assert_eq!(
            catalogue.get("r2").map(|r| r.action.as_str()),
            Some("write")
        );
    }

    #[test]
    fn route_table_resolves_first_match_by_host_and_template() {
        let route = |host: Option<&str>, path: &str, kind: &str, name: Option<&str>| RouteSpec {
            host: host.map(str::to_owned),
            path: path.into(),
            kind: kind.into(),
            name: name.map(str::to_owned),
        };
        let table = RouteTable::new(vec![
            route(
                Some("billing.local"),
                "/v1/invoices/{**}",
                "invoices",
                Some("invoice"),
            ),
            route(None, "/v1/invoices/{**}", "legacy", None),
        ])
        .unwrap();
        let segments = ["v1", "invoices", "inv-1"];
        assert_eq!(
            table.resolve("billing.local", &segments),
            Some(("invoices", Some("invoice")))
        );
        assert_eq!(
            table.resolve("BILLING.local:8443", &segments),
            Some(("invoices", Some("invoice")))
        );
        assert_eq!(
            table.resolve("other.local", &segments),
            Some(("legacy", None))
        );
        assert_eq!(table.resolve("billing.local", &["v2"]), None);
    }
}
