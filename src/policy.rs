//! The declarative policy file: clients, accounts, resources, roles and grants.
//!
//! `apply` makes the store equal to the file: what the file declares is created or updated,
//! what it no longer declares is removed. The file is validated completely before anything is
//! written, and the store applies it in one transaction, so a file with an error changes
//! nothing.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::credentials::{CLIENT_ID_PREFIX, is_password_hash};
use crate::resources::{Resource, UrlTemplate, is_identifier};

/// The OAuth grants a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.4: a service acting for itself.
    ClientCredentials,
    /// RFC 6749 §4.3: legacy, opt-in per client (RFC 9700 §2.4 advises against it).
    Password,
    /// RFC 6749 §4.1 with PKCE (RFC 7636, S256 only): how people sign in.
    AuthorizationCode,
    /// RFC 6749 §6: confidential clients only, rotated on every use.
    RefreshToken,
}

impl GrantType {
    /// The `grant_type` wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
        }
    }

    /// Parses a `grant_type` wire value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "client_credentials" => Some(GrantType::ClientCredentials),
            "password" => Some(GrantType::Password),
            "authorization_code" => Some(GrantType::AuthorizationCode),
            "refresh_token" => Some(GrantType::RefreshToken),
            _ => None,
        }
    }
}

/// Confidential clients hold a secret; public clients (browsers, mobile apps) cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    Confidential,
    Public,
}

impl ClientKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Confidential => "confidential",
            ClientKind::Public => "public",
        }
    }
}

/// A role: a named set of resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub resources: Vec<String>,
}

/// A client, named by the policy; its id and secret are generated on first apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub name: String,
    pub kind: ClientKind,
    pub grant_types: Vec<GrantType>,
    /// The resource types the client may request (its allowed scopes).
    pub scopes: Vec<String>,
    /// Where `/authorize` may send the browser back; matched exactly (RFC 9700 §4.1.3).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub disabled: bool,
}

/// An account (a person) who signs in through a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    pub username: String,
    /// An argon2 PHC string (`gatehouse hash-password` prints one). When omitted, a password
    /// already stored for the account is kept.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub disabled: bool,
}

/// A role given to exactly one account or one client (by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    pub role: String,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub client: Option<String>,
}

/// A route-table entry: where Envoy cannot set `context_extensions` (Istio `CUSTOM`), the
/// request's host and path select the resource `type` (and optionally `name`). Entries are
/// tried in file order; the first match wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The `:authority` to match (case-insensitive, port ignored unless given); any host when
    /// omitted.
    #[serde(default)]
    pub host: Option<String>,
    /// A URL template, as for resources.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default = "default_policy_id")]
    pub policy_id: String,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub roles: Vec<RoleSpec>,
    #[serde(default)]
    pub clients: Vec<ClientSpec>,
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
    #[serde(default)]
    pub grants: Vec<GrantSpec>,
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
}

fn default_policy_id() -> String {
    "gatehouse-rbac-v1".to_owned()
}

/// Why a policy file was refused; `at` names the offending entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file is not valid YAML for a policy: {0}")]
    Syntax(String),
    #[error("{at}: {problem}")]
    Invalid { at: String, problem: String },
}

fn invalid(at: impl Into<String>, problem: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        at: at.into(),
        problem: problem.into(),
    }
}

