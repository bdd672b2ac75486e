//! Cache records in the store: a layer chain per cache key, trusted only while its blobs exist.

use std::sync::Arc;

use seal_solver::{CacheKey, CacheStorage};
use seal_store::Store;

use crate::output::{LayerChain, Output};
use crate::vertex::OpVertex;
use crate::EngineError;

/// The solver's cache, backed by the store's `cache` column family.
pub struct StoreCache {
    pub store: Arc<Store>,
}

impl CacheStorage<OpVertex> for StoreCache {
    fn load(&self, key: &CacheKey) -> Result<Option<Output>, EngineError> {
        let Some(bytes) = self.store.cache_get(key.0.as_bytes())? else {
            return Ok(None);
        };
        let Ok(chain) = serde_json::from_slice::<LayerChain>(&bytes) else {
            tracing::warn!("ignoring an unreadable cache record {key}");
            return Ok(None);
        };
        // A record whose blobs were removed is a miss, never an error.
        let blobs = self.store.blobs();
        if !chain.layers.iter().all(|l| blobs.contains(&l.digest))
            || chain
                .base_config
                .as_ref()
                .is_some_and(|c| !blobs.contains(c))
        {
            return Ok(None);
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
