//! ExecOp (RUN): run a command on the rootfs of input 0 with the executor of its mode; the
//! overlay upper dir becomes the step's layer.

use seal_solver::ExecContext;
use seal_store::Store;

use crate::diff::upper_to_entries;
use crate::executor::container::ContainerExecutor;
use crate::executor::lite::LiteExecutor;
use crate::executor::{check_privileges, ExecRequest, Executor};
use crate::layer::write_layer;
use crate::llb::{ExecMode, ExecOp};
use crate::output::{LayerChain, Output};
use crate::unpack::snapshot;
use crate::EngineError;

/// Run the step and return its layer.
pub fn exec(
    op: &ExecOp,
    inputs: &[Output],
    store: &Store,
    cx: &ExecContext,
) -> Result<Output, EngineError> {
    let Some(Output::Layers(rootfs)) = inputs.first() else {
        return Err(EngineError::Internal("RUN's input is not a rootfs".into()));
    };
    check_privileges()?;
    // Missing snapshots are unpacked side by side: most of an unpack is waiting on the
    // filesystem, and a cold RUN needs every layer below it.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lowers = seal_store::parallel::map_ordered(
        &rootfs.layers,
        workers,
        |r: &Result<_, EngineError>| r.is_err(),
        |layer| snapshot(store, layer),
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
        env: op
            .env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        cwd: op.cwd.clone(),
        network: op.network,
        security: op.security,
        files: op.files.clone(),
    };
    request.move_long_script_to_file();
    let executor: &dyn Executor = match op.mode {
        ExecMode::Lite => &LiteExecutor,
        ExecMode::Container => &ContainerExecutor,
    };
    executor.run(&request, cx)?;
    let entries = upper_to_entries(&request.upper(), &mut |w| cx.warn(w))?;
    let layer = write_layer(store.blobs(), &entries, op.format, &cx.cancel_flag())?;
    // A later COPY resolves its destination through this index instead of reading the layer.
    crate::layer_index::IndexBuilder::from_entries(&entries).store(store, &layer.digest)?;
    Ok(Output::Layers(LayerChain {
        layers: vec![layer],
        base_config: None,
    }))
}
