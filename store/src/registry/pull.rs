//! Pull: an image's blobs fetched in parallel into the store, each verified against its
//! digest, then the manifest stored and the name set.

use std::collections::HashSet;
use std::time::Duration;

use super::transport::{status_error, Counting, Payload};
use super::{
    Client, Platform, Progress, RegistryError, RemoteImage, TransferEvent, TransferReport, TRIES,
};
use crate::oci::Descriptor;
use crate::{Digest, Reference, RemoteBlob, RemoteSource, Store};

/// The end of a pull: the manifest `bytes` stored, it and the `touched` blobs marked used,
/// and `name` (its tag, `latest` when it has none) naming it.
fn store_pulled(
    store: &Store,
    name: &Reference,
    bytes: &[u8],
    digest: Digest,
    mut touched: Vec<(Digest, u64)>,
    (transferred, skipped): (usize, usize),
) -> Result<TransferReport, RegistryError> {
    let stored = store.blobs().put(bytes)?;
    debug_assert_eq!(stored, digest);
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

impl Client {
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
        let touched: Vec<(Digest, u64)> =
            blobs.iter().map(|d| (d.digest.clone(), d.size)).collect();
        store_pulled(store, name, &bytes, digest, touched, (transferred, skipped))
    }

    /// Pull a resolved image lazily: its config now, its layers only recorded as remote (in
    /// `name`'s repository), downloaded when something needs their bytes
    /// ([`Store::ensure_local`]). What a build with `--cache-from` does for a FROM image, so
    /// a fully cached build downloads no layer of its base.
    pub fn pull_lazy(
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
        let (transferred, skipped) = self.fetch_blobs(
            store,
            name,
            std::slice::from_ref(&manifest.config),
            progress,
        )?;
        let repository = format!("{}/{}", name.domain, name.path);
        let remote: Vec<(Digest, RemoteBlob)> = manifest
            .layers
            .iter()
            .map(|l| {
                self.remember(&name.domain, &name.path, &l.digest);
                (
                    l.digest.clone(),
                    RemoteBlob {
                        size: l.size,
                        media_type: l.media_type.clone(),
                        source: RemoteSource::Registry {
                            repository: repository.clone(),
                        },
                    },
                )
            })
            .collect();
        store.mark_remote(&remote)?;
        let touched = vec![(manifest.config.digest.clone(), manifest.config.size)];
        store_pulled(store, name, &bytes, digest, touched, (transferred, skipped))
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

    /// The bytes of the blob `digest` of `name`'s repository, held in memory: at most `limit`
    /// bytes, and they must hash to `digest` (a cache config is read this way, never stored).
    pub fn fetch_blob_bytes(
        &self,
        name: &Reference,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let registry = name.domain.as_str();
        let repo = name.path.as_str();
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base(registry));
        let mut response = self.send(registry, repo, "GET", &url, &[], Payload::Empty, false)?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(
                format!("fetching the blob {digest}"),
                status,
                response,
            ));
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| {
                RegistryError::Invalid(format!(
                    "reading the blob {digest} (at most {limit} bytes): {e}"
                ))
            })?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(crate::StoreError::CorruptBlob {
                expected: digest.clone(),
                actual,
            }
            .into());
        }
        Ok(bytes)
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
        // After the slot: the slice shows the transfer, not the wait for a slot.
        let _span = tracing::info_span!(
            target: "seal_trace",
            "pull",
            registry,
            repo,
            blob = %digest,
            bytes = size
        )
        .entered();
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use crate::registry::{lock, RegistryOptions};
    use crate::StoreError;

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
            platform: None,
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
            ..RegistryOptions::default()
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
