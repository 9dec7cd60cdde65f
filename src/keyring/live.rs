//! The ring in use: replaced when the store's keys change, re-evaluated as time passes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockWriteGuard};

use super::{KeyRing, KeyView, KeyringError};
use crate::keys::{KeyError, SigningKey};

/// The issuer's current key ring and its view at the last instant asked about. Signing and
/// verification ask with their own `now`, so a key's `sign_from` or `drop_at` takes effect at
/// that instant, with no store change and no timer.
#[derive(Debug)]
pub struct SigningKeys {
    current: RwLock<Current>,
    revisions: AtomicU64,
}

/// The ring and its last view, replaced together.
#[derive(Debug)]
struct Current {
    ring: Arc<KeyRing>,
    view: Arc<KeyView>,
}

impl SigningKeys {
    /// `ring`, evaluated at `now`.
    pub fn new(ring: KeyRing, now: i64) -> Result<Self, KeyError> {
        let mut view = ring.view(now)?;
        view.revision = 1;
        Ok(Self {
            current: RwLock::new(Current {
                ring: Arc::new(ring),
                view: Arc::new(view),
            }),
            revisions: AtomicU64::new(1),
        })
    }

    fn write(&self) -> RwLockWriteGuard<'_, Current> {
        self.current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The ring in use.
    pub fn ring(&self) -> Arc<KeyRing> {
        match self.current.read() {
            Ok(current) => current.ring.clone(),
            Err(poisoned) => poisoned.into_inner().ring.clone(),
        }
    }

    /// Puts `ring` in use from `now` on.
    pub fn replace(&self, ring: KeyRing, now: i64) -> Result<(), KeyError> {
        let mut view = ring.view(now)?;
        let mut current = self.write();
        view.revision = self.revisions.fetch_add(1, Ordering::SeqCst) + 1;
        *current = Current {
            ring: Arc::new(ring),
            view: Arc::new(view),
        };
        Ok(())
    }

    /// The ring as it stands at `now`; evaluated again only when `now` is past the last
    /// view's next scheduled change (or before it, for a clock moved back).
    pub fn view(&self, now: i64) -> Arc<KeyView> {
        {
            let current = match self.current.read() {
                Ok(current) => current,
                Err(poisoned) => poisoned.into_inner(),
            };
            if current.view.covers(now) {
                return current.view.clone();
            }
        }
        let mut current = self.write();
        if current.view.covers(now) {
            return current.view.clone();
        }
        let Ok(mut view) = current.ring.view(now) else {
            // The same public keys parsed when the ring was put in use: keep the last view.
            return current.view.clone();
        };
        view.revision = if view.same_keys(&current.view) {
            current.view.revision
        } else {
            self.revisions.fetch_add(1, Ordering::SeqCst) + 1
        };
        current.view = Arc::new(view);
        current.view.clone()
    }

    /// The key that signs at `now`.
    pub fn signer(&self, now: i64) -> Result<Arc<SigningKey>, KeyringError> {
        self.view(now).signer()
    }
}
