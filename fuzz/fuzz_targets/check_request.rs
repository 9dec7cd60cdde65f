//! The whole decision core over a fuzzed request: [`evaluate`] with the fixed trust set and
//! snapshot must never panic, must answer a store outage (and nothing else) with 503, must
//! permit only a tuple one of the token's grants covers, and the reply built from its decision
//! must carry only header values Envoy accepts and never the token.
//!
//! Input lines: method, request target, host, resource type, resource name (an empty line is
//! none), the store's answer to a database-path question (`granted`, `refused`, anything else
//! is an outage), then one line per `authorization` value. `$TOKEN` stands for a valid client
//! token with listed grants, `$DB_TOKEN` for a valid account token whose grants are in the
//! store, `$REVOKED_TOKEN` for a copy of the client token that was revoked (never permitted).

#![no_main]

use gatehouse::check::{AccessRequest, Context, Step, evaluate, read_credential};
use gatehouse::decision::{Outcome, Reply, Verdict};
use gatehouse_fuzz::{NOW, fixture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let text = String::from_utf8_lossy(data)
        .replace("$REVOKED_TOKEN", &fixture.revoked_token)
        .replace("$DB_TOKEN", &fixture.db_token)
        .replace("$TOKEN", &fixture.token);
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or("");
    let (method, target, host) = (next(), next(), next());
    let resource_type = Some(next()).filter(|t| !t.is_empty());
    let resource_name = Some(next()).filter(|n| !n.is_empty());
    let answer = match next() {
        "granted" => Some(true),
        "refused" => Some(false),
        _ => None,
    };
    let values: Vec<&str> = lines.collect();

    let request = AccessRequest {
        method,
        target,
        host,
        credential: read_credential(&values),
        resource_type,
        resource_name,
    };
    let context = Context {
        trust: &fixture.trust,
        snapshot: &fixture.snapshot,
        settings: &fixture.settings,
        now: NOW,
    };
    let (checked, asked_store) = match evaluate(&request, &context) {
        Step::Done(checked) | Step::Refetch(checked) => (checked, false),
        Step::Lookup(lookup) => {
            assert!(
                !lookup.candidates.is_empty(),
                "a database question without candidates"
            );
            (lookup.finish(answer), true)
        }
    };

    assert_eq!(
        checked.decision.decision == Verdict::Permit,
        checked.outcome == Outcome::Permit
    );
    if checked.outcome == Outcome::Unavailable {
        assert!(
            asked_store && answer.is_none(),
            "503 without a store outage"
        );
    }
    if checked.outcome == Outcome::Permit {
        let [value] = values.as_slice() else {
            panic!("permitted with {} authorization values", values.len());
        };
        let token = bearer_token(value).expect("permitted without a bearer token");
        let listed = token == fixture.token;
        assert!(
            listed || token == fixture.db_token,
            "permitted an unknown token"
        );
        if !listed {
            assert!(
                asked_store && answer == Some(true),
                "permitted without the store"
            );
        }
        assert!(
            matches!(method, "GET" | "HEAD"),
            "permitted method {method:?}"
        );
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        assert_eq!(checked.tuple.path, path);
        assert!(
            granted(listed, path, resource_type, resource_name),
            "permitted {method} {target:?} type {resource_type:?} name {resource_name:?}"
        );
    }

    let reply = Reply::new(&checked, "0123456789abcdef", "orders-api");
    let body = reply.body.clone().unwrap_or_default();
    for (name, value) in reply.headers.iter().chain(&reply.client_headers) {
        assert!(
            value
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b)),
            "header {name} has a value Envoy refuses: {value:?}"
        );
    }
    for token in [&fixture.token, &fixture.db_token, &fixture.revoked_token] {
        let payload = token.split('.').nth(1).expect("three segments");
        assert!(!body.contains(payload), "the deny body carries the token");
        assert!(
            reply
                .headers
                .iter()
                .all(|(_, value)| !value.contains(payload)),
            "a header carries the token"
        );
    }
});

/// The token of a `Bearer <spaces> token` value.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_at_checked(6)?;
    let token = rest.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && token.len() < rest.len()).then_some(token)
}

/// Whether a read of `path` is covered: by the listed grants (`doc-42.read` and
/// `assets.read`; `reports.read` is outside the token's scope), or, for the database-path
/// token, by any readable resource in scope (`documents.read` too).
fn granted(listed: bool, path: &str, kind: Option<&str>, name: Option<&str>) -> bool {
    let is = |wanted_kind: &str, wanted_name: &str| {
        kind.is_none_or(|k| k == wanted_kind) && name.is_none_or(|n| n == wanted_name)
    };
    let clean = ![
        "//", "/./", "/../", "\\", ";", "#", "\0", "%2F", "%2f", "%5C", "%5c",
    ]
    .iter()
    .any(|bad| path.contains(bad))
        && !path.ends_with("/.")
        && !path.ends_with("/..")
        && !path.ends_with('/');
    let document = path
        .strip_prefix("/v1/documents/")
        .filter(|id| !id.is_empty() && !id.contains('/'));
    let asset = path
        .strip_prefix("/static/")
        .filter(|rest| !rest.is_empty());
    clean
        && ((document == Some("doc-42") && is("documents", "document"))
            || (!listed && document.is_some() && is("documents", "document"))
            || (asset.is_some() && is("assets", "asset")))
}
