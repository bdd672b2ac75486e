//! Remote blobs: blobs the store knows by digest and size but has not downloaded, because a
//! cache import (`seal build --cache-from`) named them and nothing has needed their bytes yet.
//!
//! A remote blob counts as present for cache lookups, image records, `seal images`, `du` and
//! `fsck` (which reports it as remote, not missing). Whatever needs its bytes — a RUN's
//! snapshot, a layer's path index, `seal save`, a push to another registry — calls
//! [`Store::ensure_local`], which downloads it through the [`BlobFetcher`] the caller
//! installed ([`StandardFetcher`] for registries, OCI layout directories and S3), verified against
//! its digest and size like any other blob. Where it is, is the `remote` column family.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::db::CF_REMOTE;
use crate::registry::{Client, RegistryOptions};
use crate::{oci, Digest, Reference, Store, StoreError};

/// Where a remote blob can be downloaded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RemoteSource {
    /// A repository of a registry: `registry/path`, no tag.
    Registry { repository: String },
    /// An OCI image layout directory (`blobs/sha256/<hex>`).
    Local { dir: PathBuf },
    /// An S3 bucket, in BuildKit's layout (`<prefix>blobs/sha256/<hex>`).
    S3 {
        bucket: String,
        region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_url: Option<String>,
        #[serde(default)]
        prefix: String,
    },
}

impl std::fmt::Display for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteSource::Registry { repository } => write!(f, "registry {repository}"),
            RemoteSource::Local { dir } => write!(f, "directory {}", dir.display()),
            RemoteSource::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// What the store knows of a blob it has not downloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteBlob {
    pub size: u64,
    pub media_type: String,
    pub source: RemoteSource,
}

/// Downloads a remote blob into the store (verified: [`crate::BlobWriter::commit`] with the
/// expected digest). Installed with [`Store::set_fetcher`].
pub trait BlobFetcher: Send + Sync {
    /// Download `digest` from `blob.source` into `store`.
    fn fetch(&self, store: &Store, digest: &Digest, blob: &RemoteBlob) -> Result<(), StoreError>;
}

/// How a blob is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// On disk, verified (one `stat` when verified since its last write).
    Local,
    /// Not downloaded; the record says where it is.
    Remote(RemoteBlob),
}

/// The fetcher for every [`RemoteSource`]: registries, OCI layout directories and S3.
pub struct StandardFetcher {
    client: Client,
}

impl StandardFetcher {
    /// A fetcher reaching registries as `options` say (`--insecure-registry`).
    pub fn new(options: RegistryOptions) -> StandardFetcher {
        StandardFetcher {
            client: Client::new(options),
        }
    }

    /// The registry client it downloads with.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl BlobFetcher for StandardFetcher {
    fn fetch(&self, store: &Store, digest: &Digest, blob: &RemoteBlob) -> Result<(), StoreError> {
        match &blob.source {
            RemoteSource::Registry { repository } => {
                let name = Reference::parse_container_image(repository)
                    .map_err(|e| StoreError::Corrupt(format!("remote blob {digest}: {e}")))?;
                let descriptor = oci::Descriptor {
                    media_type: blob.media_type.clone(),
                    digest: digest.clone(),
                    size: blob.size,
                    annotations: Default::default(),
                    platform: None,
                };
                self.client
                    .fetch_blobs(store, &name, &[descriptor], &|_| {})
                    .map_err(|e| StoreError::Remote {
                        digest: digest.clone(),
                        from: blob.source.to_string(),
                        reason: e.to_string(),
                    })?;
                Ok(())
            }
            RemoteSource::Local { dir } => {
                let path = dir.join("blobs/sha256").join(digest.hex());
                let mut file = std::fs::File::open(&path).map_err(|e| StoreError::Remote {
                    digest: digest.clone(),
                    from: blob.source.to_string(),
                    reason: e.to_string(),
                })?;
                let mut writer = store.blobs().writer()?;
                std::io::copy(&mut file, &mut writer)
                    .map_err(|e| StoreError::io("copying a cache blob from", &path, e))?;
                if writer.size() != blob.size {
                    return Err(StoreError::Remote {
                        digest: digest.clone(),
                        from: blob.source.to_string(),
                        reason: format!("it has {} bytes, not {}", writer.size(), blob.size),
                    });
                }
                writer.commit(Some(digest))?;
                Ok(())
            }
            RemoteSource::S3 {
                bucket,
                region,
                endpoint_url,
                prefix,
            } => {
                let failed = |e: crate::s3::S3Error| StoreError::Remote {
                    digest: digest.clone(),
                    from: blob.source.to_string(),
                    reason: e.to_string(),
                };
                let client = crate::s3::S3Client::new(bucket, region, endpoint_url.as_deref())
                    .map_err(failed)?;
                let key = crate::s3::blob_key(prefix, digest);
                match client.download_blob(store, &key, digest, blob.size) {
                    Ok(()) => Ok(()),
                    Err(crate::s3::S3Error::Store(e)) => Err(e),
                    Err(e) => Err(failed(e)),
                }
            }
        }
    }
}

/// The installed fetcher, if any.
pub(crate) type FetcherSlot = Mutex<Option<Arc<dyn BlobFetcher>>>;

