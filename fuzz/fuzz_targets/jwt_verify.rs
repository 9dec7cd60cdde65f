//! A compact token of arbitrary bytes against the fixed trust set: [`verify`] must refuse it
//! without panicking, and anything it accepts must satisfy every rule of the contract.

#![no_main]

use gatehouse::tokens::verify;
use gatehouse_fuzz::{NOW, assert_acceptable, decode_segment, fixture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let fixture = fixture();
    if let Ok(verified) = verify(&token, &fixture.trust, NOW) {
        let mut parts = token.split('.');
        let header = parts.next().and_then(decode_segment);
        let claims = parts.next().and_then(decode_segment);
        match (header, claims) {
            (Some(header), Some(claims)) => assert_acceptable(&header, &claims, NOW, &verified),
            _ => panic!("accepted a token whose segments are not JSON"),
        }
    }
});
