//! The bridge to the solver: an LLB node as a [`seal_solver::Vertex`], and the one `match`
//! that dispatches each op to its implementation in [`crate::ops`].

use std::sync::Arc;

use seal_solver::{CacheMap, ContentId, ExecContext, Id, Vertex};

use crate::explain::Observed;
use crate::layers::snapshot_tee::SnapshotForm;
use crate::llb::{op_digest, Node, Op, SourceOp};
use crate::ops::{self, ExecEnv};
use crate::output::Output;
use crate::EngineError;

/// One LLB node scheduled by the solver.
pub struct OpVertex {
    pub node: Node,
    /// Its index in the Definition (what progress events and trace slices name).
    pub index: usize,
    pub env: Arc<ExecEnv>,
    /// Where its cache-key inputs are noted (for `--explain` and the step records).
    pub observed: Arc<Observed>,
    /// A RUN on this machine is downstream ([`feeds_local_run`]): a layer written here is
    /// snapshotted while it is written, in the form that RUN mounts.
    pub feeds_run: Option<SnapshotForm>,
}

/// For each node of `def`, the snapshot form a RUN that mounts snapshots on this machine
/// reads it in, directly or through later steps: a lite or container RUN mounts images when
/// `images` (the kernel and the store can: [`crate::executor::images_usable`]), a
/// remote RUN reads directories (and wins: a directory serves both); a cloud host unpacks its
/// own. An over-approximation (a stage copied from with `COPY --from` is upstream of the RUN
/// without being one of its layers): a wrong guess costs a snapshot.
pub fn feeds_local_run(def: &crate::llb::Definition, images: bool) -> Vec<Option<SnapshotForm>> {
    use crate::llb::ExecMode;
    let local = match images {
        true => SnapshotForm::Image,
        false => SnapshotForm::Directory,
    };
    let mut feeds: Vec<Option<SnapshotForm>> = vec![None; def.nodes.len()];
    for (j, node) in def.nodes.iter().enumerate().rev() {
        let mark = match &node.op {
            Op::Exec(exec) if exec.mode == ExecMode::Remote => Some(SnapshotForm::Directory),
            Op::Exec(exec) if exec.mode != ExecMode::Cloud => feeds[j].or(Some(local)),
            _ => feeds[j],
        };
        let Some(mark) = mark else { continue };
        for &i in &node.inputs {
            if let Some(f) = feeds.get_mut(i) {
                *f = match (*f, mark) {
                    (Some(SnapshotForm::Directory), _) | (_, SnapshotForm::Directory) => {
                        Some(SnapshotForm::Directory)
                    }
                    _ => Some(mark),
                };
            }
        }
    }
    feeds
}

/// Whether any RUN of `def` runs on this machine in lite or container mode.
pub fn has_local_run(def: &crate::llb::Definition) -> bool {
    def.nodes.iter().any(|node| {
        matches!(&node.op, Op::Exec(exec)
            if matches!(exec.mode, crate::llb::ExecMode::Lite | crate::llb::ExecMode::Container))
    })
}

impl Vertex for OpVertex {
    type Output = Output;
    type Error = EngineError;

    fn cache_map(&self) -> CacheMap {
        // The op's own definition only: inputs enter the key through their content ids, so an
        // edit of an input's *definition* that selects the same content costs nothing.
        let digest = op_digest(&self.node.op, &[]);
        match &self.node.op {
            // Scanning the context is how its content id is learned.
            Op::Source(SourceOp::Local { .. }) => CacheMap::uncached(digest),
            // A download without a checksum may change at any time (ADD without --checksum).
            Op::File(file) if file.always_runs() => CacheMap::uncached(digest),
            // Tags move: which images a rootfs needs is resolved on every build.
            Op::Collect(_) => CacheMap::uncached(digest),
            // A merge is cheap, but caching it lets `FROM <stage>` report CACHED like any step.
            Op::Source(_) | Op::File(_) | Op::Exec(_) | Op::Merge(_) | Op::RegistryLayer(_) => {
                CacheMap::new(digest)
            }
        }
    }

    fn offloaded(&self) -> bool {
        // A remote or cloud RUN waits on another machine: it does not take one of this
        // machine's slots.
        matches!(&self.node.op, Op::Exec(exec)
            if matches!(exec.mode, crate::llb::ExecMode::Remote | crate::llb::ExecMode::Cloud))
    }

