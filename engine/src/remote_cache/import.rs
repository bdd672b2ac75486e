//! `--cache-from`: read a cache's manifest and config (never its layers), check them, and
//! serve its records after the local store's. A record used is adopted into the store: its
//! blobs marked remote, its layers' path indexes stored, the record itself written, so the
//! next build finds it locally and a later `--cache-to` exports it again.

use std::collections::{BTreeMap, HashMap};

use seal_store::{Digest, RegistryOptions, RemoteBlob, RemoteSource, Store, StoreError};

use super::format::{self, CONFIG_LIMIT};
use super::{backend, CacheError, CacheLocation};
use crate::layer_index::is_valid_record;
use crate::output::LayerChain;

/// One imported cache: its records by key, and where their blobs are.
#[derive(Debug)]
pub struct ImportedCache {
    /// The `--cache-from` location, for messages.
    pub location: CacheLocation,
    source: RemoteSource,
    records: HashMap<[u8; 32], LayerChain>,
    indexes: BTreeMap<Digest, Vec<(String, Vec<u8>)>>,
    collect: BTreeMap<String, String>,
}

/// Read and check the cache at `location`: its manifest and config only.
pub fn import_cache(
    location: &CacheLocation,
    registries: &RegistryOptions,
) -> Result<ImportedCache, CacheError> {
    let backend = backend(location, registries)?;
    let manifest = format::parse_manifest(&backend.read_manifest()?)?;
    let config = backend.read_blob(
        &manifest.config.digest,
        manifest.config.size.min(CONFIG_LIMIT),
    )?;
    let document = format::parse_config(manifest, &config)?;
    let mut indexes = BTreeMap::new();
    for (digest, text) in &document.config.indexes {
        let records = format::decode_index(text)?;
        if let Some((path, _)) = records.iter().find(|(_, r)| !is_valid_record(r)) {
            return Err(format::FormatError(format!(
                "the path index of {digest} has a bad record for `{path}`"
            ))
            .into());
        }
        indexes.insert(digest.clone(), records);
    }
    let collect = document.config.collect;
    let records = document
        .config
        .records
        .into_iter()
        .filter_map(|r| Some((r.key_bytes()?, r.result)))
        .collect();
    Ok(ImportedCache {
        location: location.clone(),
        source: backend.source(),
        records,
        indexes,
        collect,
    })
}

impl ImportedCache {
    /// How many records the cache has.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the cache has no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Store the cache's image collection scan records the store lacks. Scans are keyed by
    /// content, so a record only ever serves the rootfs it was made from.
    pub fn adopt_collect(&self, store: &Store) -> Result<(), StoreError> {
        for (key, value) in &self.collect {
            if store.collect_get(key)?.is_none() {
                store.collect_put(key, value.as_bytes())?;
            }
        }
        Ok(())
    }

    /// The record of `key`, adopted into `store`, if this cache has it and the store has (or
    /// can be told where to find) everything it names. `None` when the record names a base
    /// image config the store lacks.
    pub fn adopt(&self, store: &Store, key: &[u8; 32]) -> Result<Option<LayerChain>, StoreError> {
        let Some(chain) = self.records.get(key) else {
            return Ok(None);
        };
        if let Some(config) = &chain.base_config {
            match store.presence(config, None) {
                Ok(_) => {}
                Err(StoreError::MissingBlob(_) | StoreError::CorruptBlob { .. }) => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
        let remote: Vec<(Digest, RemoteBlob)> = chain
            .layers
            .iter()
            .map(|l| {
                (
                    l.digest.clone(),
                    RemoteBlob {
                        size: l.size,
                        media_type: l.media_type.clone(),
                        source: self.source.clone(),
                    },
                )
            })
            .collect();
        store.mark_remote(&remote)?;
        for layer in &chain.layers {
            if let Some(index) = self.indexes.get(&layer.digest) {
                if !store.layer_index_complete(&layer.digest)? {
                    store.put_layer_index(&layer.digest, index)?;
                }
            }
        }
        let record = serde_json::to_vec(chain).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        store.cache_put(key, &record)?;
        Ok(Some(chain.clone()))
    }
}
