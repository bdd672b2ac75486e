//! ExecOp (RUN): run a command on the rootfs of input 0 with the executor of its mode; the
//! overlay upper dir becomes the step's layer (a remote step's layer is its output root minus
//! its input root, `executor/remote.rs`; a cloud step's layer is written on its host and
//! fetched, `executor/cloud.rs`).

use seal_solver::ExecContext;
use seal_store::Store;
use tempfile::TempDir;

use super::ExecEnv;

use crate::diff::upper_to_entries;
use crate::executor::container::ContainerExecutor;
use crate::executor::lite::LiteExecutor;
use crate::executor::remote::RemoteStep;
use crate::executor::{check_privileges, ExecRequest, Executor, Lower};
use crate::layer::{write_layer, Layer, LayerEntry};
use crate::layers::snapshot_image;
use crate::llb::{ExecMode, ExecOp, NetworkMode, SecurityMode};
use crate::output::{LayerChain, Output};
use crate::unpack::{snapshot, snapshot_path};
use crate::EngineError;

/// Run the step and return its layer.
pub fn exec(
    op: &ExecOp,
    inputs: &[Output],
    env: &ExecEnv,
    cx: &ExecContext,
) -> Result<Output, EngineError> {
    let store: &Store = &env.store;
    let Some(Output::Layers(rootfs)) = inputs.first() else {
        return Err(EngineError::Internal("RUN's input is not a rootfs".into()));
    };
    let layer = match op.mode {
        ExecMode::Cloud => {
            let Some(cloud) = &env.cloud else {
                return Err(EngineError::Internal(
                    "a cloud RUN without --cloud-host".into(),
                ));
            };
            let _span = tracing::info_span!(target: "seal_trace", "RUN", cloud = true).entered();
            cloud.run(op, &rootfs.layers, store, cx)?
        }
        ExecMode::Remote => {
            let (entries, _run_dir) = run_remote(op, rootfs, env, cx)?;
            layer_of(store, &entries, op, cx)?
        }
        ExecMode::Lite | ExecMode::Container => local_layer(op, rootfs, store, cx)?,
    };
    Ok(Output::Layers(LayerChain {
        layers: vec![layer],
        base_config: None,
    }))
}

/// The step on this machine, in lite or container mode (a cloud host runs its steps with
/// this too), written and indexed as a layer.
pub fn local_layer(
    op: &ExecOp,
    rootfs: &LayerChain,
    store: &Store,
    cx: &ExecContext,
) -> Result<Layer, EngineError> {
    // The run directory holds the files the entries name: it lives until the layer is written.
    let (entries, _run_dir) = run_local(op, rootfs, store, cx)?;
    layer_of(store, &entries, op, cx)
}

/// Which of `layers` (bottom to top) a RUN mounts as images, when `usable`: each mounted image
/// is a file system whose UUID is its content's, and overlayfs maps inode numbers and devices
/// (`xino`, `executor/overlay.rs`) only while every lower file system of one overlay has a
/// UUID of its own, so a layer that appears twice (two empty layers, say) is an image once and
/// a directory after that.
fn image_lowers(layers: &[Layer], usable: bool) -> Vec<bool> {
    let mut seen = std::collections::HashSet::new();
    layers
        .iter()
        .map(|layer| usable && seen.insert(&layer.diff_id))
        .collect()
}

/// The snapshot of `layer` as a lower: with `image`, the snapshot that exists (a COPY's tee
/// made one or the other), else its image when the layer is worth one
/// ([`snapshot_image::worth_an_image`]); otherwise its directory.
fn lower(store: &Store, layer: &Layer, image: bool) -> Result<Lower, EngineError> {
    if image {
        let dir = snapshot_path(store, &layer.diff_id);
        let file = snapshot_image::image_path(store, &layer.diff_id);
        crate::layers::snapshot_tee::wait_for(&dir);
        crate::layers::snapshot_tee::wait_for(&file);
        if file.is_file() || (!dir.is_dir() && snapshot_image::worth_an_image(store, layer)?) {
            return snapshot_image::snapshot_image(store, layer).map(Lower::Image);
        }
    }
    snapshot(store, layer).map(Lower::Dir)
}

/// Write `entries` as the step's layer and index it.
fn layer_of(
    store: &Store,
    entries: &[LayerEntry],
    op: &ExecOp,
    cx: &ExecContext,
) -> Result<Layer, EngineError> {
    let layer = write_layer(store.blobs(), entries, op.format, &cx.cancel_flag())?;
    // A later COPY resolves its destination through this index instead of reading the layer.
    crate::layer_index::IndexBuilder::from_entries(entries).store(store, &layer.digest)?;
    Ok(layer)
}

