//! A cache in an S3 bucket, in BuildKit's shape: blobs at `<prefix>blobs/sha256/<hex>`, the
//! manifest written there under its digest first, then copied to `<prefix>manifests/<name>`
//! (the tag: S3 replaces an object whole, so readers see one manifest or the other).

use seal_store::oci::Descriptor;
use seal_store::s3::{blob_key, S3Client, S3Error};
use seal_store::{parallel, Digest, RemoteSource, Store};

use super::{format, Backend, CacheError};

/// Blobs sent at once.
const WORKERS: usize = 4;

pub(super) struct S3Backend {
    pub(super) client: S3Client,
    pub(super) source: RemoteSource,
    pub(super) prefix: String,
    pub(super) name: String,
}

impl S3Backend {
    fn manifest_key(&self) -> String {
        format!("{}manifests/{}", self.prefix, self.name)
    }
}

impl Backend for S3Backend {
    fn source(&self) -> RemoteSource {
        self.source.clone()
    }

    fn read_manifest(&self) -> Result<Vec<u8>, CacheError> {
        let key = self.manifest_key();
        self.client
            .get(&key, format::MANIFEST_LIMIT)?
            .ok_or_else(|| CacheError::NotFound(format!("{} (no object {key})", self.source)))
    }

    fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, CacheError> {
        let key = blob_key(&self.prefix, digest);
        let bytes = self
            .client
            .get(&key, limit)?
            .ok_or_else(|| CacheError::NotFound(format!("{} (no object {key})", self.source)))?;
        super::verified(bytes, digest)
    }

    fn put_blobs(
        &self,
        store: &Store,
        blobs: &[Descriptor],
        extra: &[(Descriptor, Vec<u8>)],
    ) -> Result<usize, CacheError> {
        // A HEAD per blob: only what the bucket lacks (or holds at another size) is sent.
        let results = parallel::map_ordered(blobs, WORKERS, Result::is_err, |desc| {
            let key = blob_key(&self.prefix, &desc.digest);
            if self.client.head(&key)? == Some(desc.size) {
                return Ok(false);
            }
            store.ensure_local(&desc.digest)?;
            store.blobs().check(&desc.digest, Some(desc.size))?;
            self.client
                .put_file(&key, &store.blobs().path(&desc.digest))?;
            Ok::<bool, CacheError>(true)
        });
        let mut sent = 0;
        for result in results {
            sent += usize::from(result?);
        }
        for (desc, bytes) in extra {
            let key = blob_key(&self.prefix, &desc.digest);
            if self.client.head(&key)? != Some(desc.size) {
                self.client.put_bytes(&key, bytes)?;
                sent += 1;
            }
        }
        Ok(sent)
    }

    fn put_manifest(&self, bytes: &[u8], digest: &Digest) -> Result<(), CacheError> {
        self.client
            .put_bytes(&blob_key(&self.prefix, digest), bytes)?;
        self.client.put_bytes(&self.manifest_key(), bytes)?;
        Ok(())
    }
}

impl From<S3Error> for CacheError {
    fn from(e: S3Error) -> CacheError {
        match e {
            S3Error::Store(e) => CacheError::Store(e),
            other => CacheError::S3(other.to_string()),
        }
    }
}
