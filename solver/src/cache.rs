//! The cache-storage boundary: where the solver looks results up and saves them.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::{CacheKey, Vertex};

/// Persistent results by cache key. The caller owns the encoding and must only return a result
/// whose backing data (blobs) still exists; a missing blob is a miss, never an error.
pub trait CacheStorage<V: Vertex>: Send + Sync + 'static {
    /// The stored result for `key`, if any and still usable.
    fn load(&self, key: &CacheKey) -> Result<Option<V::Output>, V::Error>;
    /// Record `output` as the result of `key`.
    fn save(&self, key: &CacheKey, output: &V::Output) -> Result<(), V::Error>;
}

/// An in-memory cache, for tests and for `--no-cache`-style throwaway solves.
#[derive(Debug)]
pub struct MemoryCache<O> {
    entries: Mutex<HashMap<CacheKey, O>>,
}

impl<O> Default for MemoryCache<O> {
    fn default() -> Self {
        MemoryCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<O> MemoryCache<O> {
    /// Number of stored results.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V: Vertex> CacheStorage<V> for MemoryCache<V::Output> {
    fn load(&self, key: &CacheKey) -> Result<Option<V::Output>, V::Error> {
        Ok(self.entries.lock().ok().and_then(|e| e.get(key).cloned()))
    }

    fn save(&self, key: &CacheKey, output: &V::Output) -> Result<(), V::Error> {
        if let Ok(mut e) = self.entries.lock() {
            e.insert(*key, output.clone());
        }
        Ok(())
    }
}
