//! Grants in the token vs in the database (B19): the 100-grant boundary, zero queries on the
//! claims path, one exact query on the database path.

use gatehouse::credentials::hash_password;
use serde_json::Value;

use super::{assert_forbidden, assert_subject};
use crate::support::{Answer, Backend, TestGatehouse, answer, forge, on_both_backends};

const PASSWORD: &str = "documents-demo-password";
const DOCUMENTS: [(&str, &str); 1] = [("resource_type", "documents")];

fn resource(id: &str, url: &str) -> String {
    format!(
        "  - {{ id: \"{id}\", type: documents, name: document, action: read, url: \"{url}\" }}\n"
    )
}

fn id_list(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// `acct-a` holds exactly 100 resources, `acct-b` 101; `documents.any` (a `{id}` template
/// granted to nobody) makes every `GET /v1/documents/x` a candidate, so every database-path
/// check asks the store.
fn policy() -> String {
    let hash = hash_password(PASSWORD).unwrap();
    let fillers: Vec<String> = (0..99).map(|i| format!("fill-{i:03}")).collect();
    let mut resources = String::new();
    for (id, url) in [
        ("doc-42", "/v1/documents/doc-42"),
        ("doc_1", "/v1/documents/doc_1"),
        ("50pct", "/v1/documents/50%25"),
        ("docX1", "/v1/documents/docX1"),
        ("50abc", "/v1/documents/50abc"),
        ("documents.any", "/v1/documents/{id}"),
    ] {
        resources.push_str(&resource(id, url));
    }
    for id in &fillers {
        resources.push_str(&resource(id, &format!("/v1/documents/{id}")));
    }
    let role_a: Vec<String> = ["doc-42", "docX1", "50abc"]
        .iter()
        .map(|id| (*id).to_owned())
        .chain(fillers[..97].iter().cloned())
        .collect();
    let role_b: Vec<String> = ["doc_1", "50pct"]
        .iter()
        .map(|id| (*id).to_owned())
        .chain(fillers.iter().cloned())
        .collect();
    assert_eq!((role_a.len(), role_b.len()), (100, 101));
    format!(
        "policy_id: documents-rbac-v1\n\
         resources:\n{resources}\
         roles:\n  - {{ id: role-a, resources: {a} }}\n  - {{ id: role-b, resources: {b} }}\n\
         clients:\n  - {{ name: docs-web, kind: public, grant_types: [password], scopes: [documents] }}\n\
         accounts:\n  - {{ username: acct-a, password_hash: \"{hash}\" }}\n  - {{ username: acct-b, password_hash: \"{hash}\" }}\n\
         grants:\n  - {{ role: role-a, account: acct-a }}\n  - {{ role: role-b, account: acct-b }}\n",
        a = id_list(&role_a),
        b = id_list(&role_b),
    )
}

async fn token(g: &TestGatehouse, username: &str, resources: usize) -> String {
    let body = g.user_token("docs-web", username, PASSWORD).await;
    assert_eq!(
        body["resources"].as_array().unwrap().len(),
        resources,
        "{username}"
    );
    body["access_token"].as_str().unwrap().to_owned()
}

async fn get(g: &TestGatehouse, token: &str, target: &str) -> Answer {
    let auth = format!("Bearer {token}");
    answer(
        &g.check("GET", target, &[("authorization", &auth)], &DOCUMENTS)
            .await,
    )
}

on_both_backends!(hundred_grants_ride_in_the_token_and_are_decided_without_queries);
async fn hundred_grants_ride_in_the_token_and_are_decided_without_queries(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &policy()).await;
    let a = token(&g, "acct-a", 100).await;
    let grants = forge::payload(&a)["grants"].clone();
    let ids: Vec<&str> = grants
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 100);
    assert!(ids.contains(&"doc-42") && !ids.contains(&"doc_1"));

    let before = g.grant_queries();
    for _ in 0..3 {
        assert_subject(
            &get(&g, &a, "/v1/documents/doc-42").await,
            "acct-a",
            "doc-42",
        );
        assert_subject(
            &get(&g, &a, "/v1/documents/fill-096").await,
            "acct-a",
            "fill-096",
        );
        let denied = get(&g, &a, "/v1/documents/doc_1").await;
        assert_forbidden(&denied, "not_granted", "acct-a doc_1");
        let denied = get(&g, &a, "/v1/documents/fill-097").await;
        assert_forbidden(&denied, "not_granted", "acct-a fill-097");
    }
    assert_eq!(g.grant_queries(), before, "the claims path never queries");
}

