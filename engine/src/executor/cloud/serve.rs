//! The cloud host's side: `seal __seal-cloud-serve`, started over SSH by the build's seal,
//! answers [`Request`]s on stdin with [`Reply`]s on stdout. Its store (the host's own, at the
//! usual root) is the snapshot cache: blobs arrive verified against their digests, a RUN runs
//! exactly as in local container mode (`ops::exec::local_layer`), and the layer's blob goes
//! back. The end of stdin (seal gone, the connection lost) cancels a running step. The store
//! is locked while the server runs, so two builds on one host take turns (the second is told
//! it waits).

use std::io::{self, BufReader, BufWriter, Stdout, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use seal_solver::{EventKind, ExecContext};
use seal_store::{Digest, Store};

use super::protocol::{copy_exact, read_message, write_message, CommandExit, Reply, Request};
use crate::layer::Layer;
use crate::llb::{ExecMode, ExecOp};
use crate::output::LayerChain;
use crate::EngineError;

/// The argument that starts the server (argv\[1\]); `cli/main.rs` checks for it before it
/// parses argv.
pub const SERVE_ARG: &str = "__seal-cloud-serve";

type Out = Arc<Mutex<BufWriter<Stdout>>>;

/// Serve until stdin ends. An error is one the protocol cannot continue after.
pub fn serve(root: &Path) -> Result<(), EngineError> {
    let out: Out = Arc::new(Mutex::new(BufWriter::new(io::stdout())));
    // Another build's server holds the store until its build ends: say why nothing moves.
    let mut on_wait = || {
        let line = "waiting for another build's seal on this host to release its store".into();
        let _ = send(&out, &Reply::Log { line });
    };
    let store = Arc::new(Store::open(root, &mut on_wait)?);
    let mut input = BufReader::new(io::stdin().lock());
    let mut running: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> = None;
    let result = loop {
        let request = match read_message::<_, Request>(&mut input) {
            Ok(Some(request)) => request,
            Ok(None) => break Ok(()),
            Err(e) => break Err(EngineError::Internal(format!("reading a request: {e}"))),
        };
        match request {
            Request::Missing { digests } => {
                let digests = digests
                    .into_iter()
                    .filter(|d| !store.blobs().contains(d))
                    .collect();
                send(&out, &Reply::Missing { digests })?;
            }
            Request::Blob { digest, size } => {
                if let Err(e) = receive_blob(&store, &mut input, &digest, size) {
                    // The rest of the blob may be unread: the stream cannot go on.
                    let _ = send(&out, &failed(&e));
                    break Err(e);
                }
                send(&out, &Reply::Stored { digest })?;
            }
            Request::Run { op, layers } => {
                if let Some((_, step)) = running.take() {
                    let _ = step.join();
                }
                let cancel = Arc::new(AtomicBool::new(false));
                let (store, out, flag) = (store.clone(), out.clone(), cancel.clone());
                let step = std::thread::spawn(move || run_step(&store, &out, op, layers, flag));
                running = Some((cancel, step));
            }
        }
    };
    // No more requests: a step still running has nobody to report to.
    if let Some((cancel, step)) = running {
        cancel.store(true, Ordering::Relaxed);
        let _ = step.join();
    }
    result
}

fn send(out: &Out, reply: &Reply) -> Result<(), EngineError> {
    let mut out = out
        .lock()
        .map_err(|_| EngineError::Internal("stdout lock poisoned".into()))?;
    write_message(&mut *out, reply).map_err(|e| EngineError::Internal(format!("writing: {e}")))
}

fn receive_blob(
    store: &Store,
    input: &mut impl io::Read,
    digest: &Digest,
    size: u64,
) -> Result<(), EngineError> {
    let mut writer = store.blobs().writer()?;
    copy_exact(input, &mut writer, size)
        .map_err(|e| EngineError::io("receiving a layer into", store.blobs().tmp_dir(), e))?;
    writer.commit(Some(digest))?;
    Ok(())
}

/// Run one step and send its outcome; its output lines go out as they come.
fn run_step(store: &Store, out: &Out, mut op: ExecOp, layers: Vec<Layer>, cancel: Arc<AtomicBool>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cx = ExecContext::standalone(Some(tx), cancel);
    let forward_out = out.clone();
    let forward = std::thread::spawn(move || {
        while let Some(event) = rx.blocking_recv() {
            let reply = match event.kind {
                EventKind::Log(line) => Reply::Log { line },
                EventKind::Warning(message) => Reply::Warning { message },
                _ => continue,
            };
            if send(&forward_out, &reply).is_err() {
                return;
            }
        }
    });
    // The same runtime config as a local container-mode step: that is what makes the layer
    // the same.
    op.mode = ExecMode::Container;
    let chain = LayerChain {
        layers,
        base_config: None,
    };
    let result = crate::ops::exec::local_layer(&op, &chain, store, &cx);
    drop(cx);
    let _ = forward.join();
    let outcome = match result {
        Ok(layer) => send_layer(store, out, layer),
        Err(e) => Err(e),
    };
    if let Err(e) = outcome {
        let _ = send(out, &failed(&e));
    }
}

/// The layer's header and then its blob, under one lock so no log line comes between.
fn send_layer(store: &Store, out: &Out, layer: Layer) -> Result<(), EngineError> {
    let mut blob = store.blobs().open_verified(&layer.digest, layer.size)?;
    let mut out = out
        .lock()
        .map_err(|_| EngineError::Internal("stdout lock poisoned".into()))?;
    let mut write = |out: &mut BufWriter<Stdout>| -> io::Result<()> {
        write_message(
            out,
            &Reply::Layer {
                layer: layer.clone(),
            },
        )?;
        copy_exact(&mut blob, out, layer.size)?;
        out.flush()
    };
    // Past the header nothing else can be said on this stream: a failure here ends it.
    write(&mut out).map_err(|e| EngineError::Internal(format!("sending the layer: {e}")))?;
    Ok(())
}

/// A failure as a reply; a command's own exit keeps its code and output.
fn failed(e: &EngineError) -> Reply {
    let exit = match e {
        EngineError::RunFailed { code, tail, hint } => Some(CommandExit {
            code: *code,
            tail: tail.clone(),
            hint: hint.clone(),
        }),
        _ => None,
    };
    Reply::Failed {
        message: error_chain(e),
        exit,
    }
}

/// An error and its causes, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
