//! The bridge to the solver: an LLB node as a [`seal_solver::Vertex`], and the one `match`
//! that dispatches each op to its implementation in [`crate::ops`].

use std::sync::Arc;

use seal_solver::{CacheMap, ContentId, ExecContext, Id, Vertex};

use crate::explain::Observed;
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
    /// snapshotted while it is written.
    pub feeds_run: bool,
}

/// For each node of `def`, whether a RUN that mounts snapshots on this machine (lite,
/// container or remote mode: not cloud, whose host unpacks its own) reads it, directly or
/// through later steps. An over-approximation (a stage copied from with `COPY --from` is
/// upstream of the RUN without being one of its layers): a wrong guess costs a snapshot.
pub fn feeds_local_run(def: &crate::llb::Definition) -> Vec<bool> {
    let mut feeds = vec![false; def.nodes.len()];
    for (j, node) in def.nodes.iter().enumerate().rev() {
        let runs_here =
            matches!(&node.op, Op::Exec(exec) if exec.mode != crate::llb::ExecMode::Cloud);
        let mark = runs_here || feeds[j];
        for &i in &node.inputs {
            if let Some(f) = feeds.get_mut(i) {
                *f |= mark;
            }
        }
    }
    feeds
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
