//! The `/token` request: the first line of the input is the `authorization` header value for
//! [`parse_basic`], the rest is the form body for [`TokenForm::parse`]. Neither may panic; a
//! form is accepted exactly when no parameter name repeats, and Basic credentials survive
//! being encoded again the way RFC 6749 §2.3.1 says a client encodes them: the id and the
//! secret are the form-decoding of the whole parts before and after the first colon.

#![no_main]

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse::issuer::{TokenForm, parse_basic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };

    let mut seen: HashMap<String, (usize, String)> = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        let entry = seen.entry(name.into_owned()).or_default();
        entry.0 += 1;
        entry.1 = value.into_owned();
    }
    let repeated = seen.values().any(|(count, _)| *count > 1);
    match TokenForm::parse(body) {
        Ok(form) => {
            assert!(!repeated, "a repeated parameter was accepted");
            for (name, (_, value)) in &seen {
                assert!(form.contains(name));
                let expected = Some(value.as_str()).filter(|v| !v.is_empty());
                assert_eq!(form.get(name), expected, "parameter {name:?}");
            }
        }
        Err(_) => assert!(repeated, "a form without repeats was refused"),
    }

    let header = String::from_utf8_lossy(header);
    if let Ok(credentials) = parse_basic(&header) {
        assert!(!credentials.client_id.is_empty());
        // The id and the secret are the whole parts before and after the first colon.
        let (_, encoded) = header
            .split_once(' ')
            .expect("a scheme precedes the credentials");
        let decoded = STANDARD
            .decode(encoded.trim_start_matches(' '))
            .expect("accepted credentials are base64");
        let text = String::from_utf8(decoded).expect("accepted credentials are UTF-8");
        let (id, secret) = text
            .split_once(':')
            .expect("accepted credentials hold a colon");
        assert_eq!(
            credentials.client_id,
            form_decode(id),
            "client id of {text:?}"
        );
        assert_eq!(
            credentials.secret.expose(),
            form_decode(secret),
            "secret of {text:?}"
        );

        let encode =
            |part: &str| form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
        let again = format!(
            "Basic {}",
            STANDARD.encode(format!(
                "{}:{}",
                encode(&credentials.client_id),
                encode(credentials.secret.expose())
            ))
        );
        let decoded = parse_basic(&again).expect("re-encoded credentials parse");
        assert_eq!(decoded.client_id, credentials.client_id);
        assert_eq!(decoded.secret.expose(), credentials.secret.expose());
    }
});

/// `application/x-www-form-urlencoded` decoding of one value (WHATWG URL §5.1): `+` is a
/// space, `%XY` a byte, anything else itself; the bytes are read as UTF-8, lossily.
fn form_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|b| char::from(*b).to_digit(16))
                .map(|d| d as u8)
        };
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => match (hex(index + 1), hex(index + 2)) {
                (Some(high), Some(low)) => {
                    decoded.push(high << 4 | low);
                    index += 2;
                }
                _ => decoded.push(b'%'),
            },
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
