//! A cache in a registry repository: blobs pushed like an image's (HEAD first, mounts across
//! repositories), the manifest PUT under its digest and then under the tag.

use seal_store::oci::{Descriptor, MEDIA_TYPE_MANIFEST};
use seal_store::registry::Client;
use seal_store::{Digest, Reference, RegistryOptions, RemoteSource, Store};

use super::{Backend, CacheError};

pub(super) struct RegistryBackend {
    name: Reference,
    client: Client,
}

impl RegistryBackend {
    pub(super) fn new(name: Reference, options: RegistryOptions) -> RegistryBackend {
        RegistryBackend {
            name,
            client: Client::new(options),
        }
    }
}

impl Backend for RegistryBackend {
    fn source(&self) -> RemoteSource {
        RemoteSource::Registry {
            repository: format!("{}/{}", self.name.domain, self.name.path),
        }
    }

    fn read_manifest(&self) -> Result<Vec<u8>, CacheError> {
        Ok(self.client.fetch_manifest_bytes(&self.name)?.0)
    }

    fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, CacheError> {
        Ok(self.client.fetch_blob_bytes(&self.name, digest, limit)?)
    }

    fn put_blobs(
        &self,
        store: &Store,
        blobs: &[Descriptor],
        extra: &[(Descriptor, Vec<u8>)],
    ) -> Result<usize, CacheError> {
        // The config goes out through the store like every blob (it is small; `prune` drops it).
        let mut all = blobs.to_vec();
        for (desc, bytes) in extra {
            store.blobs().put(bytes)?;
            all.push(desc.clone());
        }
        let report = self.client.push_blobs(store, &self.name, &all, &|_| {})?;
        Ok(report.transferred)
    }

    fn put_manifest(&self, bytes: &[u8], digest: &Digest) -> Result<(), CacheError> {
        self.client
            .put_manifest(&self.name, &digest.to_string(), MEDIA_TYPE_MANIFEST, bytes)?;
        let tag = self.name.tag_or_latest();
        self.client
            .put_manifest(&self.name, tag, MEDIA_TYPE_MANIFEST, bytes)?;
        Ok(())
    }
}
