//! A key set fetched from another issuer: [`VerificationKeys::from_fetched_jwks`] must not
//! panic on any body, must refuse a body without a usable key, and must account for every
//! member it reads as either kept or skipped.

#![no_main]

use gatehouse::keys::VerificationKeys;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok((keys, skipped)) = VerificationKeys::from_fetched_jwks(data) else {
        return;
    };
    assert!(
        !keys.is_empty(),
        "a key set without usable keys was accepted"
    );
    let body: Value = serde_json::from_slice(data).expect("an accepted body is JSON");
    let members = body["keys"]
        .as_array()
        .expect("an accepted body has a keys array");
    assert_eq!(
        keys.len() + skipped,
        members.len(),
        "members lost or counted twice"
    );
    for member in members {
        if let Some(kid) = member["kid"].as_str() {
            if keys.contains(kid) {
                assert!(!kid.is_empty() && kid.len() <= 256, "kept kid {kid:?}");
            }
        }
    }
});
