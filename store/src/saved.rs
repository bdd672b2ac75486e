//! What `seal save` writes for a name: one image, or a multi-platform image's index with the
//! platforms asked for (all of them by default; one platform saves as a plain image).

use crate::oci::{self, Index, Manifest, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use crate::registry::Platform;
use crate::{Digest, Reference, Store, StoreError};

/// The documents of a save: the top one (what `index.json` names) and every image manifest
/// under it (the top one itself for a single image).
#[derive(Debug, Clone)]
pub(crate) struct SavedImage {
    pub top: Digest,
    pub top_bytes: Vec<u8>,
    pub top_media_type: String,
    /// (digest, bytes, parsed) of each image manifest.
    pub manifests: Vec<(Digest, Vec<u8>, Manifest)>,
}

impl Store {
    /// The image `name` for `platforms` (empty: every platform it has).
    pub(crate) fn saved_image(
        &self,
        name: &Reference,
        platforms: &[Platform],
    ) -> Result<SavedImage, StoreError> {
        let record = self
            .image(name)?
            .ok_or_else(|| StoreError::UnknownImage(name.to_string()))?;
        let Some(index) = self.index(&record.manifest)? else {
            let (bytes, manifest) = self.read_manifest(&record.manifest)?;
            if !platforms.is_empty() {
                let config = self.config(&manifest.config.digest)?;
                if !platforms
                    .iter()
                    .any(|p| p.os == config.os && p.architecture == config.architecture)
                {
                    return Err(StoreError::NoPlatform(format!(
                        "{name} is one image, for {}/{}: it has none of the platforms asked for",
                        config.os, config.architecture
                    )));
                }
            }
            return Ok(single(record.manifest, bytes, manifest));
        };
        let chosen: Vec<oci::Descriptor> = if platforms.is_empty() {
            index.manifests.clone()
        } else {
            let mut chosen: Vec<oci::Descriptor> = Vec::new();
            for platform in platforms {
                let digest = self
                    .manifest_for(&record.manifest, platform)?
                    .ok_or_else(|| {
                        let has: Vec<String> = index
                            .manifests
                            .iter()
                            .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                            .collect();
                        StoreError::NoPlatform(format!(
                            "{name} has no image for platform {platform} (it has {})",
                            has.join(", ")
                        ))
                    })?;
                if let Some(d) = index.manifests.iter().find(|d| d.digest == digest) {
                    if !chosen.contains(d) {
                        chosen.push(d.clone());
                    }
                }
            }
            // In the index's order.
            index
                .manifests
                .iter()
                .filter(|d| chosen.contains(d))
                .cloned()
                .collect()
        };
        if let [one] = chosen.as_slice() {
            let (bytes, manifest) = self.read_manifest(&one.digest)?;
            return Ok(single(one.digest.clone(), bytes, manifest));
        }
        let mut manifests = Vec::new();
        for d in &chosen {
            let (bytes, manifest) = self.read_manifest(&d.digest)?;
            manifests.push((d.digest.clone(), bytes, manifest));
        }
        let (top, top_bytes) = if chosen.len() == index.manifests.len() {
            (
                record.manifest.clone(),
                self.blobs().read(&record.manifest)?,
            )
        } else {
            let bytes = oci::to_canonical_json(&Index {
                manifests: chosen,
                ..index
            });
            (Digest::of(&bytes), bytes)
        };
        Ok(SavedImage {
            top,
            top_bytes,
            top_media_type: MEDIA_TYPE_INDEX.into(),
            manifests,
        })
    }

    fn read_manifest(&self, digest: &Digest) -> Result<(Vec<u8>, Manifest), StoreError> {
        let bytes = self.blobs().read(digest)?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("manifest {digest}: {e}")))?;
        Ok((bytes, manifest))
    }
}

fn single(digest: Digest, bytes: Vec<u8>, manifest: Manifest) -> SavedImage {
    let media_type = if manifest.media_type.is_empty() {
        MEDIA_TYPE_MANIFEST.to_string()
    } else {
        manifest.media_type.clone()
    };
    SavedImage {
        top: digest.clone(),
        top_bytes: bytes.clone(),
        top_media_type: media_type,
        manifests: vec![(digest, bytes, manifest)],
    }
}
