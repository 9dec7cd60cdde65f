//! Client records and granted resources, cached per store generation.
//!
//! Every change to a client (apply, disable, removal, secret rotation) and to grants, roles or
//! resources moves the store's generation on in the same transaction, and every lookup here is
//! keyed by the generation read from the store at the start of the request, before the
//! record. So an entry is never older than the generation it is filed under, and a request
//! that sees a newer generation never sees an older entry: a disabled client or a rotated
//! secret is refused on the very next request, on every replica. Nothing is cached for an
//! unknown client, and failures are never cached. Time-dependent checks (a previous secret's
//! grace period) run on every request against the cached record, not inside the cache.

use std::sync::Arc;

use moka::sync::Cache;

use crate::catalogue::Subject;
use crate::resources::Resource;
use crate::store::{ClientRecord, Store, StoreError};

/// Entries kept per cache; old generations age out by use, not by time.
const CAPACITY: u64 = 10_000;

/// The issuer's read-through caches, shared by clones of one [`super::Issuer`].
#[derive(Debug, Clone)]
pub struct IssuerCache {
    clients: Cache<(i64, String), ClientRecord>,
    resources: Cache<(i64, Subject), Arc<Vec<Resource>>>,
}

impl Default for IssuerCache {
    fn default() -> Self {
        Self {
            clients: Cache::new(CAPACITY),
            resources: Cache::new(CAPACITY),
        }
    }
}

impl IssuerCache {
    /// The client `client_id` as of `generation` (read from the store before this call).
    pub async fn client(
        &self,
        store: &Arc<dyn Store>,
        generation: i64,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        let key = (generation, client_id.to_owned());
        if let Some(client) = self.clients.get(&key) {
            return Ok(Some(client));
        }
        let client = store.client(client_id).await?;
        if let Some(client) = &client {
            self.clients.insert(key, client.clone());
        }
        Ok(client)
    }

    /// The resources `subject` holds grants on as of `generation` (read before this call).
    pub async fn granted_resources(
        &self,
        store: &Arc<dyn Store>,
        generation: i64,
        subject: &Subject,
    ) -> Result<Arc<Vec<Resource>>, StoreError> {
        let key = (generation, subject.clone());
        if let Some(resources) = self.resources.get(&key) {
            return Ok(resources);
        }
        let resources = Arc::new(store.granted_resources(subject).await?);
        self.resources.insert(key, resources.clone());
        Ok(resources)
    }
}
