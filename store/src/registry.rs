//! A client for the OCI distribution API (registries): pull an image into the store, push one
//! out of it, check credentials.
//!
//! Blocking HTTP over the workspace's `ureq` (rustls with ring; no OpenSSL, no aws-lc). Every
//! blob is streamed into [`crate::BlobStore::writer`] and committed under its expected digest,
//! so nothing unverified lands in the store; blobs already present are skipped. Manifests are
//! OCI or Docker v2 schema 2; an image index or manifest list is resolved for a platform.
//! Auth: anonymous, Basic, and Bearer tokens from the `WWW-Authenticate` challenge, with
//! credentials from the auth files of [`auth`]. Plain HTTP only for registries named insecure.

pub mod auth;

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use ureq::http::{Response, StatusCode};
use ureq::Body;

use crate::oci::{Manifest, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
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

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `host[:port]` of registries spoken to over plain HTTP.
    pub insecure: Vec<String>,
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
}

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
    File(&'a std::path::Path),
}

/// A registry client. Keeps one `Authorization` header per registry and repository.
pub struct Client {
    agent: ureq::Agent,
    options: RegistryOptions,
    /// Credentials to use instead of the auth files (`seal login` checking them).
    credentials: Option<Credentials>,
    tokens: HashMap<String, String>,
}

impl Client {
    /// A client; credentials come from the auth files.
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
            credentials: None,
            tokens: HashMap::new(),
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

    fn creds(&self, registry: &str) -> Option<Credentials> {
        self.credentials.clone().or_else(|| auth::lookup(registry))
    }

    /// Check `credentials` against `registry`'s `/v2/` endpoint (and its token service).
    pub fn check_login(
        &mut self,
        registry: &str,
        credentials: Credentials,
    ) -> Result<(), RegistryError> {
        self.credentials = Some(credentials);
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
    /// authentication when the registry answers 401.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        registry: &str,
        repository: &str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        login: bool,
    ) -> Result<Response<Body>, RegistryError> {
        let key = format!("{registry}/{repository}");
        let mut authenticated = false;
        loop {
            let authorization = self.tokens.get(&key).cloned();
            let response = self.send_retrying(
                registry,
                method,
                url,
                headers,
                &payload,
                authorization.as_deref(),
            )?;
            if response.status() != StatusCode::UNAUTHORIZED || authenticated {
                return Ok(response);
            }
            authenticated = true;
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge);
            let Some(challenge) = challenge else {
                return Ok(response);
            };
            let creds = self.creds(registry);
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
            self.tokens.insert(key.clone(), header);
        }
    }

    /// Get a Bearer token from the challenge's realm.
    fn token(
        &mut self,
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
        if let Some(scope) = &scope {
            request = request.query("scope", scope);
        }
        if let Some(c) = creds {
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
                Payload::File(path) => {
                    let file = std::fs::File::open(path)
                        .map_err(|e| StoreError::io("opening a blob", path, e))?;
                    self.agent.run(builder.body(file).map_err(invalid)?)
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

    /// Pull `name` (for `platform` when it is an index) into `store` and name it `name`.
    pub fn pull(
        &mut self,
        store: &Store,
        name: &Reference,
        platform: &Platform,
        progress: &mut dyn FnMut(&str),
    ) -> Result<TransferReport, RegistryError> {
        let remote = self.resolve(name, platform)?;
        self.pull_resolved(store, name, remote, progress)
    }

    /// Fetch and verify the manifest of `name` for `platform`, touching no store (so a name
    /// the registry lacks fails before any local state is created).
    pub fn resolve(
        &mut self,
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
            let chosen = pick_platform(&bytes, platform).ok_or_else(|| {
                RegistryError::Invalid(format!("{name} has no image for platform {platform}"))
            })?;
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

    /// Fetch the blobs of a resolved image into `store` and name it `name`.
    pub fn pull_resolved(
        &mut self,
        store: &Store,
        name: &Reference,
        remote: RemoteImage,
        progress: &mut dyn FnMut(&str),
    ) -> Result<TransferReport, RegistryError> {
        let registry = name.domain.as_str();
        let repo = name.path.as_str();
        let RemoteImage {
            bytes,
            digest,
            manifest,
        } = remote;
        let mut report = TransferReport {
            manifest: digest.clone(),
            transferred: 0,
            skipped: 0,
        };
        let mut touched = Vec::new();
        for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
            touched.push((desc.digest.clone(), desc.size));
            if store.blobs().contains(&desc.digest) {
                report.skipped += 1;
                continue;
            }
            progress(&format!(
                "pulling blob {} ({} bytes)",
                desc.digest, desc.size
            ));
            self.fetch_blob(store, registry, repo, &desc.digest)?;
            report.transferred += 1;
        }
        let stored = store.blobs().put(&bytes)?;
        debug_assert_eq!(stored, digest);
        touched.push((digest.clone(), bytes.len() as u64));
        store.touch_blobs(&touched)?;
        let mut local = name.clone();
        local.digest = None;
        if local.tag.is_none() {
            local.tag = Some("latest".into());
        }
        store.set_image(&local, &digest)?;
        Ok(report)
    }

    fn fetch_manifest(
        &mut self,
        registry: &str,
        repo: &str,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base(registry));
        let mut response = self.send(
            registry,
            repo,
            "GET",
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
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
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

    fn fetch_blob(
        &mut self,
        store: &Store,
        registry: &str,
        repo: &str,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base(registry));
        let mut last = None;
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
            let mut writer = store.blobs().writer()?;
            let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
            match std::io::copy(&mut reader, &mut writer) {
                Ok(_) => {
                    writer.commit(Some(digest))?;
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

    /// Push the stored image `name` to its registry: blobs the registry lacks, then the
    /// manifest under the tag.
    pub fn push(
        &mut self,
        store: &Store,
        name: &Reference,
        progress: &mut dyn FnMut(&str),
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
        let mut report = TransferReport {
            manifest: record.manifest.clone(),
            transferred: 0,
            skipped: 0,
        };
        for desc in manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config))
        {
            let url = format!("{base}/v2/{repo}/blobs/{}", desc.digest);
            let head = self.send(registry, repo, "HEAD", &url, &[], Payload::Empty, false)?;
            if head.status().is_success() {
                report.skipped += 1;
                continue;
            }
            let path = store.blobs().path(&desc.digest);
            if !path.is_file() {
                return Err(StoreError::MissingBlob(desc.digest.clone()).into());
            }
            progress(&format!(
                "pushing blob {} ({} bytes)",
                desc.digest, desc.size
            ));
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
                    format!("starting the upload of {}", desc.digest),
                    status,
                    response,
                ));
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    RegistryError::Invalid("the upload answer has no Location".into())
                })?;
            let location = absolute(&base, location);
            let sep = if location.contains('?') { '&' } else { '?' };
            let put = format!("{location}{sep}digest={}", desc.digest);
            let size = desc.size.to_string();
            let response = self.send(
                registry,
                repo,
                "PUT",
                &put,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Length", &size),
                ],
                Payload::File(&path),
                false,
            )?;
            let status = response.status();
            if !status.is_success() {
                return Err(status_error(
                    format!("uploading {}", desc.digest),
                    status,
                    response,
                ));
            }
            report.transferred += 1;
        }
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

/// The `mediaType` of a manifest or index document.
fn media_type_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| MEDIA_TYPE_MANIFEST.to_string())
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
}
