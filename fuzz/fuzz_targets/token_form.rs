//! The `/token` request: the first line of the input is the `authorization` header value for
//! [`parse_basic`], the rest is the form body for [`TokenForm::parse`]. Neither may panic; a
//! form is accepted exactly when no parameter name repeats, and Basic credentials survive
//! being encoded again the way RFC 6749 §2.3.1 says a client encodes them.

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