on_both_backends!(hundred_and_one_grants_defer_to_one_exact_database_query_per_check);
async fn hundred_and_one_grants_defer_to_one_exact_database_query_per_check(backend: Backend) {
    let g = TestGatehouse::start_on(backend, &policy()).await;
    let b = token(&g, "acct-b", 101).await;
    let claims = forge::payload(&b);
    assert_eq!(claims["grants"], Value::from("db"));

    let permitted = [
        "/v1/documents/doc_1",
        "/v1/documents/50%25",
        "/v1/documents/fill-098",
    ];
    for target in permitted {
        let before = g.grant_queries();
        assert_subject(&get(&g, &b, target).await, "acct-b", target);
        assert_eq!(g.grant_queries(), before + 1, "{target}");
    }
    // `_` and `%` are not wildcards: near misses are not granted. They form three distinct
    // candidate sets ({docX1, documents.any}, {50abc, documents.any}, {documents.any}): one
    // query each, the repeated set is answered by the grant cache.
    let before = g.grant_queries();
    for target in [
        "/v1/documents/docX1",
        "/v1/documents/50abc",
        "/v1/documents/doc-1",
        "/v1/documents/50%2A",
    ] {
        assert_forbidden(&get(&g, &b, target).await, "not_granted", target);
    }
    assert_eq!(g.grant_queries(), before + 3);
    // Encoded spellings of the same ids are not canonical and never reach the store.
    for target in ["/v1/documents/doc%5F1", "/v1/documents/50%2525"] {
        let before = g.grant_queries();
        let a = get(&g, &b, target).await;
        crate::support::assert_deny(&a, 400);
        assert_eq!(a.reason(), "non_canonical_path", "{target}");
        assert_eq!(g.grant_queries(), before, "{target}");
    }

    let before = g.grant_queries();
    let injection = get(&g, &b, "/v1/documents/x'%20OR%20'1'%3D'1").await;
    assert!(
        matches!(injection.http_status, 400 | 403),
        "quote payload: {injection:?}"
    );
    crate::support::assert_deny(&injection, injection.http_status);
    assert!(g.grant_queries() <= before + 1);
    // The store still answers exactly afterwards.
    assert_subject(&get(&g, &b, "/v1/documents/doc_1").await, "acct-b", "after");
}

#[tokio::test]
async fn database_answers_are_cached_until_permissions_change() {
    let text = policy();
    let g = TestGatehouse::start(&text).await;
    let b = token(&g, "acct-b", 101).await;
    let before = g.grant_queries();
    for _ in 0..5 {
        assert_subject(
            &get(&g, &b, "/v1/documents/doc_1").await,
            "acct-b",
            "cached",
        );
    }
    assert_eq!(g.grant_queries(), before + 1, "one query, then the cache");
    let cache = &g.running.gatehouse.grant_cache;
    assert_eq!((cache.lookups(), cache.misses()), (5, 1));

    // Any apply moves the generation on: the next check asks the store again.
    g.reapply(&text).await;
    assert_subject(
        &get(&g, &b, "/v1/documents/doc_1").await,
        "acct-b",
        "after apply",
    );
    assert_eq!(g.grant_queries(), before + 2);
}

/// B18 (1) on literal ids: `doc-42` is granted, `DOC-42` is another resource, and no part of the
/// path is lower-cased before matching.
#[tokio::test]
async fn literal_ids_in_urls_are_case_sensitive() {
    let g = TestGatehouse::start(&policy()).await;
    let a = token(&g, "acct-a", 100).await;
    assert_subject(
        &get(&g, &a, "/v1/documents/doc-42").await,
        "acct-a",
        "control",
    );
    for target in ["/v1/documents/DOC-42", "/v1/documents/Doc-42"] {
        assert_forbidden(&get(&g, &a, target).await, "not_granted", target);
    }
    for target in ["/V1/Documents/DOC-42", "/V1/documents/doc-42"] {
        assert_forbidden(&get(&g, &a, target).await, "no_matching_resource", target);
    }
}

