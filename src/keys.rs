//! Signing and verification keys: RSA-2048, RS256, `kid` = RFC 7638 thumbprint.
//!
//! Private keys at rest are sealed under a key-encryption key ([`sealed`]).

mod sealed;

pub use sealed::KeyEncryptionKey;

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

const PEM_TAG: &str = "PRIVATE KEY";

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("RSA key generation failed")]
    Generate,
    #[error("signing key is not an RSA PKCS#8 PEM key of at least 2048 bits")]
    Rejected,
    #[error("signing failed")]
    Sign,
    #[error("JWK is not a usable RS256 public key")]
    BadJwk,
    #[error("key set is not a JWKS with at least one RS256 signing key of 2048 bits or more")]
    NoUsableKey,
    #[error("key-encryption key is not 32 bytes of base64")]
    BadEncryptionKey,
    #[error("sealed private key does not open with this key-encryption key")]
    Unseal,
    #[error("sealing the private key failed")]
    Seal,
}

/// A public key as published at `/jwks` (RFC 7517): public members only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub usage: String,
    pub alg: String,
    pub n: String,
    pub e: String,
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// The private RS256 key gatehouse signs with. `Debug` prints only the `kid`.
pub struct SigningKey {
    pair: KeyPair,
    jwk: Jwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .finish()
    }
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        Ok(Self::from_pair(pair))
    }

    /// Reads a PKCS#8 PEM private key.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let parsed = pem::parse(pem_text).map_err(|_| KeyError::Rejected)?;
        if parsed.tag() != PEM_TAG {
            return Err(KeyError::Rejected);
        }
        Self::from_pkcs8_der(parsed.contents())
    }

    /// The key as PKCS#8 PEM, for export.
    pub fn to_pem(&self) -> Result<Secret, KeyError> {
        let der = self.to_pkcs8_der()?;
        let block = pem::Pem::new(PEM_TAG, der);
        Ok(Secret::new(pem::encode(&block)))
    }

    /// Reads a PKCS#8 DER private key (as unsealed from the store).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair = KeyPair::from_pkcs8(der).map_err(|_| KeyError::Rejected)?;
        if pair.public_modulus_len() < 256 {
            return Err(KeyError::Rejected);
        }
        Ok(Self::from_pair(pair))
    }

    /// The key as PKCS#8 DER, to be sealed; callers never log or persist it in the clear.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        let der = self.pair.as_der().map_err(|_| KeyError::Generate)?;
        Ok(der.as_ref().to_vec())
    }

    fn from_pair(pair: KeyPair) -> Self {
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let jwk = Jwk {
            kty: "RSA".into(),
            kid: thumbprint(&n, &e),
            usage: "sig".into(),
            alg: "RS256".into(),
            n,
            e,
        };
        Self { pair, jwk }
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public half, as published.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
            .map_err(|_| KeyError::Sign)?;
        Ok(signature)
    }
}

/// RFC 7638 JWK thumbprint of an RSA key, base64url-encoded SHA-256.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A member of a fetched key set: everything optional, since issuers publish other kinds too.
#[derive(Debug, Deserialize)]
struct FetchedJwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// A fetched key set; its members are read one by one so that one odd key spoils nothing.
#[derive(Debug, Deserialize)]
struct FetchedJwkSet {
    keys: Vec<serde_json::Value>,
}

/// One parsed RS256 verification key.
struct VerificationKey {
    key: ParsedPublicKey,
}

/// The public keys a verifier trusts, by `kid`.
#[derive(Default)]
pub struct VerificationKeys {
    by_kid: HashMap<String, VerificationKey>,
}

impl fmt::Debug for VerificationKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_kid.keys()).finish()
    }
}