/// The step on this machine: an overlay over the rootfs snapshots; its upper dir's entries.
fn run_local(
    op: &ExecOp,
    rootfs: &LayerChain,
    store: &Store,
    cx: &ExecContext,
) -> Result<(Vec<LayerEntry>, TempDir), EngineError> {
    check_privileges()?;
    let wanted = image_lowers(&rootfs.layers, crate::executor::images_usable(store)?);
    // Missing snapshots are unpacked side by side: most of an unpack is waiting on the
    // filesystem, and a cold RUN needs every layer below it.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The unpack threads' trace slices belong to this step: a span whose parent is the step
    // (entering the step's own span there would draw the step once more on each thread).
    let step = tracing::Span::current();
    let layers: Vec<(&Layer, bool)> = rootfs.layers.iter().zip(wanted).collect();
    let lowers = seal_store::parallel::map_ordered(
        &layers,
        workers,
        |r: &Result<_, EngineError>| r.is_err(),
        |&(layer, image)| {
            let _lower =
                tracing::info_span!(target: "seal_trace", parent: &step, "lower").entered();
            lower(store, layer, image)
        },
    )
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let tmp = store.root().join("tmp");
    let run_dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&tmp)
        .map_err(|e| EngineError::io("creating a run directory in", &tmp, e))?;
    // Mount tables name resolved paths; so must the setup script.
    let run_path = run_dir
        .path()
        .canonicalize()
        .map_err(|e| EngineError::io("resolving", run_dir.path(), e))?;
    let mut request = ExecRequest {
        lowers,
        run_dir: run_path,
        args: op.args.clone(),
        env: env_pairs(op),
        cwd: op.cwd.clone(),
        network: op.network,
        security: op.security,
        files: op.files.clone(),
    };
    request.move_long_script_to_file();
    let executor: &dyn Executor = match op.mode {
        ExecMode::Lite => &LiteExecutor,
        ExecMode::Container | ExecMode::Remote | ExecMode::Cloud => &ContainerExecutor,
    };
    {
        let _span = tracing::info_span!(target: "seal_trace", "RUN").entered();
        executor.run(&request, cx)?;
    }
    let entries = {
        let _span = tracing::info_span!(target: "seal_trace", "diff").entered();
        upper_to_entries(&request.upper(), &mut |w| cx.warn(w))?
    };
    Ok((entries, run_dir))
}

/// The step on the remote executor: the rootfs as the action's input root.
fn run_remote(
    op: &ExecOp,
    rootfs: &LayerChain,
    env: &ExecEnv,
    cx: &ExecContext,
) -> Result<(Vec<LayerEntry>, TempDir), EngineError> {
    let Some(remote) = &env.remote else {
        return Err(EngineError::Internal(
            "a remote RUN without --remote-executor".into(),
        ));
    };
    // The server's sandbox is its own: seal cannot grant or withhold these.
    if op.security == SecurityMode::Insecure || op.network != NetworkMode::Default {
        return Err(EngineError::Spawn {
            what: "the step on the remote executor".into(),
            reason: "RUN --network and --security=insecure are the remote executor's policy; \
                     seal cannot set them for a remote action"
                .into(),
        });
    }
    let tmp = env.store.root().join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| EngineError::io("creating", &tmp, e))?;
    let scratch = tempfile::Builder::new()
        .prefix("remote-")
        .tempdir_in(&tmp)
        .map_err(|e| EngineError::io("creating a scratch directory in", &tmp, e))?;
    let mut request = ExecRequest {
        lowers: Vec::new(),
        run_dir: scratch.path().to_path_buf(),
        args: op.args.clone(),
        env: env_pairs(op),
        cwd: op.cwd.clone(),
        network: op.network,
        security: op.security,
        files: op.files.clone(),
    };
    request.move_long_script_to_file();
    let step = RemoteStep {
        layers: &rootfs.layers,
        args: request.args,
        env: request.env,
        cwd: request.cwd,
        files: request.files,
        scratch: scratch.path().to_path_buf(),
    };
    let entries = {
        let _span = tracing::info_span!(target: "seal_trace", "RUN", remote = true).entered();
        remote.run(&step, &env.store, cx)?
    };
    Ok((entries, scratch))
}

/// `NAME=VALUE` strings as pairs.
fn env_pairs(op: &ExecOp) -> Vec<(String, String)> {
    op.env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use seal_store::Digest;

    fn layer(content: &str) -> Layer {
        Layer {
            diff_id: Digest::of(content.as_bytes()),
            digest: Digest::of(format!("blob {content}").as_bytes()),
            size: 1,
            media_type: String::new(),
            collect_free: false,
        }
    }

    #[test]
    fn a_repeated_layer_is_a_directory_after_its_first_image() {
        let stack = [layer("a"), layer(""), layer("b"), layer(""), layer("a")];
        assert_eq!(image_lowers(&stack, true), [true, true, true, false, false]);
        assert_eq!(image_lowers(&stack, false), [false; 5]);
    }
}