impl PolicyFile {
    /// Parses and validates a YAML policy.
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        let policy: PolicyFile =
            serde_yaml::from_str(text).map_err(|error| PolicyError::Syntax(error.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks every reference and value; nothing is written unless this passes.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if !is_identifier(&self.policy_id) {
            return Err(invalid("policy_id", "must be an identifier"));
        }

        let mut resource_ids = HashSet::new();
        let mut tuples = HashSet::new();
        for (index, resource) in self.resources.iter().enumerate() {
            let at = format!("resources[{index}]");
            if !is_identifier(&resource.id) {
                return Err(invalid(at, "id must be an identifier"));
            }
            for (field, value) in [
                ("type", &resource.kind),
                ("name", &resource.name),
                ("action", &resource.action),
            ] {
                if !is_identifier(value) {
                    return Err(invalid(format!("{at}.{field}"), "must be an identifier"));
                }
            }
            UrlTemplate::parse(&resource.url)
                .map_err(|error| invalid(format!("{at}.url"), error.to_string()))?;
            if !resource_ids.insert(resource.id.as_str()) {
                return Err(invalid(
                    at,
                    format!("duplicate resource id {}", resource.id),
                ));
            }
            let tuple = (
                &resource.kind,
                &resource.name,
                &resource.action,
                &resource.url,
            );
            if !tuples.insert(tuple) {
                return Err(invalid(
                    at,
                    "another resource has the same (type, name, action, url)",
                ));
            }
        }

        let mut role_ids = HashSet::new();
        for (index, role) in self.roles.iter().enumerate() {
            let at = format!("roles[{index}]");
            if !is_identifier(&role.id) || !role_ids.insert(role.id.as_str()) {
                return Err(invalid(at, "id must be a unique identifier"));
            }
            if let Some(missing) = role
                .resources
                .iter()
                .find(|id| !resource_ids.contains(id.as_str()))
            {
                return Err(invalid(at, format!("unknown resource {missing}")));
            }
        }

        let mut client_names = HashSet::new();
        for (index, client) in self.clients.iter().enumerate() {
            let at = format!("clients[{index}]");
            if !is_identifier(&client.name) || !client_names.insert(client.name.as_str()) {
                return Err(invalid(at, "name must be a unique identifier"));
            }
            if client.grant_types.is_empty() {
                return Err(invalid(at, "grant_types must not be empty"));
            }
            if client.kind == ClientKind::Public
                && client.grant_types.contains(&GrantType::ClientCredentials)
            {
                return Err(invalid(at, "a public client cannot use client_credentials"));
            }
            if client.kind == ClientKind::Public
                && client.grant_types.contains(&GrantType::RefreshToken)
            {
                return Err(invalid(
                    at,
                    "a public client cannot hold refresh tokens (refresh_token is for confidential clients)",
                ));
            }
            let uses_code = client.grant_types.contains(&GrantType::AuthorizationCode);
            if uses_code && client.redirect_uris.is_empty() {
                return Err(invalid(
                    at,
                    "authorization_code needs at least one redirect_uris entry",
                ));
            }
            if !uses_code && !client.redirect_uris.is_empty() {
                return Err(invalid(
                    at,
                    "redirect_uris is only for the authorization_code grant",
                ));
            }
            if let Some(bad) = client
                .redirect_uris
                .iter()
                .find(|uri| !is_redirect_uri(uri))
            {
                return Err(invalid(
                    at,
                    format!(
                        "redirect_uri {bad:?} must be an absolute https URI (http only for loopback) without a fragment"
                    ),
                ));
            }
            if let Some(bad) = client.scopes.iter().find(|scope| !is_identifier(scope)) {
                return Err(invalid(at, format!("scope {bad:?} is not an identifier")));
            }
        }

        let mut usernames = HashSet::new();
        for (index, account) in self.accounts.iter().enumerate() {
            let at = format!("accounts[{index}]");
            if !is_identifier(&account.username) || !usernames.insert(account.username.as_str()) {
                return Err(invalid(at, "username must be a unique identifier"));
            }
            // RFC 9700 §4.15: a client's tokens carry its generated id as `sub`, so no person
            // may be named like one.
            if account.username.starts_with(CLIENT_ID_PREFIX) {
                return Err(invalid(
                    at,
                    format!(
                        "usernames starting with {CLIENT_ID_PREFIX} are reserved for client ids"
                    ),
                ));
            }
            if account
                .password_hash
                .as_deref()
                .is_some_and(|phc| !is_password_hash(phc))
            {
                return Err(invalid(at, "password_hash must be an argon2 PHC string"));
            }
        }

        for (index, route) in self.routes.iter().enumerate() {
            let at = format!("routes[{index}]");
            let host_ok = route.host.as_deref().is_none_or(|host| {
                !host.is_empty()
                    && host.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b)
                    })
            });
            if !host_ok {
                return Err(invalid(
                    at,
                    "host must be a lower-case host name, optionally with :port",
                ));
            }
            UrlTemplate::parse(&route.path)
                .map_err(|error| invalid(format!("{at}.path"), error.to_string()))?;
            if !is_identifier(&route.kind)
                || route.name.as_deref().is_some_and(|n| !is_identifier(n))
            {
                return Err(invalid(at, "type and name must be identifiers"));
            }
        }

        for (index, grant) in self.grants.iter().enumerate() {
            let at = format!("grants[{index}]");
            if !role_ids.contains(grant.role.as_str()) {
                return Err(invalid(at, format!("unknown role {}", grant.role)));
            }
            match (&grant.account, &grant.client) {
                (Some(account), None) if usernames.contains(account.as_str()) => {}
                (None, Some(client)) if client_names.contains(client.as_str()) => {}
                (Some(_), None) | (None, Some(_)) => {
                    return Err(invalid(
                        at,
                        "names an account or client the file does not declare",
                    ));
                }
                _ => return Err(invalid(at, "must name exactly one of account or client")),
            }
        }
        Ok(())
    }
}