impl VerificationKeys {
    /// Parses every RS256 signing key of a key set; keys of other types or uses are skipped.
    pub fn from_jwks(set: &JwkSet) -> Result<Self, KeyError> {
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            if jwk.kty != "RSA" || jwk.usage != "sig" || jwk.alg != "RS256" {
                continue;
            }
            let n = URL_SAFE_NO_PAD
                .decode(&jwk.n)
                .map_err(|_| KeyError::BadJwk)?;
            let e = URL_SAFE_NO_PAD
                .decode(&jwk.e)
                .map_err(|_| KeyError::BadJwk)?;
            // RSA-2048 at least: the modulus without leading zeros has 256 bytes or more.
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < 256 {
                return Err(KeyError::BadJwk);
            }
            let key = PublicKeyComponents { n, e }
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                .map_err(|_| KeyError::BadJwk)?;
            by_kid.insert(jwk.kid.clone(), VerificationKey { key });
        }
        Ok(Self { by_kid })
    }

    /// Reads a JWKS fetched from another issuer and keeps its RS256 signing keys: `kty` RSA,
    /// `use` absent or `sig`, `alg` absent or `RS256`, a non-empty `kid`, a modulus of at
    /// least 2048 bits. Other members are skipped (and counted); a repeated `kid` keeps its
    /// first key. A body that is not a key set, or has no usable key, is refused so that the
    /// last good keys stay in use.
    pub fn from_fetched_jwks(body: &[u8]) -> Result<(Self, usize), KeyError> {
        let set: FetchedJwkSet = serde_json::from_slice(body).map_err(|_| KeyError::NoUsableKey)?;
        let mut by_kid = HashMap::new();
        let mut skipped = 0;
        for member in set.keys {
            match serde_json::from_value::<FetchedJwk>(member)
                .ok()
                .and_then(|jwk| fetched_key(&jwk))
            {
                Some((kid, key)) if !by_kid.contains_key(&kid) => {
                    by_kid.insert(kid, key);
                }
                _ => skipped += 1,
            }
        }
        if by_kid.is_empty() {
            return Err(KeyError::NoUsableKey);
        }
        Ok((Self { by_kid }, skipped))
    }

    /// Whether a key with this `kid` is trusted.
    pub fn contains(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Verifies an RS256 signature with the key named `kid`; `None` when the kid is unknown.
    pub fn verify(&self, kid: &str, message: &[u8], signature: &[u8]) -> Option<bool> {
        let entry = self.by_kid.get(kid)?;
        Some(entry.key.verify_sig(message, signature).is_ok())
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.by_kid.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }
}

