//! Hand-made tokens for hostile-input tests.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::keys::SigningKey;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The payload of a compact token, decoded.
pub fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The header gatehouse puts on access tokens.
pub fn access_header(key: &SigningKey) -> Value {
    json!({"alg": "RS256", "typ": "at+jwt", "kid": key.kid()})
}

/// `header.payload` signed RS256 with `key`, whatever the header says.
pub fn rs256(key: &SigningKey, header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(payload.to_string()));
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(signature))
}

/// `header.payload` with an HMAC-SHA-256 signature keyed by `secret`.
pub fn hs256(secret: &[u8], header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(payload.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(mac.finalize().into_bytes()))
}

/// `header.payload.` with an empty signature.
pub fn unsigned(header: &Value, payload: &Value) -> String {
    format!("{}.{}.", b64(header.to_string()), b64(payload.to_string()))
}

/// `payload` with `field` replaced (or removed when `value` is `None`).
pub fn with(payload: &Value, field: &str, value: Option<Value>) -> Value {
    let mut payload = payload.clone();
    let object = payload.as_object_mut().unwrap();
    match value {
        Some(value) => object.insert(field.to_owned(), value),
        None => object.remove(field),
    };
    payload
}
