//! Multi-platform images in the store: an image name may point at an OCI image index whose
//! entries are one manifest per platform. Reading the manifests a name stands for, writing an
//! index, and picking one platform's manifest; what each command does with them is its own.

use crate::oci::{self, Descriptor, Index, IndexPlatform, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use crate::registry::Platform;
use crate::{Digest, Store, StoreError};

/// One manifest an image name stands for, with its platform when it is an index's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformManifest {
    pub platform: Option<IndexPlatform>,
    pub digest: Digest,
}

impl Store {
    /// The index at `digest`, or `None` when the blob is a single image's manifest.
    pub fn index(&self, digest: &Digest) -> Result<Option<Index>, StoreError> {
        let bytes = self.blobs().read(digest)?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("manifest {digest}: {e}")))?;
        if !value["manifests"].is_array() {
            return Ok(None);
        }
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("index {digest}: {e}")))
    }

    /// The manifests the document at `digest` stands for: itself, or every entry of an index.
    pub fn image_manifests(&self, digest: &Digest) -> Result<Vec<PlatformManifest>, StoreError> {
        Ok(match self.index(digest)? {
            None => vec![PlatformManifest {
                platform: None,
                digest: digest.clone(),
            }],
            Some(index) => index
                .manifests
                .into_iter()
                .map(|d| PlatformManifest {
                    platform: d.platform,
                    digest: d.digest,
                })
                .collect(),
        })
    }

    /// The manifest of `platform` that the document at `digest` holds: itself when it is a
    /// manifest (its config says whether it fits; the caller checks), an index's entry of that
    /// OS and architecture (and variant, when `platform` names one), or `None`.
    pub fn manifest_for(
        &self,
        digest: &Digest,
        platform: &Platform,
    ) -> Result<Option<Digest>, StoreError> {
        let Some(index) = self.index(digest)? else {
            return Ok(Some(digest.clone()));
        };
        Ok(index
            .manifests
            .into_iter()
            .find(|d| {
                d.platform.as_ref().is_some_and(|p| {
                    p.os == platform.os
                        && p.architecture == platform.architecture
                        && (platform.variant.is_none() || p.variant == platform.variant)
                })
            })
            .map(|d| d.digest))
    }

    /// Write an OCI image index of `manifests` (stored manifests with their platforms, in
    /// the order given) and return its digest.
    pub fn put_index(&self, manifests: &[(Digest, IndexPlatform)]) -> Result<Digest, StoreError> {
        let mut entries = Vec::new();
        for (digest, platform) in manifests {
            let size = self.blobs().read(digest)?.len() as u64;
            entries.push(Descriptor {
                media_type: MEDIA_TYPE_MANIFEST.into(),
                digest: digest.clone(),
                size,
                annotations: Default::default(),
                platform: Some(platform.clone()),
            });
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_INDEX.into()),
            manifests: entries,
        };
        self.blobs().put(&oci::to_canonical_json(&index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(arch: &str) -> IndexPlatform {
        IndexPlatform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
        }
    }

    #[test]
    fn an_index_lists_its_platforms_and_picks_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &mut || {}).unwrap();
        let amd = store.blobs().put(br#"{"schemaVersion":2,"a":1}"#).unwrap();
        let arm = store.blobs().put(br#"{"schemaVersion":2,"a":2}"#).unwrap();
        let index = store
            .put_index(&[
                (amd.clone(), platform("amd64")),
                (arm.clone(), platform("arm64")),
            ])
            .unwrap();
        let listed = store.image_manifests(&index).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].digest, arm);
        assert_eq!(
            listed[1].platform.as_ref().unwrap().to_string(),
            "linux/arm64"
        );
        let pick = |p: &str| {
            store
                .manifest_for(&index, &Platform::parse(p).unwrap())
                .unwrap()
        };
        assert_eq!(pick("linux/arm64"), Some(arm));
        assert_eq!(pick("linux/amd64"), Some(amd.clone()));
        assert_eq!(pick("linux/arm64/v8"), None);
        assert_eq!(pick("linux/riscv64"), None);
        // A manifest stands for itself.
        assert_eq!(store.image_manifests(&amd).unwrap().len(), 1);
        assert_eq!(
            store.manifest_for(&amd, &Platform::host()).unwrap(),
            Some(amd)
        );
    }
}
