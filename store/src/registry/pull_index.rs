//! Pulling several platforms of a multi-platform image: each platform's manifest and blobs,
//! then an index of what was pulled under the name (the registry's own index when every one
//! of its entries was pulled, so its digest still names it).

use super::manifests::media_type_of;
use super::platform::{no_platform, pick_platform};
use super::{Client, Platform, Progress, RegistryError, TransferReport, MEDIA_TYPE_DOCKER_LIST};
use crate::oci::{self, Index, MEDIA_TYPE_INDEX};
use crate::{Reference, Store};

impl Client {
    /// Pull `name` for each of `platforms` into `store` and name it `name`: an index of those
    /// platforms' manifests when the registry has an index, else the one manifest (as
    /// [`Client::pull`] does). A platform the index lacks is an error naming the ones it has.
    pub fn pull_platforms(
        &self,
        store: &Store,
        name: &Reference,
        platforms: &[Platform],
        progress: Progress<'_>,
    ) -> Result<TransferReport, RegistryError> {
        let registry = name.domain.as_str();
        let repo = name.path.as_str();
        let reference = match &name.digest {
            Some(d) => d.to_string(),
            None => name.tag_or_latest().to_string(),
        };
        let (bytes, digest) =
            self.fetch_manifest(registry, repo, &reference, name.digest.as_ref())?;
        let media_type = media_type_of(&bytes);
        let is_index = media_type == MEDIA_TYPE_INDEX || media_type == MEDIA_TYPE_DOCKER_LIST;
        let [first, ..] = platforms else {
            return Err(RegistryError::Invalid(format!(
                "pulling {name}: no platform asked for"
            )));
        };
        if !is_index || platforms.len() == 1 {
            return self.pull(store, name, first, progress);
        }
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Invalid(format!("index of {name}: {e}")))?;
        let mut report = TransferReport {
            manifest: digest.clone(),
            transferred: 0,
            skipped: 0,
            mounted: 0,
        };
        let mut pulled = Vec::new();
        for platform in platforms {
            let chosen = pick_platform(&bytes, platform)
                .ok_or_else(|| no_platform(name, platform, &bytes))?;
            let mut by_digest = name.clone();
            by_digest.digest = Some(chosen.clone());
            let remote = self.resolve(&by_digest, platform)?;
            let blobs: Vec<oci::Descriptor> = std::iter::once(&remote.manifest.config)
                .chain(&remote.manifest.layers)
                .cloned()
                .collect();
            let (transferred, skipped) = self.fetch_blobs(store, name, &blobs, progress)?;
            store.blobs().put(&remote.bytes)?;
            report.transferred += transferred;
            report.skipped += skipped;
            if let Some(entry) = index.manifests.iter().find(|d| d.digest == chosen) {
                if !pulled.contains(entry) {
                    pulled.push(entry.clone());
                }
            }
        }
        // Every entry pulled: the registry's index itself. Some: an index of those, in the
        // registry's order, so every manifest a stored index names is in the store.
        let stored = if pulled.len() == index.manifests.len() {
            store.blobs().put(&bytes)?
        } else {
            let mut subset = index.clone();
            subset.manifests.retain(|d| pulled.contains(d));
            if subset.media_type.is_none() {
                subset.media_type = Some(MEDIA_TYPE_INDEX.into());
            }
            store.blobs().put(&oci::to_canonical_json(&subset))?
        };
        let mut local = name.clone();
        local.digest = None;
        if local.tag.is_none() {
            local.tag = Some("latest".into());
        }
        store.set_image(&local, &stored)?;
        report.manifest = stored;
        Ok(report)
    }
}