impl Store {
    /// Install what [`Store::ensure_local`] downloads remote blobs with.
    pub fn set_fetcher(&self, fetcher: Arc<dyn BlobFetcher>) {
        *self.fetcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(fetcher);
    }

    /// Record blobs as remote (those on disk already are skipped: bytes beat a promise).
    pub fn mark_remote(&self, blobs: &[(Digest, RemoteBlob)]) -> Result<(), StoreError> {
        let mut kv = Vec::new();
        for (digest, blob) in blobs {
            if self.blobs.contains(digest) || self.remote_blob(digest)?.is_some() {
                continue;
            }
            kv.push((
                digest.to_string().into_bytes(),
                oci::to_canonical_json(blob),
            ));
        }
        if kv.is_empty() {
            return Ok(());
        }
        self.db.write_batch(CF_REMOTE, &kv)
    }

    /// Where the remote blob `digest` is, if the store knows it as remote.
    pub fn remote_blob(&self, digest: &Digest) -> Result<Option<RemoteBlob>, StoreError> {
        match self.db.get(CF_REMOTE, digest.to_string().as_bytes())? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("remote blob record {digest}: {e}"))),
        }
    }

    /// Every blob recorded as remote and not on disk.
    pub fn remote_blobs(&self) -> Result<Vec<(Digest, RemoteBlob)>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.db.scan_prefix(CF_REMOTE, b"")? {
            let (Some(digest), Ok(blob)) = (
                std::str::from_utf8(&k).ok().and_then(|s| s.parse().ok()),
                serde_json::from_slice::<RemoteBlob>(&v),
            ) else {
                continue;
            };
            if !self.blobs.contains(&digest) {
                out.push((digest, blob));
            }
        }
        Ok(out)
    }

    /// Whether `digest` is on disk (checked like [`crate::BlobStore::check`]) or remote.
    /// Missing or corrupt blobs are errors, as for `check`.
    pub fn presence(&self, digest: &Digest, size: Option<u64>) -> Result<Presence, StoreError> {
        match self.blobs.check(digest, size) {
            Ok(()) => Ok(Presence::Local),
            Err(StoreError::MissingBlob(d)) => match self.remote_blob(&d)? {
                Some(blob) if size.is_none_or(|s| s == blob.size) => Ok(Presence::Remote(blob)),
                _ => Err(StoreError::MissingBlob(d)),
            },
            Err(e) => Err(e),
        }
    }

    /// Make sure `digest` is on disk: download it when it is remote. A blob neither on disk
    /// nor remote is [`StoreError::MissingBlob`].
    pub fn ensure_local(&self, digest: &Digest) -> Result<(), StoreError> {
        if self.blobs.contains(digest) {
            return Ok(());
        }
        let Some(blob) = self.remote_blob(digest)? else {
            return Err(StoreError::MissingBlob(digest.clone()));
        };
        let fetcher = self
            .fetcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Remote {
                digest: digest.clone(),
                from: blob.source.to_string(),
                reason: "nothing here can download it".into(),
            })?;
        fetcher.fetch(self, digest, &blob)?;
        // A read-only view (`seal save`) may download, but records nothing.
        if self._lock.is_some() {
            self.touch_blobs(&[(digest.clone(), blob.size)])?;
        }
        Ok(())
    }

    /// [`Store::ensure_local`] for every layer and config of the image `image` (each
    /// platform's, for an index).
    pub fn ensure_image_local(&self, image: &Digest) -> Result<(), StoreError> {
        // An index: every platform's image.
        for entry in self.image_manifests(image)? {
            let manifest = self.manifest(&entry.digest)?;
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                self.ensure_local(&d.digest)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_blob_is_present_until_it_is_fetched_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let layout = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &mut || {}).unwrap();
        let bytes = b"layer bytes".to_vec();
        let digest = Digest::of(&bytes);
        let blob_dir = layout.path().join("blobs/sha256");
        std::fs::create_dir_all(&blob_dir).unwrap();
        let remote = RemoteBlob {
            size: bytes.len() as u64,
            media_type: oci::MEDIA_TYPE_LAYER_ZSTD.into(),
            source: RemoteSource::Local {
                dir: layout.path().to_path_buf(),
            },
        };
        store
            .mark_remote(&[(digest.clone(), remote.clone())])
            .unwrap();
        assert_eq!(
            store.presence(&digest, Some(bytes.len() as u64)).unwrap(),
            Presence::Remote(remote.clone())
        );
        // A size unlike the record's is not this blob.
        assert!(store.presence(&digest, Some(3)).is_err());
        // No fetcher: a clear error, nothing written.
        assert!(store.ensure_local(&digest).is_err());
        store.set_fetcher(Arc::new(StandardFetcher::new(RegistryOptions::default())));
        // The source has other bytes under that name: refused, the store keeps nothing.
        std::fs::write(blob_dir.join(digest.hex()), b"other bytes").unwrap();
        assert!(store.ensure_local(&digest).is_err());
        assert!(!store.blobs().contains(&digest));
        std::fs::write(blob_dir.join(digest.hex()), &bytes).unwrap();
        store.ensure_local(&digest).unwrap();
        assert_eq!(store.blobs().read(&digest).unwrap(), bytes);
        assert_eq!(store.presence(&digest, None).unwrap(), Presence::Local);
        assert!(store.remote_blobs().unwrap().is_empty());
    }
}