/// B19 (4): a grant removed in the store makes the database-path account's older token stale
/// at once (401 with the `reauth` obligation), and a fresh token, still on the database path,
/// is refused the removed resource by the store's answer.
async fn removed_database_grant_makes_the_old_token_stale_and_the_new_one_forbidden(
    backend: Backend,
) {
    let text = policy();
    let g = TestGatehouse::start_on(backend, &text).await;
    let old = token(&g, "acct-b", 101).await;
    assert_subject(
        &get(&g, &old, "/v1/documents/doc_1").await,
        "acct-b",
        "before",
    );

    // doc_1 leaves acct-b's role and 50abc joins it: still 101 grants, still the database path.
    let revoked = text.replace("[\"doc_1\", \"50pct\",", "[\"50abc\", \"50pct\",");
    assert_ne!(revoked, text);
    let report = g.reapply(&revoked).await;
    assert!(
        report.bumped.iter().any(|s| s.id() == "acct-b"),
        "{report:?}"
    );

    let stale = get(&g, &old, "/v1/documents/doc_1").await;
    crate::support::assert_deny(&stale, 401);
    assert!(
        stale.www_authenticate().contains("error=\"invalid_token\""),
        "{stale:?}"
    );
    assert_eq!(stale.reason(), "permissions_changed");
    assert_eq!(
        stale.body["obligations"],
        serde_json::json!([{"type": "reauth", "reason": "permissions_changed"}])
    );

    let fresh = token(&g, "acct-b", 101).await;
    assert_eq!(forge::payload(&fresh)["grants"], Value::from("db"));
    let before = g.grant_queries();
    let denied = get(&g, &fresh, "/v1/documents/doc_1").await;
    assert_forbidden(&denied, "not_granted", "doc_1 after its grant was removed");
    assert_eq!(g.grant_queries(), before + 1, "decided by the store");
    assert_subject(
        &get(&g, &fresh, "/v1/documents/50abc").await,
        "acct-b",
        "the grant that was added",
    );
}
on_both_backends!(removed_database_grant_makes_the_old_token_stale_and_the_new_one_forbidden);

/// B19 (2): with the database cut, the account whose 100 grants ride in its token is still
/// decided (permits and denies, no query), while a database-path question fails closed (503).
#[tokio::test]
async fn hundred_grants_are_decided_from_the_token_while_the_database_is_cut() {
    use crate::support::proxy::{Mode, Proxy};

    if !crate::support::postgres_enabled() {
        return;
    }
    let primary = TestGatehouse::start_on(Backend::Postgres, &policy()).await;
    let url = primary.config().store.url.clone();
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let server = authority.rsplit('@').next().unwrap();
    let proxy = Proxy::start(server.parse().unwrap()).await;
    let g = primary
        .replica(|config| {
            config.store.url = url.replace(server, &proxy.addr.to_string());
            config.store.query_timeout_ms = 150;
        })
        .await;
    let a = token(&g, "acct-a", 100).await;
    let b = token(&g, "acct-b", 101).await;

    proxy.set(Mode::Cut);
    let before = g.grant_queries();
    for _ in 0..3 {
        for target in ["/v1/documents/doc-42", "/v1/documents/fill-096"] {
            assert_subject(&get(&g, &a, target).await, "acct-a", target);
        }
        let denied = get(&g, &a, "/v1/documents/doc_1").await;
        assert_forbidden(&denied, "not_granted", "acct-a doc_1 with the database cut");
    }
    assert_eq!(g.grant_queries(), before, "the claims path never queries");

    let unavailable = get(&g, &b, "/v1/documents/doc_1").await;
    crate::support::assert_deny(&unavailable, 503);
    assert_eq!(unavailable.reason(), "store_unavailable");
    proxy.set(Mode::Pass);
}