    async fn input_keys(&self, inputs: &[Output]) -> Result<Vec<Id>, EngineError> {
        let content: Vec<Id> = inputs.iter().map(ContentId::content_id).collect();
        let keys = match &self.node.op {
            // Of the rootfs below, a FileOp reads only where its destinations resolve.
            Op::File(file) => {
                let (file, inputs, store) = (file.clone(), inputs.to_vec(), self.env.store.clone());
                let span = tracing::info_span!(
                    target: "seal_trace",
                    "destination lookup",
                    node = self.index
                );
                blocking(span, move || ops::file::input_keys(&file, &inputs, &store)).await?
            }
            _ => content.clone(),
        };
        self.observed
            .note(self.index, &self.node.inputs, inputs, &content, &keys);
        Ok(keys)
    }

    async fn exec(&self, cx: &ExecContext, inputs: &[Output]) -> Result<Output, EngineError> {
        let op = self.node.op.clone();
        let env = self.env.clone();
        let inputs = inputs.to_vec();
        let cancel = cx.cancel_flag();
        // The step as a trace slice, on the thread that runs it (its phases nest inside).
        let span = tracing::info_span!(target: "seal_trace", "step", node = cx.node().0);
        match op {
            Op::Merge(_) => span.in_scope(|| ops::merge::exec(&inputs)),
            Op::Exec(exec) => {
                let cx = cx.clone();
                blocking(span, move || ops::exec::exec(&exec, &inputs, &env, &cx)).await
            }
            Op::Source(source) => {
                blocking(span, move || {
                    ops::source::exec(&source, &env.store, &env.context_dir)
                })
                .await
            }
            Op::File(file) => {
                let snapshot = self.feeds_run;
                blocking(span, move || {
                    ops::file::exec(&file, &inputs, &env.store, &cancel, snapshot)
                })
                .await
            }
            Op::Collect(collect) => {
                let cx = cx.clone();
                blocking(span, move || {
                    ops::collect::exec(&collect, &inputs, &env, &cx)
                })
                .await
            }
            Op::RegistryLayer(layer) => {
                let cx = cx.clone();
                blocking(span, move || {
                    ops::registry_layer::exec(&layer, &inputs, &env, &cx)
                })
                .await
            }
        }
    }
}

/// Run `f` on the blocking pool, inside `span` (a trace slice on the thread that runs it).
async fn blocking<T: Send + 'static>(
    span: tracing::Span,
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| EngineError::Internal(format!("a worker thread failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::{
        Compression, Definition, ExecMode, ExecOp, LayerFormat, MergeOp, NetworkMode, OpMetadata,
        SecurityMode,
    };

    fn run(mode: ExecMode) -> Op {
        Op::Exec(ExecOp {
            args: vec![format!("{mode:?}")],
            env: vec![],
            cwd: "/".into(),
            network: NetworkMode::None,
            security: SecurityMode::Sandbox,
            files: vec![],
            mode,
            format: LayerFormat {
                compression: Compression::Zstd,
                source_date_epoch: 0,
            },
        })
    }

    /// base ← merge ← RUN(a) ← merge2 ← RUN(b): which form each node's layers are read in.
    fn forms(a: ExecMode, b: ExecMode, images: bool) -> Vec<Option<SnapshotForm>> {
        let mut def = Definition::builder();
        let meta = OpMetadata::default;
        let base = def.add(Op::Source(SourceOp::Scratch), &[], meta());
        let merge = def.add(Op::Merge(MergeOp {}), &[base], meta());
        let first = def.add(run(a), &[merge], meta());
        let merge2 = def.add(Op::Merge(MergeOp {}), &[merge, first], meta());
        def.add(run(b), &[merge2], meta());
        feeds_local_run(&def.build(4), images)
    }

    #[test]
    fn local_runs_read_images_remote_ones_directories_and_cloud_ones_nothing() {
        use SnapshotForm::{Directory as D, Image as I};
        let (lite, remote, cloud) = (ExecMode::Lite, ExecMode::Remote, ExecMode::Cloud);
        assert_eq!(
            forms(lite, ExecMode::Container, true),
            [Some(I), Some(I), Some(I), Some(I), None]
        );
        assert_eq!(
            forms(lite, lite, false),
            [Some(D), Some(D), Some(D), Some(D), None]
        );
        // The base is read by both: a directory serves the remote RUN and the local one.
        assert_eq!(
            forms(lite, remote, true),
            [Some(D), Some(D), Some(D), Some(D), None]
        );
        assert_eq!(forms(cloud, cloud, true), [None; 5]);
        assert_eq!(
            forms(cloud, lite, true),
            [Some(I), Some(I), Some(I), Some(I), None]
        );
    }
}
