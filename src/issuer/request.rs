//! Reading a token request: the form body and the HTTP Basic client credentials.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::OAuthError;
use crate::secret::Secret;

/// The parameters of a `/token` request body; each name occurs at most once (RFC 6749 §3.2).
#[derive(Debug, Default)]
pub struct TokenForm(HashMap<String, String>);

impl TokenForm {
    /// Parses an `application/x-www-form-urlencoded` body; a repeated parameter is refused.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if params
                .insert(name.into_owned(), value.into_owned())
                .is_some()
            {
                return Err(OAuthError::InvalidRequest("a parameter is repeated"));
            }
        }
        Ok(Self(params))
    }

    /// A parameter's value; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Whether the parameter was sent at all.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// Client credentials from an HTTP Basic `authorization` header (RFC 6749 §2.3.1).
#[derive(Debug)]
pub struct BasicCredentials {
    pub client_id: String,
    pub secret: Secret,
}

/// Parses `Basic base64(urlencode(id) ":" urlencode(secret))`.
pub fn parse_basic(value: &str) -> Result<BasicCredentials, OAuthError> {
    let (scheme, encoded) = value.split_once(' ').ok_or(OAuthError::InvalidClient)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::InvalidClient);
    }
    let decoded = STANDARD
        .decode(encoded.trim_start_matches(' '))
        .map_err(|_| OAuthError::InvalidClient)?;
    let text = String::from_utf8(decoded).map_err(|_| OAuthError::InvalidClient)?;
    let (id, secret) = text.split_once(':').ok_or(OAuthError::InvalidClient)?;
    // Each part is form-encoded as a whole: `+` is a space and `%XY` a byte, while `&` and
    // `=` are data, so nothing after them is dropped.
    let decode = |part: &str| -> String {
        percent_encoding::percent_decode_str(&part.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let client_id = decode(id);
    if client_id.is_empty() {
        return Err(OAuthError::InvalidClient);
    }
    Ok(BasicCredentials {
        client_id,
        secret: Secret::new(decode(secret)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        // "svc%3Aa:p%40ss" → id "svc:a", secret "p@ss"
        let header = format!("Basic {}", STANDARD.encode("svc%3Aa:p%40ss"));
        let credentials = parse_basic(&header).unwrap();
        assert_eq!(credentials.client_id, "svc:a");
        assert_eq!(credentials.secret.expose(), "p@ss");
        assert!(parse_basic("Bearer abc").is_err());
        assert!(parse_basic("Basic !!!").is_err());
        assert!(parse_basic(&format!("Basic {}", STANDARD.encode("nocolon"))).is_err());
    }

    #[test]
    fn basic_credentials_are_the_whole_parts_around_the_first_colon() {
        // fuzz/corpus/token_form/basic-ampersand-in-secret: an `&` used to end the secret, so
        // the right secret followed by `&` and anything authenticated.
        let header = format!("Basic {}", STANDARD.encode("svc-reports:S3cret-CANARY-2&x"));
        let credentials = parse_basic(&header).unwrap();
        assert_eq!(credentials.client_id, "svc-reports");
        assert_eq!(credentials.secret.expose(), "S3cret-CANARY-2&x");

        let header = format!("Basic {}", STANDARD.encode("a&b=c:x+y%2B%zz:z"));
        let credentials = parse_basic(&header).unwrap();
        assert_eq!(credentials.client_id, "a&b=c");
        assert_eq!(credentials.secret.expose(), "x y+%zz:z");
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(TokenForm::parse(b"a=1&b=2").is_ok());
        assert!(matches!(
            TokenForm::parse(b"password=a&password=b"),
            Err(OAuthError::InvalidRequest(_))
        ));
        let form = TokenForm::parse(b"scope=&x=1").unwrap();
        assert_eq!(form.get("scope"), None);
        assert!(form.contains("scope"));
    }
}