/// A redirect URI a client may register: `https`, `http` on a loopback host (RFC 8252 §7.3),
/// or a private-use scheme with a dot for native apps (RFC 8252 §7.1); never a fragment.
pub fn is_redirect_uri(value: &str) -> bool {
    let Ok(uri) = url::Url::parse(value) else {
        return false;
    };
    let loopback = matches!(uri.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    let scheme_ok = match uri.scheme() {
        "https" => uri.host_str().is_some(),
        "http" => loopback,
        other => other.contains('.'),
    };
    scheme_ok
        && uri.fragment().is_none()
        && value.len() <= 2048
        && !value
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
resources:
  - { id: inv-read, type: invoices, name: invoice, action: read, url: "/v1/invoices/{id}" }
roles:
  - { id: reader, resources: [inv-read] }
clients:
  - { name: svc, kind: confidential, grant_types: [client_credentials], scopes: [invoices] }
accounts:
  - { username: alice }
grants:
  - { role: reader, account: alice }
  - { role: reader, client: svc }
"#;

    #[test]
    fn a_consistent_policy_is_accepted() {
        let policy = PolicyFile::from_yaml(VALID).unwrap();
        assert_eq!(policy.policy_id, "gatehouse-rbac-v1");
        assert_eq!(policy.resources[0].kind, "invoices");
    }

    #[test]
    fn broken_references_and_values_are_refused_with_their_location() {
        let cases = [
            (VALID.replace("[inv-read] }", "[nope] }"), "roles[0]"),
            (
                VALID.replace("role: reader, account", "role: ghost, account"),
                "grants[0]",
            ),
            (VALID.replace("{id}", "{id"), "resources[0].url"),
            (
                VALID.replace("kind: confidential", "kind: public"),
                "clients[0]",
            ),
            (
                VALID.replace(
                    "{ username: alice }",
                    "{ username: alice, password_hash: x }",
                ),
                "accounts[0]",
            ),
        ];
        for (text, at) in cases {
            match PolicyFile::from_yaml(&text) {
                Err(PolicyError::Invalid { at: found, .. }) => assert_eq!(found, at),
                other => panic!("expected an error at {at}, got {other:?}"),
            }
        }
        assert!(matches!(
            PolicyFile::from_yaml("resources: [{ id: a, colour: red }]"),
            Err(PolicyError::Syntax(_))
        ));
    }

    #[test]
    fn usernames_cannot_look_like_client_ids() {
        // RFC 9700 §4.15: a client's tokens carry its generated id as `sub`.
        let named_like_a_client = VALID
            .replace("username: alice", "username: gh-AAAAAAAAAAAAAAAA")
            .replace("account: alice", "account: gh-AAAAAAAAAAAAAAAA");
        match PolicyFile::from_yaml(&named_like_a_client) {
            Err(PolicyError::Invalid { at, .. }) => assert_eq!(at, "accounts[0]"),
            other => panic!("a username like a client id was accepted: {other:?}"),
        }
        let id = crate::credentials::generate_client_id();
        assert!(id.starts_with(CLIENT_ID_PREFIX), "{id}");
        assert!(PolicyFile::from_yaml(&VALID.replace("alice", "gh_alice")).is_ok());
    }
}
