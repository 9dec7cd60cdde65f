//! The issuer's signing keys: the key-encryption key file, the first key (created under the
//! store's lock, or imported from `[keys] signing_key_path`), and the ring kept in step with
//! the store.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::StartError;
use crate::config::Config;
use crate::keyring::{self, KeyRecord, KeyRing, KeyTimes, SigningKeys};
use crate::keys::{KeyEncryptionKey, SigningKey};
use crate::store::{KeyStoreError, Store, StoreError};

/// The own issuer's keys and what it takes to open new ones. `Debug` shows no key material.
#[derive(Debug)]
pub struct OwnKeys {
    /// The ring the issuer signs with and the own trust set follows.
    pub keys: Arc<SigningKeys>,
    kek: KeyEncryptionKey,
    kek_path: PathBuf,
    /// Keys whose sealed half did not open, each reported once.
    unopened: Mutex<HashSet<String>>,
}

/// A key-store failure as a store failure (the plans used here never refuse).
fn store_error(error: KeyStoreError) -> StoreError {
    match error {
        KeyStoreError::Store(error) => error,
        KeyStoreError::Refused(error) => StoreError::Inconsistent(error.to_string()),
    }
}

impl OwnKeys {
    /// Reads the key-encryption key, creates (or imports) the first signing key when the store
    /// holds none, and opens every stored key. A key that does not open stops start-up: the
    /// key-encryption key is not the one the keys were sealed with.
    pub async fn load(config: &Config, store: &dyn Store, now: i64) -> Result<Self, StartError> {
        let kek_path = config.keys.encryption_key_path.clone();
        let mut records = store.signing_keys().await?;
        let empty = records.iter().all(|record| record.times.dropped(now));
        let kek = read_encryption_key(&kek_path, empty)?;
        if empty {
            let (key, imported) = first_signing_key(config)?;
            let record = KeyRecord::seal(&key, &kek, KeyTimes::first(now))
                .map_err(|error| encryption_key_error(&kek_path, error.to_string()))?;
            let written = store
                .change_signing_keys(&|existing| Ok(keyring::first_key(existing, &record, now)))
                .await
                .map_err(store_error)?;
            if !written.is_empty() {
                match imported {
                    Some(path) => tracing::info!(
                        key.kid = key.kid(),
                        path = %path.display(),
                        "signing key imported into the store"
                    ),
                    None => tracing::info!(key.kid = key.kid(), "signing key created"),
                }
            }
            records = store.signing_keys().await?;
        } else if let Some(path) = &config.keys.signing_key_path {
            tracing::debug!(path = %path.display(), "signing key file not imported: the store holds keys");
        }

        let (ring, failures) = KeyRing::open(&records, &kek, &KeyRing::default());
        if let Some((kid, _)) = failures.first() {
            return Err(encryption_key_error(
                &kek_path,
                format!(
                    "does not open signing key {kid} kept in the store: every gatehouse on \
                     this store must use the same key-encryption key"
                ),
            ));
        }
        let keys = SigningKeys::new(ring, now).map_err(StartError::SigningKeys)?;
        Ok(Self {
            keys: Arc::new(keys),
            kek,
            kek_path,
            unopened: Mutex::new(HashSet::new()),
        })
    }

    /// Reads the stored keys again and puts them in use. A key sealed under another
    /// key-encryption key is still published and trusted, but cannot sign (reported once).
    pub async fn reload(&self, store: &dyn Store, now: i64) -> Result<(), StoreError> {
        let records = store.signing_keys().await?;
        let (ring, failures) = KeyRing::open(&records, &self.kek, &self.keys.ring());
        let mut unopened = self
            .unopened
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (kid, _) in failures {
            if unopened.insert(kid.clone()) {
                tracing::error!(
                    key.kid = %kid,
                    path = %self.kek_path.display(),
                    "signing key does not open with this key-encryption key"
                );
            }
        }
        drop(unopened);
        self.keys
            .replace(ring, now)
            .map_err(|error| StoreError::Inconsistent(error.to_string()))
    }

    /// Deletes the keys past their `drop_at` from the store, when the ring has any; returns
    /// whether the store changed. Every replica may try: the plan runs under the store's lock.
    pub async fn delete_dropped(&self, store: &dyn Store, now: i64) -> Result<bool, StoreError> {
        if !self.keys.ring().has_dropped(now) {
            return Ok(false);
        }
        let written = store
            .change_signing_keys(&|existing| Ok(keyring::drop_expired(existing, now)))
            .await
            .map_err(store_error)?;
        for change in &written {
            if let keyring::KeyChange::Delete { kid } = change {
                tracing::info!(key.kid = %kid, "dropped signing key deleted");
            }
        }
        Ok(!written.is_empty())
    }
}

fn encryption_key_error(path: &Path, problem: String) -> StartError {
    StartError::EncryptionKey {
        path: path.display().to_string(),
        problem,
    }
}

/// The key to start a store with: `[keys] signing_key_path` when it names a file (and the
/// path, for the log), otherwise a fresh key.
fn first_signing_key(config: &Config) -> Result<(SigningKey, Option<PathBuf>), StartError> {
    if let Some(path) = &config.keys.signing_key_path {
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let key = SigningKey::from_pem(&pem).map_err(|source| StartError::Key {
                    path: path.display().to_string(),
                    source,
                })?;
                return Ok((key, Some(path.clone())));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StartError::KeyFile {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    }
    let key = SigningKey::generate().map_err(StartError::SigningKeys)?;
    Ok((key, None))
}

/// Reads the key-encryption key file. When it is missing and `may_create` (the store holds no
/// key yet), a new key is written there with mode 0600; two processes doing so at once end up
/// with the same key, the one whose file appeared first.
pub fn read_encryption_key(path: &Path, may_create: bool) -> Result<KeyEncryptionKey, StartError> {
    let file_error = |error: std::io::Error| encryption_key_error(path, error.to_string());
    let parse = |text: &str| {
        KeyEncryptionKey::from_text(text)
            .map_err(|error| encryption_key_error(path, error.to_string()))
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return parse(&text),
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(file_error(error));
        }
        Err(_) if !may_create => {
            return Err(encryption_key_error(
                path,
                "file not found, and the store holds signing keys sealed under a \
                 key-encryption key: mount the file every other gatehouse uses"
                    .into(),
            ));
        }
        Err(_) => {}
    }
    let kek = KeyEncryptionKey::generate()
        .map_err(|error| encryption_key_error(path, error.to_string()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(file_error)?;
    }
    match create_private(path, kek.to_text().expose()) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "key-encryption key generated");
            Ok(kek)
        }
        // Another process created it first: use that one.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(file_error)?;
            parse(&text)
        }
        Err(error) => Err(file_error(error)),
    }
}

/// Writes `contents` to a new file at `path` with mode 0600, complete or not at all: the
/// contents go to a temporary file that is then linked into place (which fails if `path`
/// exists).
fn create_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let temporary = path.with_file_name(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    linked
}
