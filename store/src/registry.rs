//! A client for the OCI distribution API (registries): pull an image into the store, push one
//! out of it, check credentials.
//!
//! Blocking HTTP over the workspace's `ureq` (rustls with ring; no OpenSSL, no aws-lc). Every
//! blob is streamed into [`crate::BlobStore::writer`] and committed under its expected digest,
//! so nothing unverified lands in the store; blobs already present are skipped. Manifests are
//! OCI or Docker v2 schema 2; an image index or manifest list is resolved for a platform.
//! Auth: anonymous, Basic, and Bearer tokens from the `WWW-Authenticate` challenge, with
//! credentials from the auth files and credential helpers of [`auth`]. Plain HTTP only for
//! registries named insecure.
//!
//! A [`Client`] is `Send + Sync`. The blobs of one image move in parallel, and every blob
//! transfer takes one of its registry's `max_concurrent_transfers` slots, so the limit holds
//! across threads sharing the client. A push mounts a blob from another repository of the
//! same registry when the client knows one that holds it.

pub mod auth;
pub mod collect;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ureq::http::{Response, StatusCode};
use ureq::Body;

use crate::oci::{
    Descriptor, Manifest, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use crate::{Digest, Reference, Store, StoreError};
pub use auth::Credentials;

const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// Manifests and indexes larger than this are refused (the distribution spec suggests 4 MiB).
const MANIFEST_LIMIT: u64 = 4 << 20;
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

/// An OS/architecture(/variant) to pick from an image index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform seal runs on, in OCI's names (`linux/amd64`, `linux/arm64`).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Parse `OS/ARCH[/VARIANT]`.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: parts.get(2).map(|v| v.to_string()),
            }),
            _ => Err(format!(
                "invalid platform `{s}`: expected OS/ARCH[/VARIANT]"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
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
}

impl Default for RegistryOptions {
    fn default() -> RegistryOptions {
        RegistryOptions {
            insecure: Vec::new(),
            max_concurrent_transfers: DEFAULT_MAX_CONCURRENT_TRANSFERS,
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

/// A body to send (re-created for every retry).
enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A file, with a callback told how many bytes have been sent.
    File(&'a Path, &'a (dyn Fn(u64) + Sync)),
}

/// A counting semaphore: the transfer slots of one registry.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// One taken slot, given back on drop.
struct Slot(Arc<Slots>);

impl Slots {
    fn take(self: &Arc<Slots>) -> Slot {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
        Slot(Arc::clone(self))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.freed.notify_one();
    }
}

/// Lock a mutex, ignoring poisoning (every value guarded here stays valid across a panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How one blob of a push went.
enum Pushed {
    Uploaded,
    Mounted,
    Skipped,
}

/// A registry client, `Send + Sync`: share one across threads. Keeps one `Authorization`
/// header per registry and repository, a limit of concurrent blob transfers per registry,
/// and which repositories each blob was seen in (for cross-repository mounts on push).
pub struct Client {
    agent: ureq::Agent,
    options: RegistryOptions,
    /// Credentials to use instead of the auth files (`seal login` checking them).
    credentials: Mutex<Option<Credentials>>,
    tokens: Mutex<HashMap<String, String>>,
    slots: Mutex<HashMap<String, Arc<Slots>>>,
    /// registry → blob → repositories of that registry known to hold it.
    seen: Mutex<HashMap<String, HashMap<Digest, Vec<String>>>>,
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
            tokens: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn insecure(&self, registry: &str) -> bool {
        self.options.insecure.iter().any(|r| r == registry)
    }

    fn base(&self, registry: &str) -> String {
        let scheme = if self.insecure(registry) {
            "http"
        } else {
            "https"
        };
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        format!("{scheme}://{host}")
    }

    fn creds(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(c) = lock(&self.credentials).clone() {
            return Ok(Some(c));
        }
        Ok(auth::lookup(registry)?)
    }

    /// Wait for a free transfer slot of `registry`.
    fn slot(&self, registry: &str) -> Slot {
        let slots = Arc::clone(lock(&self.slots).entry(registry.into()).or_insert_with(|| {
            Arc::new(Slots {
                free: Mutex::new(self.options.max_concurrent_transfers.max(1)),
                freed: Condvar::new(),
            })
        }));
        slots.take()
    }

    /// Note that `repo` of `registry` holds `digest`.
    fn remember(&self, registry: &str, repo: &str, digest: &Digest) {
        let mut seen = lock(&self.seen);
        let repos = seen
            .entry(registry.into())
            .or_default()
            .entry(digest.clone())
            .or_default();
        if !repos.iter().any(|r| r == repo) {
            repos.push(repo.into());
        }
    }

    /// A repository of `registry` other than `repo` known to hold `digest`.
    fn seen_elsewhere(&self, registry: &str, repo: &str, digest: &Digest) -> Option<String> {
        lock(&self.seen)
            .get(registry)?
            .get(digest)?
            .iter()
            .rev()
            .find(|r| *r != repo)
            .cloned()
    }

    /// Check `credentials` against `registry`'s `/v2/` endpoint (and its token service).
    /// They are used for every later request of this client.
    pub fn check_login(
        &self,
        registry: &str,
        credentials: Credentials,
    ) -> Result<(), RegistryError> {
        *lock(&self.credentials) = Some(credentials);
        let url = format!("{}/v2/", self.base(registry));
        let response = self.send(registry, "", "GET", &url, &[], Payload::Empty, true)?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Auth {
                registry: registry.into(),
                reason: "wrong user name or password".into(),
            }),
            s => Err(status_error(format!("checking {url}"), s, response)),
        }
    }

    /// Send one request, with retries (5xx, dropped connections) and one round of
    /// authentication when the registry answers 401. A 401 after that round is an error
    /// telling to log in (or that the credentials were refused), except for `login` checks,
    /// which get the response.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        registry: &str,
        repository: &str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        login: bool,
    ) -> Result<Response<Body>, RegistryError> {
        let key = format!("{registry}/{repository}");
        let mut used_credentials = None;
        loop {
            let authorization = lock(&self.tokens).get(&key).cloned();
            let response = self.send_retrying(
                registry,
                method,
                url,
                headers,
                &payload,
                authorization.as_deref(),
            )?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            if let Some(had) = used_credentials {
                if login {
                    return Ok(response);
                }
                return Err(if had {
                    RegistryError::Auth {
                        registry: registry.into(),
                        reason: format!(
                            "{method} {url} was refused with the saved credentials (no access, or `seal login {registry}` again)"
                        ),
                    }
                } else {
                    needs_login(registry)
                });
            }
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge);
            let Some(challenge) = challenge else {
                return Ok(response);
            };
            let creds = self.creds(registry)?;
            used_credentials = Some(creds.is_some());
            let header = match challenge.scheme.as_str() {
                "basic" => match creds {
                    Some(c) => c.basic_header(),
                    None if login => return Ok(response),
                    None => return Err(needs_login(registry)),
                },
                "bearer" => self.token(registry, repository, &challenge, creds.as_ref(), login)?,
                other => {
                    return Err(RegistryError::Auth {
                        registry: registry.into(),
                        reason: format!("unsupported authentication scheme `{other}`"),
                    })
                }
            };
            lock(&self.tokens).insert(key.clone(), header);
        }
    }

    /// Get a Bearer token from the challenge's realm. An identity token (from a credential
    /// helper) is sent like a password, as the Basic credentials of this request.
    fn token(
        &self,
        registry: &str,
        repository: &str,
        challenge: &auth::Challenge,
        creds: Option<&Credentials>,
        login: bool,
    ) -> Result<String, RegistryError> {
        let realm = challenge
            .param("realm")
            .ok_or_else(|| RegistryError::Auth {
                registry: registry.into(),
                reason: "the Bearer challenge names no realm".into(),
            })?;
        let mut request = self.agent.get(realm);
        if let Some(service) = challenge.param("service") {
            request = request.query("service", service);
        }
        let scope = challenge.param("scope").map(str::to_string).or_else(|| {
            (!repository.is_empty()).then(|| format!("repository:{repository}:pull,push"))
        });
        // A challenge may ask for several scopes (a mount: this repository and the source);
        // token servers take them as repeated `scope` parameters.
        for scope in scope.iter().flat_map(|s| s.split_whitespace()) {
            request = request.query("scope", scope);
        }
        if let Some(c) = creds {
            if c.is_identity_token() {
                tracing::debug!("{registry}: sending an identity token to {realm}");
            } else {
                request = request.query("account", &c.username);
            }
            request = request.header("Authorization", c.basic_header());
        }
        let mut response = request.call().map_err(|e| transport(realm, &e, false))?;
        if !response.status().is_success() {
            if creds.is_none() && !login {
                return Err(needs_login(registry));
            }
            return Err(RegistryError::Auth {
                registry: registry.into(),
                reason: format!(
                    "the token service answered {} (wrong user name or password?)",
                    response.status().as_u16()
                ),
            });
        }
        let body: serde_json::Value = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| RegistryError::Auth {
                registry: registry.into(),
                reason: format!("unreadable token response: {e}"),
            })?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .ok_or_else(|| RegistryError::Auth {
                registry: registry.into(),
                reason: "the token response has no token".into(),
            })?;
        Ok(format!("Bearer {token}"))
    }

    fn send_retrying(
        &self,
        registry: &str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: &Payload<'_>,
        authorization: Option<&str>,
    ) -> Result<Response<Body>, RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = ureq::http::Request::builder().method(method).uri(url);
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            if let Some(a) = authorization {
                builder = builder.header("Authorization", a);
            }
            let invalid =
                |e: ureq::http::Error| RegistryError::Invalid(format!("bad request to {url}: {e}"));
            let result = match payload {
                Payload::Empty => self.agent.run(builder.body(()).map_err(invalid)?),
                Payload::Bytes(b) => self.agent.run(builder.body(*b).map_err(invalid)?),
                Payload::File(path, sent) => {
                    let file = std::fs::File::open(path)
                        .map_err(|e| StoreError::io("opening a blob", path, e))?;
                    let mut reader = Counting::new(file, *sent);
                    let body = ureq::SendBody::from_reader(&mut reader);
                    self.agent.run(builder.body(body).map_err(invalid)?)
                }
            };
            let retry = match &result {
                Ok(r) => r.status().is_server_error(),
                Err(e) => retriable(e),
            };
            if retry && attempt < TRIES {
                tracing::debug!("{method} {url}: retrying (attempt {attempt})");
                std::thread::sleep(Duration::from_millis(250 << attempt));
                continue;
            }
            let insecure = self.insecure(registry);
            return result.map_err(|e| transport(url, &e, !insecure).with_registry(registry));
        }
    }

    /// Run `work` on every item, at most `max_concurrent_transfers` at once (each transfer
    /// also takes its registry's slot). After a failure no new item starts; the error of the
    /// earliest failed item is returned.
    fn parallel<T: Sync, R: Send>(
        &self,
        items: &[T],
        work: impl Fn(&T) -> Result<R, RegistryError> + Sync,
    ) -> Result<Vec<R>, RegistryError> {
        let workers = self
            .options
            .max_concurrent_transfers
            .clamp(1, items.len().max(1));
        if workers == 1 {
            return items.iter().map(&work).collect();
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<(usize, Result<R, RegistryError>)>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let result = work(item);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        lock(&results).push((i, result));
                    }
                });
            }
        });
        let mut results = results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    /// Pull `name` (for `platform` when it is an index) into `store` and name it `name`.
    pub fn pull(
        &self,
        store: &Store,
        name: &Reference,
        platform: &Platform,
        progress: Progress<'_>,
    ) -> Result<TransferReport, RegistryError> {
        let remote = self.resolve(name, platform)?;
        self.pull_resolved(store, name, remote, progress)
    }

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

    /// Fetch the blobs of a resolved image into `store` (in parallel) and name it `name`.
    pub fn pull_resolved(
        &self,
        store: &Store,
        name: &Reference,
        remote: RemoteImage,
        progress: Progress<'_>,
    ) -> Result<TransferReport, RegistryError> {
        let RemoteImage {
            bytes,
            digest,
            manifest,
        } = remote;
        let blobs: Vec<Descriptor> = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .cloned()
            .collect();
        let (transferred, skipped) = self.fetch_blobs(store, name, &blobs, progress)?;
        let stored = store.blobs().put(&bytes)?;
        debug_assert_eq!(stored, digest);
        let mut touched: Vec<(Digest, u64)> =
            blobs.iter().map(|d| (d.digest.clone(), d.size)).collect();
        touched.push((digest.clone(), bytes.len() as u64));
        store.touch_blobs(&touched)?;
        let mut local = name.clone();
        local.digest = None;
        if local.tag.is_none() {
            local.tag = Some("latest".into());
        }
        store.set_image(&local, &digest)?;
        Ok(TransferReport {
            manifest: digest,
            transferred,
            skipped,
            mounted: 0,
        })
    }

    /// Fetch `blobs` from `name`'s repository into `store`, in parallel (at most
    /// `max_concurrent_transfers` at once for the registry, however many threads call this),
    /// skipping those the store has. Each blob is verified against its descriptor's digest
    /// before it lands in the store. Returns (transferred, skipped); a digest listed twice
    /// counts once.
    pub fn fetch_blobs(
        &self,
        store: &Store,
        name: &Reference,
        blobs: &[Descriptor],
        progress: Progress<'_>,
    ) -> Result<(usize, usize), RegistryError> {
        let registry = name.domain.as_str();
        let repo = name.path.as_str();
        let mut listed = HashSet::new();
        let mut todo = Vec::new();
        let mut skipped = 0;
        for desc in blobs {
            if !listed.insert(&desc.digest) {
                continue;
            }
            // A repository's manifest names the blob: the repository holds it.
            self.remember(registry, repo, &desc.digest);
            if store.blobs().contains(&desc.digest) {
                skipped += 1;
                progress(TransferEvent::Skipped {
                    digest: desc.digest.clone(),
                    total: desc.size,
                });
            } else {
                todo.push(desc);
            }
        }
        let done = self.parallel(&todo, |desc| {
            self.download(store, registry, repo, &desc.digest, desc.size, progress)
        })?;
        Ok((done.len(), skipped))
    }

    /// `method` (GET or HEAD) of the manifest `reference` of `repo`, with the URL asked; a 404
    /// or any other failure status is an error naming it.
    fn manifest_response(
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

    fn fetch_manifest(
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

    /// Fetch one blob into `store`, committed under `digest` only if its bytes hash to it.
    /// `size` 0 means unknown (the `Content-Length` is reported as the total).
    fn download(
        &self,
        store: &Store,
        registry: &str,
        repo: &str,
        digest: &Digest,
        size: u64,
        progress: Progress<'_>,
    ) -> Result<(), RegistryError> {
        let _slot = self.slot(registry);
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base(registry));
        let mut last = None;
        let mut started = false;
        for attempt in 1..=TRIES {
            let mut response =
                self.send(registry, repo, "GET", &url, &[], Payload::Empty, false)?;
            let status = response.status();
            if !status.is_success() {
                return Err(status_error(
                    format!("fetching the blob {digest}"),
                    status,
                    response,
                ));
            }
            let total = if size > 0 {
                size
            } else {
                response
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            if !started {
                started = true;
                progress(TransferEvent::Started {
                    digest: digest.clone(),
                    total,
                });
            }
            let report = |done: u64| {
                progress(TransferEvent::Bytes {
                    digest: digest.clone(),
                    done,
                    total,
                })
            };
            let mut writer = Counting::new(store.blobs().writer()?, &report);
            let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
            match std::io::copy(&mut reader, &mut writer) {
                Ok(_) => {
                    writer.finish();
                    writer.inner.commit(Some(digest))?;
                    self.remember(registry, repo, digest);
                    progress(TransferEvent::Done {
                        digest: digest.clone(),
                        total,
                    });
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!("blob {digest}: connection dropped ({e}), attempt {attempt}");
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(250 << attempt));
                }
            }
        }
        Err(RegistryError::Transport {
            url,
            reason: last.map(|e| e.to_string()).unwrap_or_default(),
            hint: String::new(),
        })
    }

    /// Push the stored image `name` to its registry: the blobs the registry lacks, in
    /// parallel (mounted from another repository of the registry when one is known to hold
    /// them), then the manifest under the tag.
    ///
    /// A blob is known to be in another repository when this client pulled it from or pushed
    /// it to there, or when another name of the same image in the store is in that
    /// repository of the same registry (a guess: a refused mount falls back to an upload).
    pub fn push(
        &self,
        store: &Store,
        name: &Reference,
        progress: Progress<'_>,
    ) -> Result<TransferReport, RegistryError> {
        let record = store
            .image(name)?
            .ok_or_else(|| StoreError::UnknownImage(name.to_string()))?;
        let bytes = store.blobs().read(&record.manifest)?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("manifest {}: {e}", record.manifest)))?;
        let registry = name.domain.as_str();
        let repo = name.path.as_str();
        let base = self.base(registry);
        let names = other_repositories(store, name, &record.manifest)?;
        let mut listed = HashSet::new();
        let blobs: Vec<&Descriptor> = manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config))
            .filter(|d| listed.insert(&d.digest))
            .collect();
        let outcomes = self.parallel(&blobs, |desc| {
            self.push_blob(store, registry, repo, desc, &names, progress)
        })?;
        let count = |f: fn(&Pushed) -> bool| outcomes.iter().filter(|o| f(o)).count();
        let report = TransferReport {
            manifest: record.manifest.clone(),
            transferred: count(|o| matches!(o, Pushed::Uploaded)),
            skipped: count(|o| matches!(o, Pushed::Skipped)),
            mounted: count(|o| matches!(o, Pushed::Mounted)),
        };
        let media_type = if manifest.media_type.is_empty() {
            MEDIA_TYPE_MANIFEST.to_string()
        } else {
            manifest.media_type.clone()
        };
        let url = format!("{base}/v2/{repo}/manifests/{}", name.tag_or_latest());
        let response = self.send(
            registry,
            repo,
            "PUT",
            &url,
            &[("Content-Type", &media_type)],
            Payload::Bytes(&bytes),
            false,
        )?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(
                format!("uploading the manifest of {name}"),
                status,
                response,
            ));
        }
        Ok(report)
    }

    /// Push one blob unless the registry has it: a mount when another repository is known
    /// to hold it, else a monolithic upload.
    fn push_blob(
        &self,
        store: &Store,
        registry: &str,
        repo: &str,
        desc: &Descriptor,
        names: &[String],
        progress: Progress<'_>,
    ) -> Result<Pushed, RegistryError> {
        let base = self.base(registry);
        let digest = &desc.digest;
        let url = format!("{base}/v2/{repo}/blobs/{digest}");
        let head = self.send(registry, repo, "HEAD", &url, &[], Payload::Empty, false)?;
        if head.status().is_success() {
            self.remember(registry, repo, digest);
            progress(TransferEvent::Skipped {
                digest: digest.clone(),
                total: desc.size,
            });
            return Ok(Pushed::Skipped);
        }
        let path = store.blobs().path(digest);
        // What goes out is verified first (one `stat` for a blob verified since its last
        // write): the registry would refuse a corrupt blob, but only with DIGEST_INVALID.
        store.blobs().check(digest, Some(desc.size))?;
        let _slot = self.slot(registry);
        let from = self
            .seen_elsewhere(registry, repo, digest)
            .or_else(|| names.first().cloned());
        let mut location = None;
        if let Some(from) = from {
            let mount = format!("{base}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}");
            let answer = self.send(
                registry,
                repo,
                "POST",
                &mount,
                &[("Content-Length", "0")],
                Payload::Empty,
                false,
            );
            match answer {
                Ok(r) if r.status() == StatusCode::CREATED => {
                    self.remember(registry, repo, digest);
                    progress(TransferEvent::Mounted {
                        digest: digest.clone(),
                        total: desc.size,
                        from,
                    });
                    return Ok(Pushed::Mounted);
                }
                // Not mounted, but the upload session it opened is ours to use.
                Ok(r) if r.status() == StatusCode::ACCEPTED => {
                    location = upload_location(&base, &r).ok();
                }
                Ok(r) => tracing::debug!("mounting {digest} from {from}: {}", r.status()),
                Err(e) => tracing::debug!("mounting {digest} from {from}: {e}"),
            }
        }
        let location = match location {
            Some(l) => l,
            None => {
                let start = format!("{base}/v2/{repo}/blobs/uploads/");
                let response = self.send(
                    registry,
                    repo,
                    "POST",
                    &start,
                    &[("Content-Length", "0")],
                    Payload::Empty,
                    false,
                )?;
                let status = response.status();
                if status != StatusCode::ACCEPTED {
                    return Err(status_error(
                        format!("starting the upload of {digest}"),
                        status,
                        response,
                    ));
                }
                upload_location(&base, &response)?
            }
        };
        progress(TransferEvent::Started {
            digest: digest.clone(),
            total: desc.size,
        });
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={digest}");
        let size = desc.size.to_string();
        let report = |done: u64| {
            progress(TransferEvent::Bytes {
                digest: digest.clone(),
                done,
                total: desc.size,
            })
        };
        let response = self.send(
            registry,
            repo,
            "PUT",
            &put,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &size),
            ],
            Payload::File(&path, &report),
            false,
        )?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(
                format!("uploading {digest}"),
                status,
                response,
            ));
        }
        self.remember(registry, repo, digest);
        progress(TransferEvent::Done {
            digest: digest.clone(),
            total: desc.size,
        });
        Ok(Pushed::Uploaded)
    }
}

