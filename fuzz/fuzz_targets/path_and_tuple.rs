//! Request target → canonical path → segments → URL templates, the route table and the
//! catalogue's tuple matcher, each checked against a plain restatement of its rule.
//!
//! Input lines: method, request target, host, resource type, resource name (an empty line is
//! none), and a URL template to parse and match.

#![no_main]

use gatehouse::path::{canonical_path, segments};
use gatehouse::resources::UrlTemplate;
use gatehouse_fuzz::fixture;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or("");
    let (method, target, host) = (next(), next(), next());
    let resource_type = Some(next()).filter(|t| !t.is_empty());
    let resource_name = Some(next()).filter(|n| !n.is_empty());
    let template = next();

    let Ok(path) = canonical_path(target) else {
        return;
    };
    assert_canonical(target, path);
    let path_segments = segments(path);
    let rebuilt = format!("/{}", path_segments.join("/"));
    assert_eq!(rebuilt, path, "segments do not rebuild the path");

    if let Ok(parsed) = UrlTemplate::parse(template) {
        assert_eq!(
            parsed.matches(&path_segments),
            template_matches(template, &path_segments),
            "template {template:?} against {path:?}"
        );
        if !template.contains('{') {
            assert!(
                canonical_path(template).is_ok_and(|p| p == template),
                "literal template {template:?} is not a canonical path"
            );
        }
    }

    let fixture = fixture();
    let snapshot = &fixture.snapshot;
    if let Some((kind, name)) = snapshot.routes.resolve(host, &path_segments) {
        let bare = host.rsplit_once(':').map_or(host, |(name, _)| name);
        assert!(
            bare.eq_ignore_ascii_case("docs.test"),
            "route for host {host:?}"
        );
        assert!(
            path.starts_with("/v1/documents/") && path.len() > 14,
            "route for {path:?}"
        );
        assert_eq!((kind, name), ("documents", Some("document")));
    }

    let Some(action) = fixture.settings.methods.action(method) else {
        return;
    };
    let found: Vec<&str> = snapshot
        .catalogue
        .candidates(action, &path_segments, resource_type, resource_name)
        .map(|resource| resource.id.as_str())
        .collect();
    for id in [
        "doc-42.read",
        "documents.read",
        "doc-99.delete",
        "assets.read",
        "reports.read",
        "home.read",
    ] {
        let resource = snapshot.catalogue.get(id).expect("fixture resource");
        let expected = resource.action == action
            && resource_type.is_none_or(|t| t == resource.kind)
            && resource_name.is_none_or(|n| n == resource.name)
            && template_matches(&resource.url, &path_segments);
        assert_eq!(
            found.contains(&id),
            expected,
            "{id} for {method} {path:?} type {resource_type:?} name {resource_name:?}"
        );
    }
});

/// What a canonical path is, restated: origin form, visible ASCII, no empty or dot segment,
/// no `\`, `;` or `#`, and percent-encoding only in upper case, of a byte that needs it, never
/// of a separator, a control byte or another escape.
fn assert_canonical(target: &str, path: &str) {
    assert!(
        target.starts_with(path),
        "{path:?} is not the start of {target:?}"
    );
    assert!(
        target.len() == path.len() || target.as_bytes()[path.len()] == b'?',
        "{path:?} is not {target:?} without its query"
    );
    assert!(path.starts_with('/') && !path.contains('?'), "{path:?}");
    assert!(
        path.bytes().all(|b| (0x21..0x7f).contains(&b)),
        "{path:?} has a forbidden byte"
    );
    for forbidden in ["//", "\\", ";", "#"] {
        assert!(!path.contains(forbidden), "{path:?} contains {forbidden:?}");
    }
    if path != "/" {
        for segment in path[1..].split('/') {
            assert!(
                !matches!(segment, "" | "." | ".."),
                "{path:?} has segment {segment:?}"
            );
        }
    }
    let lower = path.to_ascii_lowercase();
    for encoded in [
        "%2f", "%5c", "%00", "%2e", "%7f", "%0a", "%0d", "%2500", "%252f",
    ] {
        assert!(!lower.contains(encoded), "{path:?} contains {encoded}");
    }
    let bytes = path.as_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        if *byte != b'%' {
            continue;
        }
        let hex = |at: usize| bytes.get(at).copied().filter(u8::is_ascii_hexdigit);
        let (Some(high), Some(low)) = (hex(index + 1), hex(index + 2)) else {
            panic!("{path:?} has a broken escape");
        };
        assert!(
            !high.is_ascii_lowercase() && !low.is_ascii_lowercase(),
            "{path:?}"
        );
        let decoded = u8::from_str_radix(&path[index + 1..index + 3], 16).expect("hex");
        assert!(
            decoded >= 0x20
                && decoded != 0x7f
                && !decoded.is_ascii_alphanumeric()
                && !b"-._~/\\".contains(&decoded),
            "{path:?} escapes {decoded:#04x}"
        );
        if decoded == b'%' {
            assert!(
                hex(index + 3).is_none() || hex(index + 4).is_none(),
                "{path:?}"
            );
        }
    }
}

/// The template rule of the documentation: literals match exactly, `{name}` and `{*}` one
/// non-empty segment, a final `{**}` one segment or more.
fn template_matches(template: &str, path_segments: &[&str]) -> bool {
    let Some(body) = template.strip_prefix('/') else {
        return false;
    };
    let parts: Vec<&str> = if body.is_empty() {
        Vec::new()
    } else {
        body.split('/').collect()
    };
    let (fixed, rest) = match parts.split_last() {
        Some((&"{**}", fixed)) => (fixed, true),
        _ => (parts.as_slice(), false),
    };
    let length_fits = if rest {
        path_segments.len() > fixed.len()
    } else {
        path_segments.len() == fixed.len()
    };
    length_fits
        && fixed.iter().zip(path_segments).all(|(part, actual)| {
            if part.starts_with('{') && part.ends_with('}') {
                !actual.is_empty()
            } else {
                part == actual
            }
        })
}
