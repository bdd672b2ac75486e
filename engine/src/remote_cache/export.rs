//! `--cache-to`: pick the records (`mode=min`: those whose layers are all in the final image;
//! `mode=max`: every cached step), send the blobs the location lacks, then the config, the
//! manifest under its digest, and last the tag.

use std::collections::{BTreeMap, BTreeSet};

use seal_store::oci::Descriptor;
use seal_store::{Digest, RegistryOptions, Store};

use super::format::{self, CacheRecord};
use super::{backend, CacheError, CacheExport, CacheMode};
use crate::output::LayerChain;

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub records: usize,
    /// Distinct result blobs the cache lists.
    pub blobs: usize,
    /// Blobs sent (the location lacked them), the config included.
    pub sent: usize,
    pub manifest: Digest,
}

/// Write the cache records of one build to `export.location`. `records` are every cached
/// step's key and result; `collect` the image collection scan keys of the build (their
/// records go too, in both modes); `image` is the final image's rootfs.
pub fn export_cache(
    store: &Store,
    records: &[([u8; 32], LayerChain)],
    collect: &[String],
    image: &LayerChain,
    export: &CacheExport,
    registries: &RegistryOptions,
) -> Result<ExportReport, CacheError> {
    let chosen = select(records, image, export.mode);
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut indexes = BTreeMap::new();
    for record in &chosen {
        for layer in &record.result.layers {
            if !seen.insert(layer.digest.clone()) {
                continue;
            }
            layers.push(Descriptor {
                media_type: layer.media_type.clone(),
                digest: layer.digest.clone(),
                size: layer.size,
                annotations: BTreeMap::new(),
                platform: None,
            });
            if let Some(index) = store.layer_index(&layer.digest)? {
                indexes.insert(layer.digest.clone(), format::encode_index(&index));
            }
        }
    }
    let mut scans = BTreeMap::new();
    for key in collect {
        if let Some(bytes) = store.collect_get(key)? {
            if let Ok(text) = String::from_utf8(bytes) {
                scans.insert(key.clone(), text);
            }
        }
    }
    let count = chosen.len();
    let (manifest, config) = format::build(chosen, indexes, scans)?;
    let backend = backend(&export.location, registries)?;
    let sent = backend.put_blobs(store, &layers, &[(manifest.config.clone(), config)])?;
    let bytes = seal_store::oci::to_canonical_json(&manifest);
    let digest = Digest::of(&bytes);
    backend.put_manifest(&bytes, &digest)?;
    Ok(ExportReport {
        records: count,
        blobs: layers.len(),
        sent,
        manifest: digest,
    })
}

/// The records `mode` exports. `min`: a record whose every layer is one of the image's (and
/// whose base, if any, is the image's): the final stage's steps, not a builder stage's.
fn select(
    records: &[([u8; 32], LayerChain)],
    image: &LayerChain,
    mode: CacheMode,
) -> Vec<CacheRecord> {
    let in_image: BTreeSet<&Digest> = image.layers.iter().map(|l| &l.digest).collect();
    records
        .iter()
        .filter(|(_, chain)| match mode {
            CacheMode::Max => true,
            CacheMode::Min => {
                chain.layers.iter().all(|l| in_image.contains(&l.digest))
                    && (chain.base_config.is_none() || chain.base_config == image.base_config)
            }
        })
        .map(|(key, chain)| CacheRecord {
            key: hex::encode(key),
            result: chain.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Layer;

    fn chain(layers: &[u8]) -> LayerChain {
        LayerChain {
            layers: layers
                .iter()
                .map(|&n| Layer {
                    diff_id: Digest::of(&[n, 1]),
                    digest: Digest::of(&[n]),
                    size: 1,
                    media_type: seal_store::oci::MEDIA_TYPE_LAYER_ZSTD.into(),
                    collect_free: true,
                })
                .collect(),
            base_config: None,
        }
    }

    #[test]
    fn min_keeps_the_final_images_steps_and_max_keeps_all() {
        // A builder stage's step (layer 9) and the final stage's two steps and their merge.
        let records = vec![
            ([1; 32], chain(&[9])),
            ([2; 32], chain(&[1])),
            ([3; 32], chain(&[2])),
            ([4; 32], chain(&[1, 2])),
        ];
        let image = chain(&[1, 2]);
        let keys = |mode| -> Vec<String> {
            select(&records, &image, mode)
                .into_iter()
                .map(|r| r.key[..2].to_string())
                .collect()
        };
        assert_eq!(keys(CacheMode::Min), ["02", "03", "04"]);
        assert_eq!(keys(CacheMode::Max), ["01", "02", "03", "04"]);
    }
}