/// The repositories of `name`'s registry, other than `name`'s own, that the store has names
/// for pointing at `manifest`.
fn other_repositories(
    store: &Store,
    name: &Reference,
    manifest: &Digest,
) -> Result<Vec<String>, RegistryError> {
    let mut out: Vec<String> = Vec::new();
    for (other, record) in store.images()? {
        if &record.manifest != manifest {
            continue;
        }
        let Ok(other) = Reference::parse_container_image(&other) else {
            continue;
        };
        if other.domain == name.domain && other.path != name.path && !out.contains(&other.path) {
            out.push(other.path);
        }
    }
    Ok(out)
}

/// The absolute `Location` of an upload session.
fn upload_location(base: &str, response: &Response<Body>) -> Result<String, RegistryError> {
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Invalid("the upload answer has no Location".into()))?;
    Ok(absolute(base, location))
}

/// A reader or writer that reports how many bytes went through, at most every 200 ms.
struct Counting<'a, T> {
    inner: T,
    done: u64,
    last: Instant,
    report: &'a (dyn Fn(u64) + Sync),
}

impl<'a, T> Counting<'a, T> {
    fn new(inner: T, report: &'a (dyn Fn(u64) + Sync)) -> Counting<'a, T> {
        Counting {
            inner,
            done: 0,
            last: Instant::now(),
            report,
        }
    }

    fn add(&mut self, n: usize) {
        self.done += n as u64;
        if self.last.elapsed() >= Duration::from_millis(200) {
            self.last = Instant::now();
            (self.report)(self.done);
        }
    }

    /// Report the final count.
    fn finish(&mut self) {
        (self.report)(self.done);
    }
}

impl<T: Read> Read for Counting<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.add(n);
        if n == 0 {
            self.finish();
        }
        Ok(n)
    }
}

