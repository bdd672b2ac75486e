//! A cache in an OCI image layout directory (`type=local`): `oci-layout`, `index.json`
//! naming the manifest by `org.opencontainers.image.ref.name`, `blobs/sha256/<hex>`.
//!
//! Blobs are written to a temp file beside their place and renamed, so a reader never sees
//! half a blob; `index.json` is rewritten the same way under an exclusive `flock` of
//! `<dir>/.seal-cache.lock`, so two exporters with different tags keep both.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use seal_store::oci::{
    self, Descriptor, Index, ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use seal_store::{Digest, RemoteSource, Store};

use super::{format, Backend, CacheError};

pub(super) struct LocalBackend {
    pub(super) dir: PathBuf,
    pub(super) tag: String,
}

impl LocalBackend {
    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// Write `bytes` (or copy from `from`) to the blob's place unless a file of that size is
    /// there.
    fn write_blob(&self, digest: &Digest, size: u64, from: Source<'_>) -> Result<bool, CacheError> {
        let path = self.blob_path(digest);
        if fs::metadata(&path).is_ok_and(|m| m.len() == size) {
            return Ok(false);
        }
        let parent = self.dir.join("blobs/sha256");
        fs::create_dir_all(&parent).map_err(|e| CacheError::io("creating", &parent, e))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&parent)
            .map_err(|e| CacheError::io("creating a temp file in", &parent, e))?;
        match from {
            Source::Bytes(bytes) => tmp
                .write_all(bytes)
                .map_err(|e| CacheError::io("writing", tmp.path(), e))?,
            Source::File(file) => {
                let mut file =
                    fs::File::open(file).map_err(|e| CacheError::io("reading", file, e))?;
                std::io::copy(&mut file, &mut tmp)
                    .map_err(|e| CacheError::io("writing", &path, e))?;
            }
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| CacheError::io("syncing", &path, e))?;
        tmp.persist(&path)
            .map_err(|e| CacheError::io("renaming a blob to", &path, e.error))?;
        Ok(true)
    }
}

enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

impl Backend for LocalBackend {
    fn source(&self) -> RemoteSource {
        RemoteSource::Local {
            dir: self.dir.clone(),
        }
    }

    fn read_manifest(&self) -> Result<Vec<u8>, CacheError> {
        let path = self.dir.join("index.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CacheError::NotFound(format!(
                    "{} (it has no index.json)",
                    self.dir.display()
                )))
            }
            Err(e) => return Err(CacheError::io("reading", &path, e)),
        };
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| {
            format::FormatError(format!("{} is not an OCI index: {e}", path.display()))
        })?;
        let desc = index
            .manifests
            .iter()
            .rev()
            .find(|d| d.annotations.get(ANNOTATION_REF_NAME) == Some(&self.tag))
            .ok_or_else(|| {
                CacheError::NotFound(format!(
                    "{}:{} (no such tag in index.json)",
                    self.dir.display(),
                    self.tag
                ))
            })?;
        if desc.size > format::MANIFEST_LIMIT {
            return Err(format::FormatError(format!(
                "the manifest is {} bytes, more than {}",
                desc.size,
                format::MANIFEST_LIMIT
            ))
            .into());
        }
        self.read_blob(&desc.digest, format::MANIFEST_LIMIT)
    }

    fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, CacheError> {
        let path = self.blob_path(digest);
        let file = fs::File::open(&path).map_err(|e| CacheError::io("reading", &path, e))?;
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| CacheError::io("reading", &path, e))?;
        if bytes.len() as u64 > limit {
            return Err(format::FormatError(format!(
                "blob {digest} is larger than the {limit} bytes accepted"
            ))
            .into());
        }
        super::verified(bytes, digest)
    }

    fn put_blobs(
        &self,
        store: &Store,
        blobs: &[Descriptor],
        extra: &[(Descriptor, Vec<u8>)],
    ) -> Result<usize, CacheError> {
        let mut sent = 0;
        for desc in blobs {
            if fs::metadata(self.blob_path(&desc.digest)).is_ok_and(|m| m.len() == desc.size) {
                continue;
            }
            store.ensure_local(&desc.digest)?;
            store.blobs().check(&desc.digest, Some(desc.size))?;
            let from = store.blobs().path(&desc.digest);
            sent += usize::from(self.write_blob(&desc.digest, desc.size, Source::File(&from))?);
        }
        for (desc, bytes) in extra {
            sent += usize::from(self.write_blob(&desc.digest, desc.size, Source::Bytes(bytes))?);
        }
        Ok(sent)
    }

    fn put_manifest(&self, bytes: &[u8], digest: &Digest) -> Result<(), CacheError> {
        self.write_blob(digest, bytes.len() as u64, Source::Bytes(bytes))?;
        let layout = self.dir.join("oci-layout");
        if !layout.exists() {
            fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(|e| CacheError::io("writing", &layout, e))?;
        }
        // The tag moves under a lock: read, replace our tag's entry, write, rename.
        let lock_path = self.dir.join(".seal-cache.lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| CacheError::io("opening", &lock_path, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| CacheError::io("locking", &lock_path, e.into()))?;
        let path = self.dir.join("index.json");
        let mut index = match fs::read(&path) {
            Ok(b) => serde_json::from_slice::<Index>(&b).map_err(|e| {
                format::FormatError(format!("{} is not an OCI index: {e}", path.display()))
            })?,
            Err(_) => Index {
                schema_version: 2,
                media_type: Some(MEDIA_TYPE_INDEX.into()),
                manifests: Vec::new(),
            },
        };
        index
            .manifests
            .retain(|d| d.annotations.get(ANNOTATION_REF_NAME) != Some(&self.tag));
        index.manifests.push(Descriptor {
            media_type: MEDIA_TYPE_MANIFEST.into(),
            digest: digest.clone(),
            size: bytes.len() as u64,
            annotations: [(ANNOTATION_REF_NAME.to_string(), self.tag.clone())].into(),
            platform: None,
        });
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .map_err(|e| CacheError::io("creating a temp file in", &self.dir, e))?;
        tmp.write_all(&oci::to_canonical_json(&index))
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| CacheError::io("writing", &path, e))?;
        tmp.persist(&path)
            .map_err(|e| CacheError::io("renaming to", &path, e.error))?;
        Ok(())
    }
}
