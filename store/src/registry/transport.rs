//! Transport: sending one request with retries (5xx, dropped connections), transfer slots per
//! registry, parallel blob work, byte counting for progress, and the errors of all that.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ureq::http::{Response, StatusCode};
use ureq::Body;

use super::{lock, tls, Client, RegistryError, TRIES};
use crate::StoreError;

/// A body to send (re-created for every retry).
pub(super) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A file, with a callback told how many bytes have been sent.
    File(&'a Path, &'a (dyn Fn(u64) + Sync)),
}

/// A counting semaphore: the transfer slots of one registry.
pub(super) struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// One taken slot, given back on drop.
pub(super) struct Slot(Arc<Slots>);

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

impl Client {
    fn insecure(&self, registry: &str) -> bool {
        self.options.insecure.iter().any(|r| r == registry)
    }

    pub(super) fn base(&self, registry: &str) -> String {
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

    /// The TLS settings of `registry`, read on first use.
    pub(super) fn tls(&self, registry: &str) -> Result<Arc<tls::RegistryTls>, RegistryError> {
        if let Some(t) = lock(&self.tls).get(registry) {
            return Ok(Arc::clone(t));
        }
        let t = Arc::new(tls::for_registry(registry, &self.options)?);
        lock(&self.tls).insert(registry.into(), Arc::clone(&t));
        Ok(t)
    }

    /// Run a request to `registry` (or its token service) with its TLS settings; a server
    /// certificate that does not verify is an error saying where trust comes from.
    pub(super) fn run<B: ureq::AsSendBody>(
        &self,
        registry: &str,
        request: ureq::http::Request<B>,
    ) -> Result<Response<Body>, ureq::Error> {
        let https = request.uri().scheme_str() == Some("https");
        let request = if https {
            match self.tls(registry) {
                Ok(t) => self
                    .agent
                    .configure_request(request)
                    .tls_config(t.config.clone())
                    .build(),
                // Unreadable TLS files are reported by the caller through `tls()`.
                Err(_) => request,
            }
        } else {
            request
        };
        self.agent.run(request)
    }

    /// The error of a failed request to `url` of `registry`.
    pub(super) fn request_error(
        &self,
        registry: &str,
        url: &str,
        e: &ureq::Error,
    ) -> RegistryError {
        if tls::is_certificate_error(e) {
            let sources = self
                .tls(registry)
                .map(|t| t.sources.clone())
                .unwrap_or_default();
            return RegistryError::Transport {
                url: url.into(),
                reason: e.to_string(),
                hint: tls::certificate_hint(registry, &sources),
            };
        }
        let insecure = self.insecure(registry);
        transport(url, e, !insecure).with_registry(registry)
    }

    /// Wait for a free transfer slot of `registry`.
    pub(super) fn slot(&self, registry: &str) -> Slot {
        let slots = Arc::clone(lock(&self.slots).entry(registry.into()).or_insert_with(|| {
            Arc::new(Slots {
                free: Mutex::new(self.options.max_concurrent_transfers.max(1)),
                freed: Condvar::new(),
            })
        }));
        slots.take()
    }

    pub(super) fn send_retrying(
        &self,
        registry: &str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: &Payload<'_>,
        authorization: Option<&str>,
    ) -> Result<Response<Body>, RegistryError> {
        if url.starts_with("https://") {
            // Unreadable or invalid certs.d / --registry-ca files fail before any request.
            self.tls(registry)?;
        }
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
                Payload::Empty => self.run(registry, builder.body(()).map_err(invalid)?),
                Payload::Bytes(b) => self.run(registry, builder.body(*b).map_err(invalid)?),
                Payload::File(path, sent) => {
                    let file = std::fs::File::open(path)
                        .map_err(|e| StoreError::io("opening a blob", path, e))?;
                    let mut reader = Counting::new(file, *sent);
                    let body = ureq::SendBody::from_reader(&mut reader);
                    self.run(registry, builder.body(body).map_err(invalid)?)
                }
            };
            let retry = match &result {
                Ok(r) => r.status().is_server_error(),
                Err(e) => retriable(e) && !tls::is_certificate_error(e),
            };
            if retry && attempt < TRIES {
                tracing::debug!("{method} {url}: retrying (attempt {attempt})");
                std::thread::sleep(Duration::from_millis(250 << attempt));
                continue;
            }
            return result.map_err(|e| self.request_error(registry, url, &e));
        }
    }

    /// Run `work` on every item, at most `max_concurrent_transfers` at once (each transfer
    /// also takes its registry's slot). After a failure no new item starts; the error of the
    /// earliest failed item is returned.
    pub(super) fn parallel<T: Sync, R: Send>(
        &self,
        items: &[T],
        work: impl Fn(&T) -> Result<R, RegistryError> + Sync,
    ) -> Result<Vec<R>, RegistryError> {
        crate::parallel::map_ordered(
            items,
            self.options.max_concurrent_transfers,
            |r: &Result<R, RegistryError>| r.is_err(),
            work,
        )
        .into_iter()
        .collect()
    }
}

/// A reader or writer that reports how many bytes went through, at most every 200 ms.
pub(super) struct Counting<'a, T> {
    pub(super) inner: T,
    done: u64,
    last: Instant,
    report: &'a (dyn Fn(u64) + Sync),
}

impl<'a, T> Counting<'a, T> {
    pub(super) fn new(inner: T, report: &'a (dyn Fn(u64) + Sync)) -> Counting<'a, T> {
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
    pub(super) fn finish(&mut self) {
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

/// A transport error; `tls` marks an HTTPS request, whose failure may mean the registry
/// speaks plain HTTP (a hint is added later, unless the host was not found or not reached).
pub(super) fn transport(url: &str, e: &ureq::Error, tls: bool) -> RegistryError {
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

pub(super) fn status_error(
    what: String,
    status: StatusCode,
    mut response: Response<Body>,
) -> RegistryError {
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

/// A `Location` header made absolute against `base`.
pub(super) fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        format!("{base}/{location}")
    }
}
