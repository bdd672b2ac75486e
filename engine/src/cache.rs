//! Cache records in the store: a layer chain per cache key, trusted only while its blobs exist
//! uncorrupted (`BlobStore::check`: one `stat` for a blob verified since its last write).
//! A record with a missing or corrupt blob is a miss: the step runs again and writes the blob
//! anew.
//! Each blob is checked once per solve: a Merge's record lists every layer below it, so a
//! Kubefile of 150 steps would otherwise `stat` the same blobs ~11,000 times in a no-op.
//! Hits are collected and their last-used times written in one batch after the solve
//! ([`StoreCache::touch_hits`]), for `seal prune`'s LRU order; saves record theirs directly.
//! A key the store lacks is looked up in the imported remote caches (`--cache-from`), in
//! order; a record found there is adopted into the store with its blobs marked remote.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use seal_solver::{CacheKey, CacheStorage};
use seal_store::{Digest, Store, StoreError};

use crate::output::{LayerChain, Output};
use crate::remote_cache::ImportedCache;
use crate::vertex::OpVertex;
use crate::EngineError;

/// The solver's cache, backed by the store's `cache` column family.
pub struct StoreCache {
    pub store: Arc<Store>,
    /// Keys served from the store during this solve.
    hits: Mutex<Vec<[u8; 32]>>,
    /// Blobs found present and uncorrupted during this solve.
    checked: Mutex<HashSet<Digest>>,
    /// `--cache-from` caches, consulted after the store, in order.
    imports: Vec<ImportedCache>,
}

impl StoreCache {
    pub fn new(store: Arc<Store>) -> StoreCache {
        StoreCache::with_imports(store, Vec::new())
    }

    /// A cache that also serves the records of `imports`.
    pub fn with_imports(store: Arc<Store>, imports: Vec<ImportedCache>) -> StoreCache {
        StoreCache {
            store,
            hits: Mutex::new(Vec::new()),
            checked: Mutex::new(HashSet::new()),
            imports,
        }
    }

    /// The record of `key` from the first imported cache that has a usable one.
    fn load_imported(&self, key: &CacheKey) -> Result<Option<Output>, EngineError> {
        for import in &self.imports {
            if let Some(chain) = import.adopt(&self.store, key.0.as_bytes())? {
                return Ok(Some(Output::Layers(chain)));
            }
        }
        Ok(None)
    }

    /// Record that this solve's hits were used now: one batched write, none without hits.
    /// Best effort: a failure only costs LRU precision, so it is logged, not returned.
    pub fn touch_hits(&self) {
        let hits = self
            .hits
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        if let Err(e) = self.store.touch_cache(&hits) {
            tracing::warn!("recording the use of cached results: {e}");
        }
    }
}

impl CacheStorage<OpVertex> for StoreCache {
    fn load(&self, key: &CacheKey) -> Result<Option<Output>, EngineError> {
        let Some(bytes) = self.store.cache_get(key.0.as_bytes())? else {
            return self.load_imported(key);
        };
        let Ok(chain) = serde_json::from_slice::<LayerChain>(&bytes) else {
            tracing::warn!("ignoring an unreadable cache record {key}");
            return self.load_imported(key);
        };
        // A record whose blobs were removed or damaged is a miss, never an error.
        let wanted = chain
            .layers
            .iter()
            .map(|l| (&l.digest, Some(l.size)))
            .chain(chain.base_config.iter().map(|c| (c, None)));
        for (digest, size) in wanted {
            if self.checked.lock().is_ok_and(|c| c.contains(digest)) {
                continue;
            }
            // A remote blob (adopted from a `--cache-from` cache) is downloaded when needed.
            match self.store.presence(digest, size).map(|_| ()) {
                Ok(()) => {
                    if let Ok(mut checked) = self.checked.lock() {
                        checked.insert(digest.clone());
                    }
                }
                Err(StoreError::MissingBlob(_)) => return self.load_imported(key),
                Err(StoreError::CorruptBlob { .. }) => {
                    tracing::warn!(
                        "blob {digest} of a cached result is corrupt; running the step again \
                         to write it anew"
                    );
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Ok(mut hits) = self.hits.lock() {
            hits.push(*key.0.as_bytes());
        }
        Ok(Some(Output::Layers(chain)))
    }

    fn save(&self, key: &CacheKey, output: &Output) -> Result<(), EngineError> {
        if let Output::Layers(chain) = output {
            let record =
                serde_json::to_vec(chain).map_err(|e| EngineError::Internal(e.to_string()))?;
            let touched: Vec<_> = chain
                .layers
                .iter()
                .map(|l| (l.digest.clone(), l.size))
                .collect();
            self.store.touch_blobs(&touched)?;
            self.store.cache_put(key.0.as_bytes(), &record)?;
        }
        Ok(())
    }
}