impl<T: Write> Write for Counting<'_, T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.add(n);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl RegistryError {
    fn with_registry(self, registry: &str) -> RegistryError {
        match self {
            RegistryError::Transport { url, reason, hint } if !hint.is_empty() => {
                RegistryError::Transport {
                    url,
                    reason,
                    hint: format!(
                        "\nhelp: if {registry} serves plain HTTP, allow it with `--insecure-registry {registry}` or SEAL_INSECURE_REGISTRIES={registry}"
                    ),
                }
            }
            other => other,
        }
    }
}

fn needs_login(registry: &str) -> RegistryError {
    RegistryError::Auth {
        registry: registry.into(),
        reason: format!("the registry requires credentials: run `seal login {registry}`"),
    }
}

/// A transport error; `tls` marks an HTTPS request, whose failure may mean the registry
/// speaks plain HTTP (a hint is added later, unless the host was not found or not reached).
fn transport(url: &str, e: &ureq::Error, tls: bool) -> RegistryError {
    let reason = e.to_string();
    let unreachable = matches!(
        e,
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_)
    ) || reason.contains("lookup address")
        || reason.contains("Connection refused");
    RegistryError::Transport {
        url: url.into(),
        reason,
        hint: if tls && !unreachable {
            "tls".into()
        } else {
            String::new()
        },
    }
}

