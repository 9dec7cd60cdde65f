//! Canonical request targets: gatehouse decides only on paths it cannot misread.
//!
//! The request target Envoy reports is refused, never repaired, when it holds dot segments,
//! empty segments, backslashes, `;` parameters, NUL or other control bytes, a raw `#`,
//! percent-encoded `/`, `\`, controls or unreserved characters, lower-case or broken
//! percent-encoding, or double encoding (`%25` followed by two hex digits). The query string
//! is stripped before matching. This holds whether or not Envoy normalises paths first.

/// Why a request target is not canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("request target must be a path starting with '/'")]
    NotOriginForm,
    #[error("request target holds a fragment, control byte or non-ASCII byte")]
    ForbiddenByte,
    #[error("request path holds an empty segment")]
    EmptySegment,
    #[error("request path holds a dot segment")]
    DotSegment,
    #[error("request path holds a character that must be percent-encoded or is refused")]
    ForbiddenCharacter,
    #[error("request path holds malformed or non-canonical percent-encoding")]
    BadPercentEncoding,
    #[error("request path holds an encoded separator or control byte")]
    EncodedSeparator,
    #[error("request path holds double percent-encoding")]
    DoubleEncoding,
}

/// Splits the raw request target into its canonical path, refusing anything non-canonical.
pub fn canonical_path(target: &str) -> Result<&str, PathError> {
    if target
        .bytes()
        .any(|b| b == b'#' || !(0x20..0x7f).contains(&b))
    {
        return Err(PathError::ForbiddenByte);
    }
    let path = match target.split_once('?') {
        Some((path, _query)) => path,
        None => target,
    };
    let body = path.strip_prefix('/').ok_or(PathError::NotOriginForm)?;
    if body.is_empty() {
        return Ok(path);
    }
    for segment in body.split('/') {
        check_segment(segment)?;
    }
    Ok(path)
}

/// Whether one path segment is canonical (used for template literals too).
pub fn is_canonical_segment(segment: &str) -> bool {
    check_segment(segment).is_ok()
}

/// The segments of a canonical path: `/` has none, `/a/b` has `a` and `b`.
pub fn segments(path: &str) -> Vec<&str> {
    match path.strip_prefix('/') {
        Some("") | None => Vec::new(),
        Some(body) => body.split('/').collect(),
    }
}

fn check_segment(segment: &str) -> Result<(), PathError> {
    match segment {
        "" => return Err(PathError::EmptySegment),
        "." | ".." => return Err(PathError::DotSegment),
        _ => {}
    }
    let bytes = segment.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%' {
            let decoded = decode_pair(bytes, index).ok_or(PathError::BadPercentEncoding)?;
            if is_unreserved(decoded) {
                return Err(PathError::BadPercentEncoding);
            }
            if decoded == b'/' || decoded == b'\\' || decoded < 0x20 || decoded == 0x7f {
                return Err(PathError::EncodedSeparator);
            }
            let hex_follows = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_hexdigit);
            if decoded == b'%' && hex_follows(index + 3) && hex_follows(index + 4) {
                return Err(PathError::DoubleEncoding);
            }
            index += 3;
            continue;
        }
        if !(is_unreserved(byte) || is_allowed_sub_delim(byte)) {
            return Err(PathError::ForbiddenCharacter);
        }
        index += 1;
    }
    Ok(())
}

/// Decodes `%XY` at `index`, accepting only upper-case hex (RFC 3986 §6.2.2.1).
fn decode_pair(bytes: &[u8], index: usize) -> Option<u8> {
    if bytes.get(index) != Some(&b'%') {
        return None;
    }
    let high = upper_hex(*bytes.get(index + 1)?)?;
    let low = upper_hex(*bytes.get(index + 2)?)?;
    Some(high << 4 | low)
}

fn upper_hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` sub-delimiters, less `;` (path parameters are refused).
fn is_allowed_sub_delim(byte: u8) -> bool {
    matches!(
        byte,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_pass_and_lose_their_query() {
        assert_eq!(
            canonical_path("/v1/documents/doc-42"),
            Ok("/v1/documents/doc-42")
        );
        assert_eq!(
            canonical_path("/v1/documents/doc-42?x=1&y=%2F"),
            Ok("/v1/documents/doc-42")
        );
        assert_eq!(canonical_path("/"), Ok("/"));
        assert_eq!(
            canonical_path("/v1/documents/50%25"),
            Ok("/v1/documents/50%25")
        );
        assert_eq!(canonical_path("/a/b%20c/d:e@f"), Ok("/a/b%20c/d:e@f"));
    }

    #[test]
    fn every_non_canonical_form_is_refused() {
        let refused = [
            "/v1/documents/doc-42/../doc-99",
            "/v1/documents/doc-42/%2e%2e/doc-99",
            "/v1/documents/doc-42/%2E%2E/doc-99",
            "/v1/documents/doc-42%2F..%2Fdoc-99",
            "/v1/documents%2Fdoc-42",
            "/v1/documents%2fdoc-42",
            "//v1/documents/doc-42",
            "//evil/v1/documents/doc-42",
            "/v1/documents/./doc-42",
            "/v1//documents/doc-42",
            "/v1/documents/doc-42\\..\\doc-99",
            "/v1/documents/doc-42%5C..%5Cdoc-99",
            "/v1/documents/doc-42%00",
            "/v1/documents/doc-42%2500",
            "/v1/documents/..;/admin/users",
            "/v1/documents/doc-42;x=1",
            "/v1/documents/doc-42/",
            "/v1/documents/doc-42#frag",
            "/v1/documents/doc\0",
            "/v1/documents/d%6Fc-42",
            "/v1/documents/doc%2",
            "/v1/documents/doc%zz",
            "/v1/documents/x'%20OR%20'1'%3d'1",
            "http://evil/v1/documents/doc-42",
            "*",
            "",
            "/v1/documents/caf\u{e9}",
            "/v1/documents/a b",
        ];
        for target in refused {
            assert!(canonical_path(target).is_err(), "{target:?} was accepted");
        }
    }

    #[test]
    fn segments_split_canonical_paths() {
        assert_eq!(segments("/"), Vec::<&str>::new());
        assert_eq!(segments("/a/b"), vec!["a", "b"]);
    }
}
