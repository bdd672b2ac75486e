//! The remote executor (`--remote-executor`): a RUN step as a Remote Execution API v2 action.
//!
//! The input root is the step's rootfs ([`input::chain_tree`], remembered per layer chain);
//! the action's output is the whole root (output path `.`), and the step's layer is the
//! output tree minus the input tree ([`output::diff`]). The command runs with the input root
//! as `/`, as in container mode. Only blobs the server lacks are uploaded (one
//! `FindMissingBlobs` for the whole tree); every blob of the result is verified against its
//! digest before the layer is written, so a broken result stores nothing.
//!
//! What REAPI cannot carry: owners (new files belong to root), extended attributes, device
//! nodes, fifos, sockets and hardlinks (each name is a file of its own). Modes travel as the
//! `unix_mode` node property; a server that ignores it keeps only the executable bit of new
//! files. `RUN --network`, the sandbox and what it mounts (buildbox-run puts a tmpfs on
//! `/tmp`, so what a step leaves there is not in its layer) are the server's policy.

mod input;
mod output;
mod tree;

use std::path::PathBuf;
use std::sync::Arc;

use seal_remote::proto::{command, platform, Action, Command, Digest, Directory, Platform, Tree};
use seal_remote::retry::cancellable;
use seal_remote::{digest, BlobSource, Execution, Remote, RemoteError, RemoteOptions};
use seal_solver::ExecContext;
use seal_store::Store;

use crate::layer::{Layer, LayerEntry, LayerEntryKind};
use crate::layers::file_hash::hash_file;
use crate::llb::{ExecFile, ExecOp};
use crate::unpack::snapshot;
use crate::EngineError;
use tree::{FlatTree, Node};

/// Where `RUN <<EOF` scripts (and over-long commands) are in a remote step's root: REAPI
/// has no mounts, so they are files of the input root, rewritten from [`ExecOp::FILES_DIR`],
/// and never part of the layer.
const REMOTE_FILES_DIR: &str = ".seal-run-files";
/// How many lines of a failed action's output the error shows.
const TAIL_LINES: usize = 30;

/// The connection to one remote executor, made at the first remote RUN of a build and
/// shared by all of them.
pub struct RemoteExecutor {
    options: RemoteOptions,
    remote: tokio::sync::OnceCell<Arc<Remote>>,
}

impl std::fmt::Debug for RemoteExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteExecutor")
            .field("endpoint", &self.options.endpoint.address())
            .field("connected", &self.remote.initialized())
            .finish()
    }
}

/// One remote RUN.
pub struct RemoteStep<'a> {
    /// The rootfs, bottom to top.
    pub layers: &'a [Layer],
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub files: Vec<ExecFile>,
    /// A private scratch directory: downloaded files live here until the layer is written.
    pub scratch: PathBuf,
}

impl RemoteExecutor {
    /// An executor for `options`; nothing connects until the first step.
    pub fn new(options: RemoteOptions) -> RemoteExecutor {
        RemoteExecutor {
            options,
            remote: tokio::sync::OnceCell::new(),
        }
    }

    /// The connection, if a step has made it.
    pub fn connected(&self) -> Option<&Arc<Remote>> {
        self.remote.get()
    }

    /// How many remote RUNs may be in flight at once (`--remote-jobs`).
    pub fn jobs(&self) -> usize {
        self.options.jobs.max(1)
    }

