//! Push: the blobs a registry lacks, mounted from another repository of the same registry
//! when one is known to hold them (the client's memory of where it saw each blob, or another
//! name of the image), else uploaded; then the manifest.

use std::collections::HashSet;

use ureq::http::{Response, StatusCode};
use ureq::Body;

use super::transport::{absolute, status_error, Payload};
use super::{lock, Client, Progress, RegistryError, TransferEvent, TransferReport};
use crate::oci::{Descriptor, Manifest, MEDIA_TYPE_MANIFEST};
use crate::{Digest, Presence, Reference, RemoteSource, Store, StoreError};

/// How one blob of a push went.
enum Pushed {
    Uploaded,
    Mounted,
    Skipped,
}

impl Client {
    /// Note that `repo` of `registry` holds `digest`.
    pub(super) fn remember(&self, registry: &str, repo: &str, digest: &Digest) {
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
    pub(super) fn seen_elsewhere(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
    ) -> Option<String> {
        lock(&self.seen)
            .get(registry)?
            .get(digest)?
            .iter()
            .rev()
            .find(|r| *r != repo)
            .cloned()
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
        let names = other_repositories(store, name, &record.manifest)?;
        let Some(index) = store.index(&record.manifest)? else {
            return self.push_manifest(
                store,
                name,
                &record.manifest,
                name.tag_or_latest(),
                &names,
                progress,
            );
        };
        // A multi-platform image: every platform's image by digest, then the index under the tag.
        let mut report = TransferReport {
            manifest: record.manifest.clone(),
            transferred: 0,
            skipped: 0,
            mounted: 0,
        };
        for entry in &index.manifests {
            let one = self.push_manifest(
                store,
                name,
                &entry.digest,
                &entry.digest.to_string(),
                &names,
                progress,
            )?;
            report.transferred += one.transferred;
            report.skipped += one.skipped;
            report.mounted += one.mounted;
        }
        let bytes = store.blobs().read(&record.manifest)?;
        let media_type = index
            .media_type
            .clone()
            .unwrap_or_else(|| crate::oci::MEDIA_TYPE_INDEX.to_string());
        self.put_manifest(name, name.tag_or_latest(), &media_type, &bytes)?;
        Ok(report)
    }

    /// Push one image manifest's blobs, then the manifest under `reference` (a tag or its
    /// digest).
    fn push_manifest(
        &self,
        store: &Store,
        name: &Reference,
        digest: &Digest,
        reference: &str,
        names: &[String],
        progress: Progress<'_>,
    ) -> Result<TransferReport, RegistryError> {
        let bytes = store.blobs().read(digest)?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("manifest {digest}: {e}")))?;
        let registry = name.domain.as_str();
        let repo = name.path.as_str();
        let mut listed = HashSet::new();
        let blobs: Vec<&Descriptor> = manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config))
            .filter(|d| listed.insert(&d.digest))
            .collect();
        let outcomes = self.parallel(&blobs, |desc| {
            self.push_blob(store, registry, repo, desc, names, progress)
        })?;
        let count = |f: fn(&Pushed) -> bool| outcomes.iter().filter(|o| f(o)).count();
        let report = TransferReport {
            manifest: digest.clone(),
            transferred: count(|o| matches!(o, Pushed::Uploaded)),
            skipped: count(|o| matches!(o, Pushed::Skipped)),
            mounted: count(|o| matches!(o, Pushed::Mounted)),
        };
        let media_type = if manifest.media_type.is_empty() {
            MEDIA_TYPE_MANIFEST.to_string()
        } else {
            manifest.media_type.clone()
        };
        self.put_manifest(name, reference, &media_type, &bytes)?;
        Ok(report)
    }

    /// Push `blobs` of `store` into `name`'s repository, in parallel, as [`Client::push`] does
    /// (a HEAD first; a mount when another repository of the registry holds one; else an
    /// upload, downloading a remote blob first). A cache export's blobs go out this way.
    pub fn push_blobs(
        &self,
        store: &Store,
        name: &Reference,
        blobs: &[Descriptor],
        progress: Progress<'_>,
    ) -> Result<TransferReport, RegistryError> {
        let registry = name.domain.as_str();
        let repo = name.path.as_str();
        let mut listed = HashSet::new();
        let blobs: Vec<&Descriptor> = blobs.iter().filter(|d| listed.insert(&d.digest)).collect();
        let outcomes = self.parallel(&blobs, |desc| {
            self.push_blob(store, registry, repo, desc, &[], progress)
        })?;
        let count = |f: fn(&Pushed) -> bool| outcomes.iter().filter(|o| f(o)).count();
        Ok(TransferReport {
            manifest: Digest::of(b""),
            transferred: count(|o| matches!(o, Pushed::Uploaded)),
            skipped: count(|o| matches!(o, Pushed::Skipped)),
            mounted: count(|o| matches!(o, Pushed::Mounted)),
        })
    }

    /// PUT `bytes` as the manifest `reference` (a tag or its digest) of `name`'s repository.
    pub fn put_manifest(
        &self,
        name: &Reference,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let registry = name.domain.as_str();
        let repo = name.path.as_str();
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base(registry));
        let response = self.send(
            registry,
            repo,
            "PUT",
            &url,
            &[("Content-Type", media_type)],
            Payload::Bytes(bytes),
            false,
        )?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(
                format!("uploading the manifest {reference} of {name}"),
                status,
                response,
            ));
        }
        Ok(())
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
        let _span = tracing::info_span!(
            target: "seal_trace",
            "push",
            registry,
            repo,
            blob = %digest,
            bytes = desc.size,
            outcome = tracing::field::Empty
        )
        .entered();
        let url = format!("{base}/v2/{repo}/blobs/{digest}");
        let head = self.send(registry, repo, "HEAD", &url, &[], Payload::Empty, false)?;
        if head.status().is_success() {
            self.remember(registry, repo, digest);
            progress(TransferEvent::Skipped {
                digest: digest.clone(),
                total: desc.size,
            });
            _span.record("outcome", "present");
            return Ok(Pushed::Skipped);
        }
        let path = store.blobs().path(digest);
        // What goes out is verified first (one `stat` for a blob verified since its last
        // write): the registry would refuse a corrupt blob, but only with DIGEST_INVALID.
        // A remote blob (a cache import's) is mounted from its repository when that is in
        // this registry, and downloaded only when the mount is refused.
        let remote_repo = match store.presence(digest, Some(desc.size))? {
            Presence::Local => None,
            Presence::Remote(blob) => match blob.source {
                RemoteSource::Registry { repository } => {
                    Reference::parse_container_image(&repository)
                        .ok()
                        .filter(|r| r.domain == registry && r.path != repo)
                        .map(|r| r.path)
                }
                _ => None,
            },
        };
        let _slot = self.slot(registry);
        let from = remote_repo
            .or_else(|| self.seen_elsewhere(registry, repo, digest))
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
                    _span.record("outcome", "mounted");
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
        // Not mounted: the bytes must be here.
        store.ensure_local(digest)?;
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
        _span.record("outcome", "uploaded");
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
