//! The algorithm is fixed by configuration, never by the token (B02): RS256→HS256 key
//! confusion with every encoding of gatehouse's public key, and other `alg` values.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Sha256, Sha384, Sha512};

use super::{Forger, assert_invalid_token};
use crate::support::{assert_permit, forge};

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 128 {
        out.push(content.len() as u8);
    } else {
        let length = content.len().to_be_bytes();
        let length: Vec<u8> = length.iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | length.len() as u8);
        out.extend(length);
    }
    out.extend(content);
    out
}

fn der_unsigned(big_endian: &[u8]) -> Vec<u8> {
    let mut content = Vec::new();
    if big_endian[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend(big_endian);
    der(0x02, &content)
}

/// The DER SubjectPublicKeyInfo of an RSA public key given as base64url `n` and `e`.
fn rsa_spki_der(n: &str, e: &str) -> Vec<u8> {
    let n = URL_SAFE_NO_PAD.decode(n).unwrap();
    let e = URL_SAFE_NO_PAD.decode(e).unwrap();
    let rsa_encryption = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let algorithm = der(0x30, &rsa_encryption);
    let public_key = der(0x30, &[der_unsigned(&n), der_unsigned(&e)].concat());
    let bit_string = der(0x03, &[&[0u8][..], &public_key].concat());
    der(0x30, &[algorithm, bit_string].concat())
}

fn hmac_token(alg: &str, secret: &[u8], header: &Value, claims: &Value) -> String {
    let header = forge::with(header, "alg", Some(json!(alg)));
    let input = format!(
        "{}.{}",
        forge::b64(header.to_string()),
        forge::b64(claims.to_string())
    );
    let tag = match alg {
        "HS256" => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        "HS384" => {
            let mut mac = Hmac::<Sha384>::new_from_slice(secret).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        "HS512" => {
            let mut mac = Hmac::<Sha512>::new_from_slice(secret).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        other => panic!("not an HMAC algorithm: {other}"),
    };
    format!("{input}.{}", forge::b64(tag))
}

#[tokio::test]
async fn hmac_signed_with_the_public_key_and_other_algorithms_are_refused() {
    let f = Forger::start().await;
    // The attacker asks for DELETE, which alice's role lacks.
    let claims = forge::with(&f.claims, "grants", Some(json!(["invoices.delete"])));
    let control = f.delete(&f.sign(&claims)).await;
    assert_permit(&control);

    let jwk = f.g.signing_key().jwk().clone();
    let der_key = rsa_spki_der(&jwk.n, &jwk.e);
    let pem_key = pem::encode(&pem::Pem::new("PUBLIC KEY", der_key.clone()));
    // The PEM really is gatehouse's public key: it verifies alice's token.
    let decoding = jsonwebtoken::DecodingKey::from_rsa_pem(pem_key.as_bytes()).unwrap();
    let (input, signature) = f.token.rsplit_once('.').unwrap();
    let verified = jsonwebtoken::crypto::verify(
        signature,
        input.as_bytes(),
        &decoding,
        jsonwebtoken::Algorithm::RS256,
    );
    assert!(verified.unwrap());
    let jwks: Value =
        f.g.http
            .get(f.g.url("/jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let served_jwk = jwks["keys"][0].to_string();
    assert!(served_jwk.contains(&jwk.n));

    let secrets: [(&str, Vec<u8>); 5] = [
        ("PEM", pem_key.clone().into_bytes()),
        ("PEM with newlines", format!("\n{pem_key}\n").into_bytes()),
        ("DER", der_key),
        ("JWK JSON", served_jwk.into_bytes()),
        ("modulus", URL_SAFE_NO_PAD.decode(&jwk.n).unwrap()),
    ];
    for alg in ["HS256", "HS384", "HS512"] {
        for (name, secret) in &secrets {
            let token = hmac_token(alg, secret, &f.header(), &claims);
            let a = f.delete(&token).await;
            assert_invalid_token(&a, &format!("{alg} keyed with {name}"));
            assert_eq!(a.reason(), "token_algorithm_refused", "{alg} {name}");
        }
    }
    for alg in ["PS256", "ES256", "RS512", "RS384", "rs256", ""] {
        let header = forge::with(&f.header(), "alg", Some(json!(alg)));
        let a = f.delete(&forge::rs256(&f.key, &header, &claims)).await;
        assert_invalid_token(&a, &format!("alg {alg:?} with an RS256 signature"));
        assert_eq!(a.reason(), "token_algorithm_refused", "{alg}");
    }
    let no_alg = forge::with(&f.header(), "alg", None);
    let a = f.delete(&forge::rs256(&f.key, &no_alg, &claims)).await;
    assert_invalid_token(&a, "no alg");
}