/// The `kid` and parsed key of a fetched member, when it is an RS256 signing key.
fn fetched_key(jwk: &FetchedJwk) -> Option<(String, VerificationKey)> {
    if jwk.kty.as_deref() != Some("RSA")
        || jwk.usage.as_deref().is_some_and(|usage| usage != "sig")
        || jwk.alg.as_deref().is_some_and(|alg| alg != "RS256")
    {
        return None;
    }
    let kid = jwk
        .kid
        .as_deref()
        .filter(|kid| !kid.is_empty() && kid.len() <= 256)?;
    let n = URL_SAFE_NO_PAD.decode(jwk.n.as_deref()?).ok()?;
    let e = URL_SAFE_NO_PAD.decode(jwk.e.as_deref()?).ok()?;
    if modulus_bits(&n) < 2048 {
        return None;
    }
    let key = PublicKeyComponents { n, e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .ok()?;
    Some((kid.to_owned(), VerificationKey { key }))
}

/// The bit length of a big-endian unsigned integer.
fn modulus_bits(n: &[u8]) -> usize {
    let significant: Vec<&u8> = n.iter().skip_while(|b| **b == 0).collect();
    match significant.first() {
        None => 0,
        Some(first) => (significant.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // The example key of RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_key_round_trips_through_pem_and_verifies_its_signature() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pem(key.to_pem().unwrap().expose()).unwrap();
        assert_eq!(key.kid(), again.kid());

        let keys = VerificationKeys::from_jwks(&JwkSet {
            keys: vec![key.jwk().clone()],
        })
        .unwrap();
        let signature = again.sign(b"message").unwrap();
        assert_eq!(keys.verify(key.kid(), b"message", &signature), Some(true));
        assert_eq!(keys.verify(key.kid(), b"other", &signature), Some(false));
        assert_eq!(keys.verify("unknown", b"message", &signature), None);
    }

    #[test]
    fn fetched_key_sets_keep_only_rs256_signing_keys() {
        let key = SigningKey::generate().unwrap();
        let jwk = serde_json::to_value(key.jwk()).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut jwk = jwk.clone();
            jwk[field] = value;
            jwk
        };
        let mut no_alg = jwk.clone();
        no_alg.as_object_mut().unwrap().remove("alg");
        let short = URL_SAFE_NO_PAD.encode([0xff_u8; 128]);
        let body = serde_json::json!({"keys": [
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            with("use", "enc".into()),
            with("alg", "RS512".into()),
            with("n", short.into()),
            with("kid", "".into()),
            "not an object",
            no_alg,
        ]});
        let (keys, skipped) =
            VerificationKeys::from_fetched_jwks(body.to_string().as_bytes()).unwrap();
        assert_eq!((keys.len(), skipped), (1, 6));
        assert!(keys.contains(key.kid()));

        for refused in [
            r#"{"keys":[]}"#,
            "[]",
            "not json",
            r#"{"keys":[{"kty":"EC"}]}"#,
        ] {
            assert!(VerificationKeys::from_fetched_jwks(refused.as_bytes()).is_err());
        }
        assert_eq!(modulus_bits(&[0x00, 0x01, 0x00]), 9);
    }

    #[test]
    fn published_jwk_has_public_members_only() {
        let key = SigningKey::generate().unwrap();
        let json = serde_json::to_value(key.jwk()).unwrap();
        let mut names: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"]);
    }

    /// The PKCS#8 DER (base64) of an RSA-1024 key made for this test only: too short to sign
    /// with (RFC 8725 §3.5).
    const RSA_1024_PKCS8: &str = concat!(
        "MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBAMX6SAJeXHPUUjth2vNwTuOm8B5c",
        "czLsIO0+txEr8GF1iOkZX+NmX3bQ2DiqTPpkNFDnXYpz3DdnwSbJ2u1KdLb2lgXu+/ddAVObxw1w",
        "x/EhyI5dO4RgCjRc7Z6xROPfh/k9yWoptIwtV+5bVzMZckmOm+vSKlNJ7h3kYS9QBd6pAgMBAAEC",
        "gYEAwaL+c3Kfsprkozge0yPxxTAug0OhWRkjS2if3afAQVKYSoWLB/vFO40hLqtDB1Si5s6k6xpP",
        "NdHBVZLxEk5UwDaf9ggZDCpCUF9cSdn1iUy7hTHFw7ebmCHtA2fwtKRz7kkbC5XeNijkXEMbV73C",
        "MbfMxdhr5yaeBF+1Bu2JZEECQQDsQErukqzyKU4Qpff3pthWiOWPG5CaR4wD4CZn+G9nspZAYs58",
        "/WhnjTKTjbgD6oM5EVKvRJyM64eGPK90n1m9AkEA1obyazVGYOGo+jeOULsZZFWNsLwiXb/pM1Cj",
        "vBAZU2yUWTxqTuMF5yNDOAuS+nX/IifdqhpinqMLcSGdCH8pXQJAQxugLVSMu9zvx9rdLQO/wBTy",
        "4Eu8L5bTNuadAjuXqaUY+QEYFnkFByUckL1Y4APlcnhxPEgJEB53SLJERKRfIQJAM3oiRZN9FdZQ",
        "Y+pc3gZna2oUG+qpHHHmlYeuInyCd0BAwMD8iX10dyhBAvvUAwG5fQqv6Bd4vrRFFJqKQfWxiQJA",
        "TVvr9sCfSVyB7mSvy28Ryfc7NunikM4f2rKEH6kUeW+dlnzhmXb1R5hfu9UQOaPIhyW70UAULKOD",
        "LCJg+S7Ddw==",
    );

    #[test]
    fn keys_shorter_than_2048_bits_are_refused() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(RSA_1024_PKCS8)
            .unwrap();
        assert!(matches!(
            SigningKey::from_pkcs8_der(&der),
            Err(KeyError::Rejected)
        ));
        let pem_text = pem::encode(&pem::Pem::new(PEM_TAG, der));
        assert!(matches!(
            SigningKey::from_pem(&pem_text),
            Err(KeyError::Rejected)
        ));
        // A published key of 1024 bits is not a verification key either.
        let key = SigningKey::generate().unwrap();
        let mut short = key.jwk().clone();
        short.n = URL_SAFE_NO_PAD.encode([0xff_u8; 128]);
        assert!(VerificationKeys::from_jwks(&JwkSet { keys: vec![short] }).is_err());
        assert_eq!(key.jwk().n.len(), 342, "2048-bit modulus");
    }
}
