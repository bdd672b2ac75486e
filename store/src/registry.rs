//! A client for the OCI distribution API (registries): pull an image into the store, push one
//! out of it, check credentials.
//!
//! Blocking HTTP over the workspace's `ureq` (rustls with ring; no OpenSSL, no aws-lc). Every
//! blob is streamed into [`crate::BlobStore::writer`] and committed under its expected digest,
//! so nothing unverified lands in the store; blobs already present are skipped. Manifests are
//! OCI or Docker v2 schema 2; an image index or manifest list is resolved for a platform.
//! Auth: anonymous, Basic, and Bearer tokens from the `WWW-Authenticate` challenge, with
//! credentials from the auth files and credential helpers of [`auth`]. Plain HTTP only for
//! registries named insecure; TLS is checked against the system's CA store plus each
//! registry's `certs.d` directory and `--registry-ca` files (`tls.rs`).
//!
//! A [`Client`] is `Send + Sync`. The blobs of one image move in parallel, and every blob
//! transfer takes one of its registry's `max_concurrent_transfers` slots, so the limit holds
//! across threads sharing the client. A push mounts a blob from another repository of the
//! same registry when the client knows one that holds it.

pub mod auth;
pub mod collect;

mod authenticate;
mod manifests;
mod platform;
mod pull;
mod pull_index;
mod push;
mod tls;
mod transport;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::oci::Manifest;
use crate::{Digest, StoreError};
pub use auth::Credentials;
pub use platform::Platform;
pub use tls::DEFAULT_CERT_DIRS;
use transport::Slots;

const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const TRIES: u32 = 3;

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach {url}: {reason}{hint}")]
    Transport {
        url: String,
        reason: String,
        hint: String,
    },
    #[error("{what}: the registry answered {status}{detail}")]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("authentication to {registry} failed: {reason}")]
    Auth { registry: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Credentials(#[from] auth::AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Blob transfers at once per registry when [`RegistryOptions`] does not say.
pub const DEFAULT_MAX_CONCURRENT_TRANSFERS: usize = 3;

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `host[:port]` of registries spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Blob transfers (pulls and pushes) at once per registry, across every thread sharing a
    /// [`Client`]; 0 counts as 1.
    pub max_concurrent_transfers: usize,
    /// Directories of per-registry TLS files, `<dir>/<host[:port]>/` (Docker's `certs.d`).
    pub cert_dirs: Vec<PathBuf>,
    /// `--registry-ca HOST=FILE`: more CA certificates to trust for one registry.
    pub registry_ca: Vec<(String, PathBuf)>,
}

impl Default for RegistryOptions {
    fn default() -> RegistryOptions {
        RegistryOptions {
            insecure: Vec::new(),
            max_concurrent_transfers: DEFAULT_MAX_CONCURRENT_TRANSFERS,
            cert_dirs: DEFAULT_CERT_DIRS.iter().map(PathBuf::from).collect(),
            registry_ca: Vec::new(),
        }
    }
}

/// What a pull or push did.
#[derive(Debug, Clone)]
pub struct TransferReport {
    /// The manifest digest.
    pub manifest: Digest,
    /// Blobs transferred.
    pub transferred: usize,
    /// Blobs skipped because the other side had them.
    pub skipped: usize,
    /// Blobs a push mounted from another repository of the same registry (not uploaded).
    pub mounted: usize,
}

/// Progress of blob transfers, reported from the transferring threads (so in no fixed order
/// across blobs, but in order for one blob: `Started`, `Bytes`..., then `Done`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEvent {
    /// A blob of `total` bytes started moving.
    Started { digest: Digest, total: u64 },
    /// `done` of `total` bytes moved so far (at most about five a second per blob; `done`
    /// starts again from 0 when a dropped connection is retried).
    Bytes {
        digest: Digest,
        done: u64,
        total: u64,
    },
    /// The blob is complete: verified and stored (pull) or accepted by the registry (push).
    Done { digest: Digest, total: u64 },
    /// The registry mounted the blob from the repository `from`; nothing was uploaded.
    Mounted {
        digest: Digest,
        total: u64,
        from: String,
    },
    /// The destination had the blob already.
    Skipped { digest: Digest, total: u64 },
}

impl TransferEvent {
    /// The blob the event is about.
    pub fn digest(&self) -> &Digest {
        match self {
            TransferEvent::Started { digest, .. }
            | TransferEvent::Bytes { digest, .. }
            | TransferEvent::Done { digest, .. }
            | TransferEvent::Mounted { digest, .. }
            | TransferEvent::Skipped { digest, .. } => digest,
        }
    }
}

/// Where transfer events go; called from several threads at once.
pub type Progress<'a> = &'a (dyn Fn(TransferEvent) + Sync);

/// A manifest fetched and verified, not yet stored.
#[derive(Debug, Clone)]
pub struct RemoteImage {
    bytes: Vec<u8>,
    /// The manifest digest.
    pub digest: Digest,
    /// The parsed manifest.
    pub manifest: Manifest,
}

/// Lock a mutex, ignoring poisoning (every value guarded here stays valid across a panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A registry client, `Send + Sync`: share one across threads. Keeps one `Authorization`
/// header per registry and repository, a limit of concurrent blob transfers per registry,
/// and which repositories each blob was seen in (for cross-repository mounts on push).
pub struct Client {
    agent: ureq::Agent,
    options: RegistryOptions,
    /// Credentials to use instead of the auth files (`seal login` checking them).
    credentials: Mutex<Option<Credentials>>,
    /// `registry/repository` → credentials for that repository only (`imageListWithAuth`).
    scoped: Mutex<HashMap<String, Credentials>>,
    tokens: Mutex<HashMap<String, String>>,
    slots: Mutex<HashMap<String, Arc<Slots>>>,
    /// registry → blob → repositories of that registry known to hold it.
    seen: Mutex<HashMap<String, HashMap<Digest, Vec<String>>>>,
    /// registry → its TLS settings, read on first use.
    tls: Mutex<HashMap<String, Arc<tls::RegistryTls>>>,
}

impl Client {
    /// A client; credentials come from the auth files and credential helpers.
    pub fn new(options: RegistryOptions) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .user_agent(format!("seal/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            agent,
            options,
            credentials: Mutex::new(None),
            scoped: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            tls: Mutex::new(HashMap::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_shareable_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Client>();
        assert_eq!(RegistryOptions::default().max_concurrent_transfers, 3);
    }
}
