//! Manifests: fetching one (verified against the digest asked for and the one the registry
//! sent), and resolving a name for a platform to a manifest.

use ureq::http::{Response, StatusCode};
use ureq::Body;

use super::platform::{no_platform, pick_platform};
use super::transport::{status_error, transport, Payload};
use super::{Client, Platform, RegistryError, RemoteImage, MEDIA_TYPE_DOCKER_LIST};
use crate::oci::{Manifest, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use crate::{Digest, Reference, StoreError};

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// Manifests and indexes larger than this are refused (the distribution spec suggests 4 MiB).
const MANIFEST_LIMIT: u64 = 4 << 20;

impl Client {
    /// Fetch and verify the manifest of `name` for `platform`, touching no store (so a name
    /// the registry lacks fails before any local state is created).
    pub fn resolve(
        &self,
        name: &Reference,
        platform: &Platform,
    ) -> Result<RemoteImage, RegistryError> {
        let registry = name.domain.as_str();
        let repo = name.path.as_str();
        let reference = match &name.digest {
            Some(d) => d.to_string(),
            None => name.tag_or_latest().to_string(),
        };
        let (mut bytes, mut digest) =
            self.fetch_manifest(registry, repo, &reference, name.digest.as_ref())?;
        let media_type = media_type_of(&bytes);
        if media_type == MEDIA_TYPE_INDEX || media_type == MEDIA_TYPE_DOCKER_LIST {
            let chosen = pick_platform(&bytes, platform)
                .ok_or_else(|| no_platform(name, platform, &bytes))?;
            (bytes, digest) =
                self.fetch_manifest(registry, repo, &chosen.to_string(), Some(&chosen))?;
        }
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Invalid(format!("manifest of {name}: {e}")))?;
        let media_type = media_type_of(&bytes);
        if media_type != MEDIA_TYPE_MANIFEST && media_type != MEDIA_TYPE_DOCKER_MANIFEST {
            return Err(RegistryError::Invalid(format!(
                "manifest of {name} has unsupported media type `{media_type}`"
            )));
        }
        Ok(RemoteImage {
            bytes,
            digest,
            manifest,
        })
    }

    /// The bytes and digest of the manifest `name` names (its digest, else its tag), verified
    /// against the digest asked for and the one the registry sent; at most 4 MiB; not parsed.
    pub fn fetch_manifest_bytes(
        &self,
        name: &Reference,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let reference = match &name.digest {
            Some(d) => d.to_string(),
            None => name.tag_or_latest().to_string(),
        };
        self.fetch_manifest(&name.domain, &name.path, &reference, name.digest.as_ref())
    }

    /// `method` (GET or HEAD) of the manifest `reference` of `repo`, with the URL asked; a 404
    /// or any other failure status is an error naming it.
    pub(super) fn manifest_response(
        &self,
        method: &str,
        registry: &str,
        repo: &str,
        reference: &str,
    ) -> Result<(Response<Body>, String), RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base(registry));
        let response = self.send(
            registry,
            repo,
            method,
            &url,
            &[("Accept", MANIFEST_ACCEPT)],
            Payload::Empty,
            false,
        )?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::Invalid(format!(
                "{registry}/{repo}:{reference} was not found in the registry"
            )));
        }
        if !status.is_success() {
            return Err(status_error(
                format!("fetching the manifest {url}"),
                status,
                response,
            ));
        }
        Ok((response, url))
    }

    pub(super) fn fetch_manifest(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let (mut response, url) = self.manifest_response("GET", registry, repo, reference)?;
        let header_digest = content_digest(&response);
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MANIFEST_LIMIT)
            .read_to_vec()
            .map_err(|e| transport(&url, &e, false))?;
        let digest = Digest::of(&bytes);
        for want in expected.into_iter().chain(header_digest.as_ref()) {
            if want != &digest {
                return Err(StoreError::CorruptBlob {
                    expected: want.clone(),
                    actual: digest,
                }
                .into());
            }
        }
        Ok((bytes, digest))
    }
}

/// The `Docker-Content-Digest` a registry sent with a manifest.
pub(super) fn content_digest(response: &Response<Body>) -> Option<Digest> {
    response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok())
}

/// The `mediaType` of a manifest or index document.
pub(super) fn media_type_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| MEDIA_TYPE_MANIFEST.to_string())
}