fn retriable(e: &ureq::Error) -> bool {
    !e.to_string().contains("lookup address")
        && matches!(
            e,
            ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_)
        )
}

fn status_error(what: String, status: StatusCode, mut response: Response<Body>) -> RegistryError {
    let mut detail = String::new();
    let _ = response
        .body_mut()
        .with_config()
        .limit(4096)
        .reader()
        .take(4096)
        .read_to_string(&mut detail);
    let detail = detail.trim();
    RegistryError::Status {
        what,
        status: status.as_u16(),
        detail: if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        },
    }
}

/// The `Docker-Content-Digest` a registry sent with a manifest.
fn content_digest(response: &Response<Body>) -> Option<Digest> {
    response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok())
}

/// The `mediaType` of a manifest or index document.
fn media_type_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| MEDIA_TYPE_MANIFEST.to_string())
}

/// "no image for platform", with the platforms the index does have.
fn no_platform(name: &Reference, platform: &Platform, index: &[u8]) -> RegistryError {
    let doc: serde_json::Value = serde_json::from_slice(index).unwrap_or_default();
    let mut present: Vec<String> = doc["manifests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|m| {
            let p = &m["platform"];
            let (os, arch) = (p["os"].as_str()?, p["architecture"].as_str()?);
            Some(match p["variant"].as_str() {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            })
        })
        .collect();
    present.sort();
    present.dedup();
    let has = if present.is_empty() {
        "it lists no platform".to_string()
    } else {
        format!("it has {}", present.join(", "))
    };
    RegistryError::Invalid(format!(
        "{name} has no image for platform {platform} ({has})"
    ))
}

