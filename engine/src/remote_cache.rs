//! The remote cache (`seal build --cache-to/--cache-from`): cache records shared between
//! machines through a registry, an OCI layout directory or S3.
//!
//! `format.rs` is the document (an OCI image manifest with seal's config media type),
//! `export.rs` picks the records (`mode=min|max`) and writes them, `import.rs` reads a cache
//! (manifest and config only) and serves its records to [`crate::cache::StoreCache`] after the
//! local store, marking their blobs remote (`seal_store::RemoteBlob`) until something needs
//! their bytes. Each backend — `registry.rs`, `local.rs`, `s3.rs` — stores blobs and one tagged
//! manifest; every export writes its manifest under its digest before it moves the tag, so two
//! exporters to one ref never mix their documents.

mod export;
pub mod format;
mod import;
mod local;
mod registry;
mod s3;

use std::path::PathBuf;

use seal_store::oci::Descriptor;
use seal_store::{
    Digest, Reference, RegistryError, RegistryOptions, RemoteSource, Store, StoreError,
};

pub use export::{export_cache, ExportReport};
pub use import::{import_cache, ImportedCache};

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// `type=registry,ref=REG/REPO:TAG`.
    Registry(Reference),
    /// `type=local,dest=DIR` / `src=DIR`: an OCI image layout directory; `tag` names the
    /// manifest in its `index.json`.
    Local { dir: PathBuf, tag: String },
    /// `type=s3,bucket=B,region=R[,endpoint_url=URL][,prefix=P][,name=N]`: blobs under
    /// `<prefix>blobs/`, the manifest at `<prefix>manifests/<name>`.
    S3 {
        bucket: String,
        region: String,
        endpoint_url: Option<String>,
        prefix: String,
        name: String,
    },
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Registry(r) => write!(f, "{r}"),
            CacheLocation::Local { dir, tag } => write!(f, "{}:{tag}", dir.display()),
            CacheLocation::S3 {
                bucket,
                prefix,
                name,
                ..
            } => write!(f, "s3://{bucket}/{prefix}manifests/{name}"),
        }
    }
}

/// Which records an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The steps whose results are in the final image.
    #[default]
    Min,
    /// Every cached step, intermediate stages included.
    Max,
}

/// One `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    pub location: CacheLocation,
    pub mode: CacheMode,
    /// A failed export is a warning instead of a failed build.
    pub ignore_error: bool,
}

/// What can go wrong reading or writing a remote cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the cache is refused: {0}")]
    Format(#[from] format::FormatError),
    #[error("no cache named {0}")]
    NotFound(String),
    #[error("{0}")]
    S3(String),
}

impl CacheError {
    fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> CacheError {
        CacheError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a cache location can do: one tagged manifest and content-addressed blobs.
trait Backend {
    /// Where the blobs of this cache are, for the store's remote records.
    fn source(&self) -> RemoteSource;
    /// The tagged manifest's bytes (at most [`format::MANIFEST_LIMIT`]).
    fn read_manifest(&self) -> Result<Vec<u8>, CacheError>;
    /// A blob's bytes, at most `limit`, verified against `digest`.
    fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, CacheError>;
    /// Make the location hold `blobs` of `store` (those it has are not sent again) and
    /// `extra`, whose bytes are given. Returns how many blobs were sent.
    fn put_blobs(
        &self,
        store: &Store,
        blobs: &[Descriptor],
        extra: &[(Descriptor, Vec<u8>)],
    ) -> Result<usize, CacheError>;
    /// Write the manifest under its digest, then point the tag at it.
    fn put_manifest(&self, bytes: &[u8], digest: &Digest) -> Result<(), CacheError>;
}

/// `bytes` read from a cache for the blob `digest`, refused unless they hash to it.
fn verified(bytes: Vec<u8>, digest: &Digest) -> Result<Vec<u8>, CacheError> {
    let actual = Digest::of(&bytes);
    if &actual != digest {
        return Err(StoreError::CorruptBlob {
            expected: digest.clone(),
            actual,
        }
        .into());
    }
    Ok(bytes)
}

fn backend(
    location: &CacheLocation,
    registries: &RegistryOptions,
) -> Result<Box<dyn Backend>, CacheError> {
    Ok(match location {
        CacheLocation::Registry(name) => Box::new(registry::RegistryBackend::new(
            name.clone(),
            registries.clone(),
        )),
        CacheLocation::Local { dir, tag } => Box::new(local::LocalBackend {
            dir: dir.clone(),
            tag: tag.clone(),
        }),
        CacheLocation::S3 {
            bucket,
            region,
            endpoint_url,
            prefix,
            name,
        } => Box::new(s3::S3Backend {
            client: seal_store::s3::S3Client::new(bucket, region, endpoint_url.as_deref())?,
            source: RemoteSource::S3 {
                bucket: bucket.clone(),
                region: region.clone(),
                endpoint_url: endpoint_url.clone(),
                prefix: prefix.clone(),
            },
            prefix: prefix.clone(),
            name: name.clone(),
        }),
    })
}
