//! `--mode cloud`: RUN steps on another machine over SSH (`--cloud-host`), in runc with the
//! runtime config container mode uses, so a step gives the layer it gives locally.
//!
//! One SSH session per build ([`ssh::Connection`]) runs `seal __seal-cloud-serve` on the host
//! ([`serve`]), the same binary, copied over when the host lacks it. For each step seal asks
//! which of the rootfs's layer blobs the host's store lacks, sends only those, runs the step
//! and receives the one new layer blob, which enters the local store only after it matched
//! its digest. Steps run one at a time on the session. A broken session (the host died, the
//! connection dropped) fails the step at hand and is reopened by the next one.

pub mod alicloud;
pub mod aws;
pub mod protocol;
pub mod provision;
pub mod serve;
pub mod ssh;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use seal_solver::ExecContext;
use seal_store::Store;

use crate::layer::Layer;
use crate::llb::ExecOp;
use crate::EngineError;
use protocol::{copy_exact, read_message, write_message, Reply, Request};
use ssh::{Connection, SealBinary, SshOptions};

/// What `--cloud-*` flags say.
#[derive(Debug, Clone)]
pub struct CloudOptions {
    pub target: CloudTarget,
    /// `--cloud-seal-binary`: what the host runs instead of this binary.
    pub seal_binary: Option<PathBuf>,
}

/// Where the build's host comes from.
#[derive(Debug, Clone)]
pub enum CloudTarget {
    /// `--cloud-host`: a machine the user names.
    Host(SshOptions),
    /// `--cloud-provider`: a machine created when the first cloud RUN needs it, so a build
    /// whose RUN steps are all cached (or that fails before one) creates nothing.
    Provider(Arc<dyn HostProvider>),
}

/// Creates the build's host on demand (`--cloud-provider`); the caller deletes it after the
/// build.
pub trait HostProvider: Send + Sync + std::fmt::Debug {
    /// The ssh options that reach the host, creating it on the first call (later calls
    /// return the same host, or the first call's error). Tells its progress to `say` (the
    /// step's log); gives up with [`EngineError::Cancelled`] once `cancelled` is set.
    fn ssh_options(
        &self,
        cancelled: &AtomicBool,
        say: &dyn Fn(&str),
    ) -> Result<SshOptions, EngineError>;
    /// What to call the host in messages before it exists (`a host on aws`).
    fn describe(&self) -> String;
}

impl CloudTarget {
    fn describe(&self) -> String {
        match self {
            CloudTarget::Host(ssh) => ssh.host.to_string(),
            CloudTarget::Provider(provider) => provider.describe(),
        }
    }
}

/// Bytes and blobs moved, for the build's summary.
#[derive(Debug, Default)]
pub struct CloudCounters {
    pub steps: AtomicU64,
    pub blobs_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub blobs_received: AtomicU64,
    pub bytes_received: AtomicU64,
}

/// The build's cloud host.
pub struct CloudExecutor {
    options: CloudOptions,
    session: Mutex<Option<Connection>>,
    pub counters: CloudCounters,
}

impl std::fmt::Debug for CloudExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudExecutor")
            .field("host", &self.options.target.describe())
            .finish()
    }
}

/// Why a step did not give a layer, and whether the session can go on.
struct StepError {
    error: EngineError,
    session_ok: bool,
}

impl CloudExecutor {
    /// Nothing connects until the first step.
    pub fn new(options: CloudOptions) -> CloudExecutor {
        CloudExecutor {
            options,
            session: Mutex::new(None),
            counters: CloudCounters::default(),
        }
    }