/// The manifest of an index for `platform`.
fn pick_platform(index: &[u8], platform: &Platform) -> Option<Digest> {
    let doc: serde_json::Value = serde_json::from_slice(index).ok()?;
    let manifests = doc["manifests"].as_array()?;
    let matches = |m: &serde_json::Value, variant: bool| {
        let p = &m["platform"];
        p["os"].as_str() == Some(platform.os.as_str())
            && p["architecture"].as_str() == Some(platform.architecture.as_str())
            && (!variant
                || platform.variant.is_none()
                || p["variant"].as_str() == platform.variant.as_deref())
    };
    manifests
        .iter()
        .find(|m| matches(m, true))
        .or_else(|| {
            manifests
                .iter()
                .find(|m| matches(m, false) && platform.variant.is_none())
        })
        .and_then(|m| m["digest"].as_str()?.parse().ok())
}

/// A `Location` header made absolute against `base`.
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        format!("{base}/{location}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_and_indexes() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!(Platform::parse("linux").is_err());
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [
                {"mediaType": MEDIA_TYPE_MANIFEST, "digest": a.to_string(), "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": MEDIA_TYPE_MANIFEST, "digest": b.to_string(), "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            ]
        });
        let bytes = serde_json::to_vec(&index).unwrap();
        assert_eq!(
            pick_platform(&bytes, &Platform::parse("linux/amd64").unwrap()),
            Some(a)
        );
        assert_eq!(
            pick_platform(&bytes, &Platform::parse("linux/arm64").unwrap()),
            Some(b)
        );
        assert_eq!(
            pick_platform(&bytes, &Platform::parse("linux/s390x").unwrap()),
            None
        );
        assert_eq!(absolute("http://h:1", "/v2/x?y"), "http://h:1/v2/x?y");
    }

    #[test]
    fn a_client_is_shareable_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Client>();
        assert_eq!(RegistryOptions::default().max_concurrent_transfers, 3);
    }

    /// A registry serving `/v2/<repo>/blobs/<digest>` slowly, counting requests in flight.
    struct FakeRegistry {
        host: String,
        in_flight: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
    }

    impl FakeRegistry {
        /// Serve `blobs` (digest → bytes); each answer takes `delay`.
        fn start(blobs: HashMap<String, Vec<u8>>, delay: Duration) -> FakeRegistry {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let host = listener.local_addr().unwrap().to_string();
            let in_flight = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let blobs = Arc::new(blobs);
            let (now, top) = (Arc::clone(&in_flight), Arc::clone(&peak));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let (blobs, now, top) =
                        (Arc::clone(&blobs), Arc::clone(&now), Arc::clone(&top));
                    std::thread::spawn(move || serve(stream, &blobs, &now, &top, delay));
                }
            });
            FakeRegistry {
                host,
                in_flight,
                peak,
            }
        }
    }

    fn serve(
        stream: std::net::TcpStream,
        blobs: &HashMap<String, Vec<u8>>,
        now: &AtomicUsize,
        top: &AtomicUsize,
        delay: Duration,
    ) {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        loop {
            let mut request = String::new();
            if reader.read_line(&mut request).unwrap_or(0) == 0 {
                return;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                if header == "\r\n" {
                    break;
                }
            }
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            top.fetch_max(running, Ordering::SeqCst);
            std::thread::sleep(delay);
            let path = request.split(' ').nth(1).unwrap_or_default();
            let digest = path.rsplit('/').next().unwrap_or_default();
            let answer = match blobs.get(digest) {
                Some(body) => {
                    let mut a =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                            .into_bytes();
                    a.extend_from_slice(body);
                    a
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            now.fetch_sub(1, Ordering::SeqCst);
            if out.write_all(&answer).is_err() {
                return;
            }
        }
    }

    fn descriptor(bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: "application/octet-stream".into(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            annotations: Default::default(),
        }
    }

    #[test]
    fn fetch_blobs_runs_in_parallel_within_the_registry_limit_across_threads() {
        let contents: Vec<Vec<u8>> = (0..10)
            .map(|i| format!("blob number {i} ").repeat(1000).into_bytes())
            .collect();
        let served = contents
            .iter()
            .map(|c| (Digest::of(c).to_string(), c.clone()))
            .collect();
        let registry = FakeRegistry::start(served, Duration::from_millis(150));
        let dir = tempfile::TempDir::new().unwrap();
        let store = Store::open(dir.path(), &mut || {}).unwrap();
        let client = Client::new(RegistryOptions {
            insecure: vec![registry.host.clone()],
            max_concurrent_transfers: 3,
        });
        let descriptors: Vec<Descriptor> = contents.iter().map(|c| descriptor(c)).collect();
        let events = Mutex::new(Vec::new());
        let record = |e: TransferEvent| lock(&events).push(e);
        let name = |repo: &str| {
            Reference::parse_container_image(&format!("{}/{repo}:1", registry.host)).unwrap()
        };
        // Two threads, two repositories of one registry, five blobs each (one listed twice).
        let (first, second) = descriptors.split_at(5);
        let mut first = first.to_vec();
        first.push(first[0].clone());
        std::thread::scope(|scope| {
            let a = scope.spawn(|| client.fetch_blobs(&store, &name("x/a"), &first, &record));
            let b = scope.spawn(|| client.fetch_blobs(&store, &name("x/b"), second, &record));
            assert_eq!(a.join().unwrap().unwrap(), (5, 0));
            assert_eq!(b.join().unwrap().unwrap(), (5, 0));
        });
        assert_eq!(registry.peak.load(Ordering::SeqCst), 3, "transfers at once");
        assert_eq!(registry.in_flight.load(Ordering::SeqCst), 0);
        for (d, c) in descriptors.iter().zip(&contents) {
            assert_eq!(&store.blobs().read(&d.digest).unwrap(), c);
        }
        let events = events.into_inner().unwrap();
        for d in &descriptors {
            let mine: Vec<&TransferEvent> =
                events.iter().filter(|e| e.digest() == &d.digest).collect();
            assert_eq!(
                mine.first(),
                Some(&&TransferEvent::Started {
                    digest: d.digest.clone(),
                    total: d.size
                })
            );
            assert_eq!(
                mine.last(),
                Some(&&TransferEvent::Done {
                    digest: d.digest.clone(),
                    total: d.size
                })
            );
            assert!(mine.contains(&&TransferEvent::Bytes {
                digest: d.digest.clone(),
                done: d.size,
                total: d.size
            }));
        }
        // Everything is present now: nothing moves, every blob is reported skipped.
        let events = Mutex::new(Vec::new());
        let again = client
            .fetch_blobs(&store, &name("x/a"), &descriptors, &|e| {
                lock(&events).push(e)
            })
            .unwrap();
        assert_eq!(again, (0, 10));
        assert!(lock(&events)
            .iter()
            .all(|e| matches!(e, TransferEvent::Skipped { .. })));
        // The client remembers where it saw each blob (for mounts on push).
        assert_eq!(
            client.seen_elsewhere(&registry.host, "x/c", &descriptors[9].digest),
            Some("x/a".to_string())
        );
    }

    #[test]
    fn a_blob_whose_bytes_do_not_match_its_digest_is_refused() {
        let good = descriptor(b"the real blob");
        let mut served = HashMap::new();
        served.insert(good.digest.to_string(), b"something else".to_vec());
        let registry = FakeRegistry::start(served, Duration::ZERO);
        let dir = tempfile::TempDir::new().unwrap();
        let store = Store::open(dir.path(), &mut || {}).unwrap();
        let client = Client::new(RegistryOptions {
            insecure: vec![registry.host.clone()],
            ..RegistryOptions::default()
        });
        let name = Reference::parse_container_image(&format!("{}/x/a:1", registry.host)).unwrap();
        let err = client
            .fetch_blobs(&store, &name, std::slice::from_ref(&good), &|_| {})
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Store(StoreError::CorruptBlob { .. })),
            "{err}"
        );
        assert!(!store.blobs().contains(&good.digest));
    }
}
