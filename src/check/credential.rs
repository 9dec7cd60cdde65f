//! Reading the bearer credential from the `authorization` header (RFC 6750 §2.1).

/// What the request's `authorization` header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No `authorization` header.
    Absent,
    /// More than one credential: several header lines, or values Envoy joined with commas.
    Multiple,
    /// A scheme other than Bearer.
    OtherScheme,
    /// `Bearer` with a missing or malformed token.
    MalformedBearer,
    /// One bearer token.
    Bearer(&'a str),
}

/// Reads the credential from every `authorization` value the request carried.
///
/// The scheme is case-insensitive and may be followed by one or more spaces; the token must
/// be the rest of the value with no further space. A comma never occurs in a token, so a
/// value holding one is several credentials joined by Envoy.
pub fn read_credential<'a>(values: &[&'a str]) -> Credential<'a> {
    let value = match values {
        [] => return Credential::Absent,
        [value] => *value,
        _ => return Credential::Multiple,
    };
    if value.contains(',') {
        return Credential::Multiple;
    }
    let Some((scheme, rest)) = value.split_once(' ') else {
        return if value.eq_ignore_ascii_case("bearer") {
            Credential::MalformedBearer
        } else {
            Credential::OtherScheme
        };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credential::OtherScheme;
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Credential::MalformedBearer;
    }
    Credential::Bearer(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_tolerates_repeated_spaces() {
        assert_eq!(read_credential(&["Bearer abc"]), Credential::Bearer("abc"));
        assert_eq!(read_credential(&["bearer abc"]), Credential::Bearer("abc"));
        assert_eq!(read_credential(&["BEARER abc"]), Credential::Bearer("abc"));
        assert_eq!(
            read_credential(&["Bearer   abc"]),
            Credential::Bearer("abc")
        );
    }

    #[test]
    fn malformed_and_ambiguous_values_are_classified() {
        assert_eq!(read_credential(&[]), Credential::Absent);
        assert_eq!(
            read_credential(&["Bearer a", "Bearer b"]),
            Credential::Multiple
        );
        assert_eq!(
            read_credential(&["Basic dXNlcjpwdw==,Bearer a"]),
            Credential::Multiple
        );
        assert_eq!(
            read_credential(&["Bearer a,Bearer b"]),
            Credential::Multiple
        );
        assert_eq!(read_credential(&["Bearer"]), Credential::MalformedBearer);
        assert_eq!(read_credential(&["Bearer "]), Credential::MalformedBearer);
        assert_eq!(
            read_credential(&["Bearer Bearer abc"]),
            Credential::MalformedBearer
        );
        assert_eq!(
            read_credential(&["Bearer abc extra"]),
            Credential::MalformedBearer
        );
        assert_eq!(read_credential(&["Bearer\tabc"]), Credential::OtherScheme);
        assert_eq!(read_credential(&["Token abc"]), Credential::OtherScheme);
        assert_eq!(read_credential(&["abc"]), Credential::OtherScheme);
    }
}