    /// Run `op` on the host over the rootfs `layers` and return its layer, now in `store`.
    pub fn run(
        &self,
        op: &ExecOp,
        layers: &[Layer],
        store: &Store,
        cx: &ExecContext,
    ) -> Result<Layer, EngineError> {
        let mut session = self
            .session
            .lock()
            .map_err(|_| EngineError::Internal("cloud session lock poisoned".into()))?;
        if cx.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let connection = match session.take() {
            Some(c) => c,
            None => {
                let binary = match &self.options.seal_binary {
                    Some(path) => path.clone(),
                    None => std::env::current_exe()
                        .map_err(|e| EngineError::Internal(format!("finding seal: {e}")))?,
                };
                let binary = SealBinary::read(&binary)?;
                let ssh = match &self.options.target {
                    CloudTarget::Host(ssh) => ssh.clone(),
                    CloudTarget::Provider(provider) => {
                        provider.ssh_options(&cx.cancel_flag(), &|line| cx.log(line))?
                    }
                };
                Connection::open(&ssh, &binary)?
            }
        };
        let mut connection = connection;
        // Cancellation ends the session: the host's server sees its stdin end and stops the
        // step.
        let done = AtomicBool::new(false);
        let pid = connection.pid();
        let outcome = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if cx.is_cancelled() {
                        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                            let _ =
                                rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                        }
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            });
            let outcome = self.step(&mut connection, op, layers, store, cx);
            done.store(true, Ordering::Relaxed);
            outcome
        });
        match outcome {
            Ok(layer) => {
                *session = Some(connection);
                self.counters.steps.fetch_add(1, Ordering::Relaxed);
                Ok(layer)
            }
            Err(StepError { error, session_ok }) => {
                if cx.is_cancelled() {
                    connection.kill();
                    return Err(EngineError::Cancelled);
                }
                if session_ok {
                    *session = Some(connection);
                    return Err(error);
                }
                let reason = match error {
                    EngineError::Internal(reason) => reason,
                    other => other.to_string(),
                };
                Err(connection.error(&reason))
            }
        }
    }

    fn step(
        &self,
        connection: &mut Connection,
        op: &ExecOp,
        layers: &[Layer],
        store: &Store,
        cx: &ExecContext,
    ) -> Result<Layer, StepError> {
        let lost = |what: &str, e: std::io::Error| StepError {
            error: EngineError::Internal(format!("the connection was lost while {what}: {e}")),
            session_ok: false,
        };
        let broken = |error: EngineError| StepError {
            error,
            session_ok: false,
        };
        let digests = layers.iter().map(|l| l.digest.clone()).collect();
        connection
            .input()
            .and_then(|input| write_message(input, &Request::Missing { digests }))
            .map_err(|e| lost("asking for missing layers", e))?;
        let missing = match next_reply(connection, cx) {
            Ok(Some(Reply::Missing { digests })) => digests,
            other => return Err(unexpected(other, "asking for missing layers")),
        };
        for digest in &missing {
            let Some(layer) = layers.iter().find(|l| &l.digest == digest) else {
                return Err(broken(EngineError::Internal(format!(
                    "the host asked for {digest}, which is no layer of the step"
                ))));
            };
            store.ensure_local(digest).map_err(|e| StepError {
                error: e.into(),
                session_ok: true,
            })?;
            let mut blob = store
                .blobs()
                .open_verified(digest, layer.size)
                .map_err(|e| broken(e.into()))?;
            let header = Request::Blob {
                digest: digest.clone(),
                size: layer.size,
            };
            connection
                .input()
                .and_then(|input| {
                    write_message(input, &header)?;
                    copy_exact(&mut blob, input, layer.size)
                })
                .map_err(|e| lost("sending a layer", e))?;
            match next_reply(connection, cx) {
                Ok(Some(Reply::Stored { .. })) => {}
                other => return Err(unexpected(other, "sending a layer")),
            }
            self.counters.blobs_sent.fetch_add(1, Ordering::Relaxed);
            self.counters
                .bytes_sent
                .fetch_add(layer.size, Ordering::Relaxed);
        }
        let request = Request::Run {
            op: op.clone(),
            layers: layers.to_vec(),
        };
        connection
            .input()
            .and_then(|input| write_message(input, &request))
            .map_err(|e| lost("starting the step", e))?;
        match next_reply(connection, cx) {
            Ok(Some(Reply::Layer { layer })) => {
                let mut writer = store.blobs().writer().map_err(|e| broken(e.into()))?;
                copy_exact(&mut connection.stdout, &mut writer, layer.size)
                    .map_err(|e| lost("receiving the layer", e))?;
                // Only a blob of the announced digest enters the store.
                writer
                    .commit(Some(&layer.digest))
                    .map_err(|e| broken(e.into()))?;
                // The diffID names the snapshot later steps unpack into: it must be
                // this blob's, not just what the host says.
                check_diff_id(store, &layer).map_err(|error| StepError {
                    error,
                    session_ok: true,
                })?;
                self.counters.blobs_received.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes_received
                    .fetch_add(layer.size, Ordering::Relaxed);
                Ok(layer)
            }
            Ok(Some(Reply::Failed { message, exit })) => {
                let error = match exit {
                    Some(exit) => EngineError::RunFailed {
                        code: exit.code,
                        tail: exit.tail,
                        hint: exit.hint,
                    },
                    None => EngineError::Cloud {
                        host: connection.host.to_string(),
                        reason: message,
                    },
                };
                Err(StepError {
                    error,
                    session_ok: true,
                })
            }
            other => Err(unexpected(other, "running the step")),
        }
    }
}

/// The next reply that is not a line of output; those go to the step's progress.
fn next_reply(connection: &mut Connection, cx: &ExecContext) -> std::io::Result<Option<Reply>> {
    loop {
        match read_message(&mut connection.stdout)? {
            Some(Reply::Log { line }) => cx.log(line),
            Some(Reply::Warning { message }) => cx.warn(message),
            other => return Ok(other),
        }
    }
}

/// The uncompressed stream of the layer's blob has the layer's diffID.
fn check_diff_id(store: &Store, layer: &Layer) -> Result<(), EngineError> {
    use sha2::Digest as _;
    let path = store.blobs().path(&layer.digest);
    let file = std::fs::File::open(&path).map_err(|e| EngineError::io("opening", &path, e))?;
    let mut tar = crate::unpack::decompress(file, &layer.media_type)?;
    let mut hasher = HashWriter(sha2::Sha256::new());
    std::io::copy(&mut tar, &mut hasher).map_err(|e| EngineError::io("reading", &path, e))?;
    let actual = seal_store::Digest::from_sha256(hasher.0.finalize().into());
    if actual != layer.diff_id {
        return Err(EngineError::Internal(format!(
            "the host's layer {} has diffID {actual}, not the {} it announced",
            layer.digest, layer.diff_id
        )));
    }
    Ok(())
}

struct HashWriter(sha2::Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reply that is not the one expected: the session cannot go on.
fn unexpected(reply: std::io::Result<Option<Reply>>, what: &str) -> StepError {
    let error = match reply {
        Ok(None) => EngineError::Internal(format!("the host closed the connection while {what}")),
        Err(e) => EngineError::Internal(format!("the connection failed while {what}: {e}")),
        Ok(Some(Reply::Failed { message, .. })) => {
            EngineError::Internal(format!("{what}: {message}"))
        }
        Ok(Some(other)) => EngineError::Internal(format!("{what}: unexpected reply {other:?}")),
    };
    StepError {
        error,
        session_ok: false,
    }
}
