//! The `authorization` header: every line of the input is one header value, as Envoy's
//! `header_map` delivers repeated headers, and [`read_credential`] must classify them without
//! panicking. A bearer token it returns is exactly the rest of a single value after
//! `Bearer` and its spaces; a well-formed single bearer value is never refused.

#![no_main]

use gatehouse::check::{Credential, read_credential};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').collect()
    };
    let credential = read_credential(&values);

    match (values.as_slice(), credential) {
        ([], credential) => assert_eq!(credential, Credential::Absent),
        ([_, _, ..], credential) => assert_eq!(credential, Credential::Multiple),
        ([value], Credential::Bearer(token)) => {
            assert!(
                !token.is_empty() && !token.contains([' ', ',']),
                "token {token:?}"
            );
            let prefix = value
                .strip_suffix(token)
                .expect("the token is the end of the value");
            let spaces = prefix.get(6..).expect("a scheme precedes the token");
            assert!(
                prefix[..6].eq_ignore_ascii_case("bearer"),
                "scheme of {value:?}"
            );
            assert!(!spaces.is_empty() && spaces.bytes().all(|b| b == b' '));
        }
        ([value], credential) => {
            if value.contains(',') {
                assert_eq!(credential, Credential::Multiple);
            } else if let Some(token) = well_formed_bearer(value) {
                panic!("{value:?} holds the bearer token {token:?} but was read as {credential:?}");
            }
        }
    }
});

/// The token of `Bearer <spaces> token` (any scheme case, no further space, no comma).
fn well_formed_bearer(value: &str) -> Option<&str> {
    let scheme = value.get(..6)?;
    let rest = value.get(6..)?;
    let token = rest.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer")
        && token.len() < rest.len()
        && !token.is_empty()
        && !token.contains([' ', ',']))
    .then_some(token)
}
