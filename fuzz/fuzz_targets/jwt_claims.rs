//! Header and claims of the fuzzer's choosing, signed with the trusted key, so that the
//! claim checks behind the signature are reached: `verify` must not panic on any claim value
//! (numbers at the edges of f64 and i64 included), and anything it accepts must satisfy every
//! rule of the contract.
//!
//! Input: an optional first line `@<seconds>` moving the clock from `NOW`, then the header
//! JSON on one line, then the payload JSON (the rest). `$KID` is replaced by the key's id and
//! `$NOW` by `NOW`, so seeds stay readable.

#![no_main]

use gatehouse::tokens::verify;
use gatehouse_fuzz::{NOW, assert_acceptable, fixture, sign};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let text = String::from_utf8_lossy(data);
    let text = text
        .replace("$KID", fixture.key.kid())
        .replace("$NOW", &NOW.to_string());

    let (now, rest) = match text.strip_prefix('@').and_then(|t| t.split_once('\n')) {
        Some((offset, rest)) => match offset.trim().parse::<i64>() {
            Ok(offset) => (NOW.saturating_add(offset), rest),
            Err(_) => return,
        },
        None => (NOW, text.as_str()),
    };
    let (header, payload) = rest.split_once('\n').unwrap_or((rest, ""));

    let token = sign(&fixture.key, header.as_bytes(), payload.as_bytes());
    if let Ok(verified) = verify(&token, &fixture.trust, now) {
        let header: Value = serde_json::from_str(header).expect("an accepted header is JSON");
        let claims: Value = serde_json::from_str(payload).expect("accepted claims are JSON");
        assert_acceptable(&header, &claims, now, &verified);
    }
});
