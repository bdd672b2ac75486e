//! What a build's image collection needs from registries: the digest a reference names now
//! (one manifest check per tag), its manifests stored as blobs, and the blobs of the manifest
//! chosen for the build's platform.
//!
//! Unlike [`Client::pull`], nothing here names an image in the store: collected images live
//! only inside the cluster image's `registry/` layer.

use super::manifests::{content_digest, media_type_of};
use super::platform::{no_platform, pick_platform};
use super::MEDIA_TYPE_DOCKER_LIST;
use super::{Client, RegistryError};
use crate::oci::MEDIA_TYPE_MANIFEST;
use crate::oci::{Manifest, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX};
use crate::{Digest, Reference, Store};

use super::Platform;

/// A reference resolved for one platform; both documents are stored as blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What the reference names: an image index / manifest list, or a manifest.
    pub top: Digest,
    /// The manifest for the platform (equal to `top` when `top` is a manifest).
    pub manifest: Digest,
}

impl Client {
    /// The digest `name`'s tag points at now, from one `HEAD` of its manifest (a `GET` when
    /// the registry sends no `Docker-Content-Digest`). A digest reference needs no request.
    pub fn current_digest(&self, name: &Reference) -> Result<Digest, RegistryError> {
        if let Some(d) = &name.digest {
            return Ok(d.clone());
        }
        let registry = name.domain.as_str();
        let repo = name.path.as_str();
        let (response, _) = self.manifest_response("HEAD", registry, repo, name.tag_or_latest())?;
        let header = content_digest(&response);
        match header {
            Some(d) => Ok(d),
            None => {
                let tag = name.tag_or_latest().to_string();
                let (_, digest) = self.fetch_manifest(registry, repo, &tag, None)?;
                Ok(digest)
            }
        }
    }

    /// Resolve `name` at `top` (from [`Client::current_digest`]) for `platform`, fetching and
    /// storing whichever of its manifests the store lacks: no request when both are stored.
    pub fn resolve_stored(
        &self,
        store: &Store,
        name: &Reference,
        top: &Digest,
        platform: &Platform,
    ) -> Result<Resolved, RegistryError> {
        let bytes = self.manifest_bytes(store, name, top)?;
        let media_type = media_type_of(&bytes);
        let manifest = if media_type == MEDIA_TYPE_INDEX || media_type == MEDIA_TYPE_DOCKER_LIST {
            let chosen = pick_platform(&bytes, platform)
                .ok_or_else(|| no_platform(name, platform, &bytes))?;
            let child = self.manifest_bytes(store, name, &chosen)?;
            check_manifest(name, &child)?;
            chosen
        } else {
            let manifest = check_manifest(name, &bytes)?;
            self.check_config_platform(store, name, &manifest, platform)?;
            top.clone()
        };
        Ok(Resolved {
            top: top.clone(),
            manifest,
        })
    }

    /// A single image (no index) must be of `platform`, which its config says: an image of
    /// another platform is an error naming both (a config that names none is accepted).
    fn check_config_platform(
        &self,
        store: &Store,
        name: &Reference,
        manifest: &Manifest,
        platform: &Platform,
    ) -> Result<(), RegistryError> {
        self.fetch_blobs(store, name, std::slice::from_ref(&manifest.config), &|_| {})?;
        let bytes = store.blobs().read(&manifest.config.digest)?;
        let config: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let (os, architecture) = (
            config["os"].as_str().unwrap_or(""),
            config["architecture"].as_str().unwrap_or(""),
        );
        if architecture.is_empty() || (os == platform.os && architecture == platform.architecture) {
            return Ok(());
        }
        Err(RegistryError::Invalid(format!(
            "{name} has no image for platform {platform} (it is one image, for {os}/{architecture})"
        )))
    }

    /// The bytes of the manifest or index `digest` of `name`: from the store, or fetched,
    /// verified and stored.
    fn manifest_bytes(
        &self,
        store: &Store,
        name: &Reference,
        digest: &Digest,
    ) -> Result<Vec<u8>, RegistryError> {
        if store.blobs().contains(digest) {
            return Ok(store.blobs().read(digest)?);
        }
        let (bytes, _) =
            self.fetch_manifest(&name.domain, &name.path, &digest.to_string(), Some(digest))?;
        store.blobs().put(&bytes)?;
        Ok(bytes)
    }
}

fn check_manifest(name: &Reference, bytes: &[u8]) -> Result<Manifest, RegistryError> {
    let media_type = media_type_of(bytes);
    if media_type != MEDIA_TYPE_MANIFEST && media_type != MEDIA_TYPE_DOCKER_MANIFEST {
        return Err(RegistryError::Invalid(format!(
            "manifest of {name} has unsupported media type `{media_type}`"
        )));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::Invalid(format!("manifest of {name}: {e}")))
}