    /// Run `step` remotely and return its layer's entries. Blocks: call it on a blocking
    /// thread of the build's runtime.
    pub fn run(
        &self,
        step: &RemoteStep<'_>,
        store: &Store,
        cx: &ExecContext,
    ) -> Result<Vec<LayerEntry>, EngineError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| EngineError::Internal("a remote RUN outside the runtime".into()))?;
        let cancel = cx.cancel_flag();
        let remote = runtime.block_on(self.remote.get_or_try_init(|| async {
            Remote::connect(self.options.clone()).await.map(Arc::new)
        }))?;
        let mut input = input::chain_tree(store, step.layers)?;
        let (args, extra) = prepare(&mut input, step);
        let encoded = tree::encode(&input);
        let (command_digest, command_bytes) = digest::of_message(&self.command(step, args));
        let action = Action {
            command_digest: Some(command_digest.clone()),
            input_root_digest: Some(encoded.root.clone()),
            timeout: Some(seal_remote::protobuf::Duration {
                seconds: self.options.timeout.as_secs() as i64,
                nanos: 0,
            }),
            do_not_cache: false,
            platform: Some(self.platform()),
            ..Default::default()
        };
        let (action_digest, action_bytes) = digest::of_message(&action);

        // Everything the action needs, then one question: which does the server lack?
        let mut wanted: Vec<(Digest, Source)> = vec![
            (command_digest, Source::Bytes(command_bytes)),
            (action_digest.clone(), Source::Bytes(action_bytes)),
        ];
        for (d, bytes) in encoded.directories {
            wanted.push((d, Source::Bytes(bytes)));
        }
        for (path, node) in &input {
            if let Node::File {
                hash, size, layer, ..
            } = node
            {
                let source = match layer {
                    Some(i) => Source::Layer(*i, path.clone()),
                    None => Source::Extra(extra.get(path).cloned().unwrap_or_default()),
                };
                wanted.push((Node::file_digest(hash, *size), source));
            }
        }
        let uploaded = upload_missing(&runtime, remote, store, step.layers, wanted, &cancel)?;

        let execution = runtime
            .block_on(remote.execute(&action_digest, &cancel))
            .map_err(cancelled)?;
        cx.log(summary(&execution, &uploaded));
        let (stdout, stderr) = runtime.block_on(output_text(remote, &execution))?;
        let code = execution.result.exit_code;
        if code != 0 {
            let mut lines: Vec<&str> = stdout.lines().chain(stderr.lines()).collect();
            let keep = lines.len().saturating_sub(TAIL_LINES);
            lines.drain(..keep);
            return Err(EngineError::RunFailed {
                code,
                tail: lines.join("\n"),
                hint: None,
            });
        }
        for line in stdout.lines().chain(stderr.lines()) {
            cx.log(line.to_string());
        }
        let mut output = runtime.block_on(output_tree(remote, &execution, &input))?;
        tree::remove_subtree(&mut input, REMOTE_FILES_DIR);
        tree::remove_subtree(&mut output, REMOTE_FILES_DIR);
        remove_mount_stubs(&input, &mut output);
        let files_dir = step.scratch.join("files");
        std::fs::create_dir_all(&files_dir)
            .map_err(|e| EngineError::io("creating", &files_dir, e))?;
        let diff = output::diff(&input, &output, &files_dir);
        runtime
            .block_on(cancellable(
                &cancel,
                remote.download_to_files(diff.downloads, &cancel),
            ))
            .map_err(cancelled)?;
        let mut entries = diff.entries;
        for entry in &mut entries {
            if let LayerEntryKind::File {
                source,
                size,
                blake3,
            } = &mut entry.kind
            {
                *blake3 = hash_file(source, *size)?;
            }
        }
        Ok(entries)
    }

    fn command(&self, step: &RemoteStep<'_>, args: Vec<String>) -> Command {
        let mut env: Vec<command::EnvironmentVariable> = step
            .env
            .iter()
            .map(|(name, value)| command::EnvironmentVariable {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        env.sort_by(|a, b| a.name.cmp(&b.name));
        env.dedup_by(|a, b| a.name == b.name);
        #[allow(deprecated)]
        Command {
            arguments: args,
            environment_variables: env,
            output_paths: vec![".".into()],
            // Servers that predate output_paths read these.
            output_directories: vec![".".into()],
            working_directory: String::new(),
            output_node_properties: vec!["unix_mode".into()],
            platform: Some(self.platform()),
            ..Default::default()
        }
    }

    fn platform(&self) -> Platform {
        let mut properties: Vec<platform::Property> = self
            .options
            .platform
            .iter()
            .map(|(name, value)| platform::Property {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        properties.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
        Platform { properties }
    }
}

/// Where the bytes of a wanted blob are.
enum Source {
    Bytes(Vec<u8>),
    /// A file of layer `.0`'s snapshot.
    Layer(usize, String),
    /// A file seal added to the input root ([`REMOTE_FILES_DIR`]).
    Extra(Vec<u8>),
}

/// What one step sent to the server.
struct Uploaded {
    bytes: u64,
    blobs: usize,
    /// Blobs the action needs in all.
    wanted: usize,
}

/// Upload the blobs of `wanted` the server lacks (one `FindMissingBlobs` for all of them);
/// files of a layer are read from its snapshot, unpacked if needed.
fn upload_missing(
    runtime: &tokio::runtime::Handle,
    remote: &Remote,
    store: &Store,
    layers: &[Layer],
    mut wanted: Vec<(Digest, Source)>,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<Uploaded, EngineError> {
    wanted.sort_by(|a, b| a.0.hash.cmp(&b.0.hash));
    wanted.dedup_by(|a, b| a.0 == b.0);
    let total = wanted.len();
    let missing =
        runtime.block_on(remote.find_missing(wanted.iter().map(|(d, _)| d.clone()).collect()))?;
    let missing: std::collections::BTreeSet<String> = missing.into_iter().map(|d| d.hash).collect();
    let mut uploads = Vec::new();
    let mut bytes = 0u64;
    for (d, source) in wanted
        .into_iter()
        .filter(|(d, _)| missing.contains(&d.hash))
    {
        bytes += d.size_bytes as u64;
        let source = match source {
            Source::Bytes(b) | Source::Extra(b) => BlobSource::Bytes(b),
            Source::Layer(i, path) => BlobSource::File(snapshot(store, &layers[i])?.join(path)),
        };
        uploads.push((d, source));
    }
    let blobs = uploads.len();
    runtime
        .block_on(cancellable(cancel, remote.upload(uploads, cancel)))
        .map_err(cancelled)?;
    Ok(Uploaded {
        bytes,
        blobs,
        wanted: total,
    })
}

/// The step's own additions to its input root — the working directory, the files of
/// `RUN <<EOF` — and its arguments: REAPI's working directory is also where outputs are
/// taken from, so a step with another working directory changes into it through `/bin/sh`.
fn prepare(
    input: &mut FlatTree,
    step: &RemoteStep<'_>,
) -> (Vec<String>, std::collections::BTreeMap<String, Vec<u8>>) {
    let mut extra = std::collections::BTreeMap::new();
    let cwd = step.cwd.trim_matches('/');
    // runc creates a missing working directory too, so the layer gets it either way.
    let mut path = String::new();
    for part in cwd.split('/').filter(|p| !p.is_empty()) {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(part);
        if !input.contains_key(&path) {
            input.insert(
                path.clone(),
                Node::Dir {
                    mode: 0o755,
                    owner: (0, 0),
                },
            );
        }
    }
    if !step.files.is_empty() {
        input.insert(
            REMOTE_FILES_DIR.to_string(),
            Node::Dir {
                mode: 0o755,
                owner: (0, 0),
            },
        );
        for file in &step.files {
            let path = format!("{REMOTE_FILES_DIR}/{}", file.name);
            let d = digest::of_bytes(file.data.as_bytes());
            input.insert(
                path.clone(),
                Node::File {
                    hash: d.hash,
                    size: d.size_bytes,
                    mode: file.mode & 0o7777,
                    owner: (0, 0),
                    layer: None,
                },
            );
            extra.insert(path, file.data.as_bytes().to_vec());
        }
    }
    let from = format!("{}/", ExecOp::FILES_DIR);
    let to = format!("/{REMOTE_FILES_DIR}/");
    let mut args: Vec<String> = step.args.iter().map(|a| a.replace(&from, &to)).collect();
    if !cwd.is_empty() {
        let mut wrapped = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "cd \"$0\" && exec \"$@\"".to_string(),
            format!("/{cwd}"),
        ];
        wrapped.append(&mut args);
        args = wrapped;
    }
    (args, extra)
}

/// The progress line of a remote action: what moved and who answered. Tests and benchmarks
/// read it (`--progress json`), so its words are stable.
fn summary(execution: &Execution, uploaded: &Uploaded) -> String {
    let how = if execution.cached {
        "cached_result".to_string()
    } else {
        let times = execution
            .result
            .execution_metadata
            .as_ref()
            .and_then(|m| Some((m.worker_start_timestamp?, m.worker_completed_timestamp?)));
        match times {
            Some((start, end)) => format!(
                "executed worker_start={}.{:09} worker_completed={}.{:09}",
                start.seconds, start.nanos, end.seconds, end.nanos
            ),
            None => "executed".to_string(),
        }
    };
    format!(
        "remote: uploaded_bytes={} uploaded_blobs={} input_blobs={} {how}",
        uploaded.bytes, uploaded.blobs, uploaded.wanted
    )
}

/// The action's stdout and stderr (inline or from the CAS), as text.
async fn output_text(
    remote: &Remote,
    execution: &Execution,
) -> Result<(String, String), RemoteError> {
    let result = &execution.result;
    let mut texts = Vec::new();
    for (raw, digest) in [
        (&result.stdout_raw, &result.stdout_digest),
        (&result.stderr_raw, &result.stderr_digest),
    ] {
        let bytes = match digest {
            Some(d) if raw.is_empty() && d.size_bytes > 0 => remote.read_blob(d).await?,
            _ => raw.clone(),
        };
        texts.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    let stderr = texts.pop().unwrap_or_default();
    let stdout = texts.pop().unwrap_or_default();
    Ok((stdout, stderr))
}

/// The output root as a flat tree: the `Tree` of output directory `""`, every blob verified.
async fn output_tree(
    remote: &Remote,
    execution: &Execution,
    input: &FlatTree,
) -> Result<FlatTree, EngineError> {
    let bad = |reason: String| {
        EngineError::Remote(RemoteError::Decode {
            address: remote.address().to_string(),
            what: "the action's output root",
            reason,
        })
    };
    let Some(tree_digest) = execution
        .result
        .output_directories
        .iter()
        .find(|d| d.path.is_empty() || d.path == ".")
        .and_then(|d| d.tree_digest.clone())
    else {
        let paths: Vec<&str> = execution
            .result
            .output_directories
            .iter()
            .map(|d| d.path.as_str())
            .chain(
                execution
                    .result
                    .output_files
                    .iter()
                    .map(|f| f.path.as_str()),
            )
            .collect();
        return Err(bad(format!(
            "the result has no output directory for the root (it has {paths:?})"
        )));
    };
    let bytes = remote.read_blob(&tree_digest).await?;
    let tree: Tree = prost::Message::decode(bytes.as_slice()).map_err(|e| bad(e.to_string()))?;
    let root = tree.root.unwrap_or_default();
    let mut children: std::collections::BTreeMap<String, Directory> = tree
        .children
        .into_iter()
        .map(|child| (digest::of_message(&child).0.hash, child))
        .collect();
    // A server that encodes a directory differently from prost names digests we did not
    // compute: those are fetched (and verified) one by one.
    loop {
        match tree::flatten(&root, &children, input) {
            Ok(flat) => return Ok(flat),
            Err(hash) => {
                if children.contains_key(&hash) || hash.is_empty() {
                    return Err(bad(format!("directory {hash} cannot be read")));
                }
                let digest = find_size(&root, &children, &hash)
                    .ok_or_else(|| bad(format!("directory {hash} is not named")))?;
                let bytes = remote.read_blob(&digest).await?;
                let dir: Directory =
                    prost::Message::decode(bytes.as_slice()).map_err(|e| bad(e.to_string()))?;
                children.insert(hash, dir);
            }
        }
    }
}

/// The full digest of the directory `hash` names somewhere in the tree.
fn find_size(
    root: &Directory,
    children: &std::collections::BTreeMap<String, Directory>,
    hash: &str,
) -> Option<Digest> {
    std::iter::once(root)
        .chain(children.values())
        .flat_map(|d| d.directories.iter())
        .filter_map(|n| n.digest.clone())
        .find(|d| d.hash == hash)
}

/// Sandboxes (bubblewrap, runc) create mount points for `/dev`, `/proc` and `/sys` in the
/// root: an empty directory there that the input did not have is the sandbox's, not the
/// step's (container mode drops runc's the same way).
const MOUNT_STUBS: [&str; 3] = ["dev", "proc", "sys"];

fn remove_mount_stubs(input: &FlatTree, output: &mut FlatTree) {
    for stub in MOUNT_STUBS {
        let prefix = format!("{stub}/");
        let empty = !output.keys().any(|k| k.starts_with(&prefix));
        if !input.contains_key(stub) && empty && matches!(output.get(stub), Some(Node::Dir { .. }))
        {
            output.remove(stub);
        }
    }
}

/// A cancelled transfer or execution is the build's cancellation.
fn cancelled(e: RemoteError) -> EngineError {
    match e {
        RemoteError::Cancelled => EngineError::Cancelled,
        e => EngineError::Remote(e),
    }
}
