//! Private keys at rest: AES-256-GCM under a key-encryption key (KEK) that lives in a file,
//! never in the store, so a database dump or a database credential alone cannot mint tokens.
//!
//! A sealed key is `version (1 byte) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)` over
//! the PKCS#8 DER of the key, with the key's `kid` as associated data: a blob moved to
//! another row does not open.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{KeyError, SigningKey};
use crate::secret::Secret;

/// The format byte of sealed keys written by this version.
const FORMAT: u8 = 1;

/// Length of a key-encryption key in bytes.
const KEK_LEN: usize = 32;

/// The key that seals signing keys in the store. `Debug` prints nothing of it.
pub struct KeyEncryptionKey {
    bytes: [u8; KEK_LEN],
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey(***)")
    }
}

impl KeyEncryptionKey {
    /// 32 fresh random bytes.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0; KEK_LEN];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| KeyError::Generate)?;
        Ok(Self { bytes })
    }

    /// Reads the file format: 32 bytes in standard base64, surrounding whitespace ignored.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let decoded = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::BadEncryptionKey)?;
        let bytes = decoded.try_into().map_err(|_| KeyError::BadEncryptionKey)?;
        Ok(Self { bytes })
    }

    /// The file format: standard base64 and a newline.
    pub fn to_text(&self) -> Secret {
        Secret::new(format!("{}\n", STANDARD.encode(self.bytes)))
    }

    fn cipher(&self) -> Result<LessSafeKey, KeyError> {
        let key = UnboundKey::new(&AES_256_GCM, &self.bytes).map_err(|_| KeyError::Seal)?;
        Ok(LessSafeKey::new(key))
    }

    /// Seals `key` for storage under its `kid`.
    pub fn seal(&self, key: &SigningKey) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KeyError::Seal)?;
        let mut sealed = key.to_pkcs8_der()?;
        self.cipher()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.kid().as_bytes()),
                &mut sealed,
            )
            .map_err(|_| KeyError::Seal)?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        blob.push(FORMAT);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Opens a key sealed under `kid`; fails when this is not the key that sealed it, the
    /// blob was altered or moved, or the opened key's own `kid` differs.
    pub fn open(&self, kid: &str, blob: &[u8]) -> Result<SigningKey, KeyError> {
        let (&format, rest) = blob.split_first().ok_or(KeyError::Unseal)?;
        if format != FORMAT || rest.len() < NONCE_LEN {
            return Err(KeyError::Unseal);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Unseal)?;
        let mut buffer = sealed.to_vec();
        let der = self
            .cipher()?
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buffer)
            .map_err(|_| KeyError::Unseal)?;
        let key = SigningKey::from_pkcs8_der(der).map_err(|_| KeyError::Unseal)?;
        if key.kid() != kid {
            return Err(KeyError::Unseal);
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_kek_and_its_kid() {
        let kek = KeyEncryptionKey::generate().unwrap();
        let key = SigningKey::generate().unwrap();
        let blob = kek.seal(&key).unwrap();

        let der = key.to_pkcs8_der().unwrap();
        assert!(!blob.windows(der.len()).any(|window| window == der));
        assert_eq!(kek.open(key.kid(), &blob).unwrap().kid(), key.kid());

        let other = KeyEncryptionKey::generate().unwrap();
        assert!(matches!(
            other.open(key.kid(), &blob),
            Err(KeyError::Unseal)
        ));
        assert!(matches!(
            kek.open("another-kid", &blob),
            Err(KeyError::Unseal)
        ));
        let mut altered = blob.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(matches!(
            kek.open(key.kid(), &altered),
            Err(KeyError::Unseal)
        ));
        assert!(matches!(kek.open(key.kid(), &[]), Err(KeyError::Unseal)));
    }

    #[test]
    fn the_kek_file_format_is_32_bytes_of_base64() {
        let kek = KeyEncryptionKey::generate().unwrap();
        let again = KeyEncryptionKey::from_text(kek.to_text().expose()).unwrap();
        assert_eq!(again.bytes, kek.bytes);
        assert!(!format!("{kek:?}").contains(kek.to_text().expose().trim()));
        for bad in ["", "not base64!", &STANDARD.encode([0_u8; 16])] {
            assert!(KeyEncryptionKey::from_text(bad).is_err());
        }
    }
}
