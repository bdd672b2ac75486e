//! One build: check the sources, solve the Definition, export the image.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use seal_solver::{
    solve, GraphBuilder, NodeId, NodeStatus, ProgressSender, SolveError, SolveOptions,
};
use seal_store::{Reference, Store};

use crate::apps;
use crate::cache::StoreCache;
use crate::context;
use crate::export::{export, Exported};
use crate::ignore::IgnoreMatcher;
use crate::image_spec::ImageSpec;
use crate::llb::{Definition, Op, SourceOp};
use crate::ops::ExecEnv;
use crate::output::{CollectedImages, Output};
use crate::vertex::OpVertex;
use crate::EngineError;

/// Everything one build needs.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub definition: Definition,
    pub image: ImageSpec,
    pub context_dir: PathBuf,
    /// The name to give the image; `None` for one platform of a multi-platform build, which
    /// the caller names by its index.
    pub name: Option<Reference>,
    pub options: SolveOptions,
    /// Recorded in the image metadata.
    pub seal_version: String,
    /// How image collection reaches registries.
    pub registries: seal_store::RegistryOptions,
    /// `--pull never`: image collection asks no registry.
    pub pull_never: bool,
    /// Credentials for single repositories (`registry`, `repository`, credentials), from
    /// `imageListWithAuth.yaml`: used by image collection, kept in memory only.
    pub repository_credentials: Vec<(String, String, seal_store::registry::Credentials)>,
}

/// What a successful build did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub exported: Exported,
    /// Per Definition node: how its result was obtained (`None`: not needed).
    pub status: Vec<Option<NodeStatus>>,
    /// Context files whose content was read.
    pub files_hashed: usize,
    /// What image collection found (`None` when the build does not collect).
    pub collected: Option<Arc<CollectedImages>>,
}

/// A failed build: the error and the Definition node it came from (for the Kubefile span).
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct BuildError {
    pub node: Option<usize>,
    #[source]
    pub source: EngineError,
}

impl From<EngineError> for BuildError {
    fn from(source: EngineError) -> BuildError {
        BuildError { node: None, source }
    }
}

/// Check every COPY source of `definition` against the context without reading content, so a
/// missing file fails before the store is opened.
pub fn validate_sources(definition: &Definition, context_dir: &Path) -> Result<(), BuildError> {
    for (i, node) in definition.nodes.iter().enumerate() {
        if let Op::Source(SourceOp::Local { include, exclude }) = &node.op {
            let at = |source| BuildError {
                node: Some(consumer(definition, i)),
                source,
            };
            let ignore = IgnoreMatcher::new(exclude).map_err(at)?;
            context::validate(context_dir, include, &ignore).map_err(at)?;
        }
    }
    Ok(())
}

/// Solve `request.definition` against `store` and export the image (under `request.name`).
/// Progress events carry Definition node indices.
pub async fn build(
    store: Arc<Store>,
    request: BuildRequest,
    progress: Option<ProgressSender>,
) -> Result<BuildReport, BuildError> {
    let def = &request.definition;
    let registry = seal_store::registry::Client::new(request.registries.clone());
    for (host, repository, credentials) in &request.repository_credentials {
        registry.set_repository_credentials(host, repository, credentials.clone());
    }
    let env = Arc::new(ExecEnv {
        store: store.clone(),
        context_dir: request.context_dir.clone(),
        registry,
        pull_never: request.pull_never,
    });
    let mut graph = GraphBuilder::new();
    for (i, node) in def.nodes.iter().enumerate() {
        let inputs: Vec<NodeId> = node.inputs.iter().map(|&n| NodeId(n as u32)).collect();
        let id = graph.add(
            OpVertex {
                node: node.clone(),
                index: i as u32,
                env: env.clone(),
            },
            &inputs,
        );
        if id != NodeId(i as u32) {
            return Err(EngineError::Internal("the Definition has duplicate nodes".into()).into());
        }
    }
    let graph = graph.build();
    let cache = Arc::new(StoreCache::new(store.clone()));
    let root = NodeId(def.output as u32);
    let solved = solve(&graph, &[root], cache.clone(), &request.options, progress).await;
    // One batched write of the last-used times of this solve's hits (`seal prune`'s LRU).
    cache.touch_hits();
    let solved = solved
        // A build error names the Definition node it came from.
        .map_err(|e| match e {
            SolveError::Exec { node, source } | SolveError::Cache { node, source } => {
                let index = node.0 as usize;
                // A context scan fails on behalf of the COPY that reads it.
                let index = if matches!(
                    def.nodes.get(index).map(|n| &n.op),
                    Some(Op::Source(SourceOp::Local { .. }))
                ) {
                    consumer(def, index)
                } else {
                    index
                };
                BuildError {
                    node: Some(index),
                    source,
                }
            }
            SolveError::Panicked(msg) => EngineError::Internal(msg).into(),
        })?;
    let Some(Output::Layers(chain)) = solved.outputs.get(&root) else {
        return Err(EngineError::Internal("the build's result is not a rootfs".into()).into());
    };
    let files_hashed = solved
        .outputs
        .values()
        .map(|o| match o {
            Output::Context(sel) => sel.files_hashed,
            Output::Layers(_) | Output::Images(_) => 0,
        })
        .sum();
    let collected = def
        .nodes
        .iter()
        .position(|n| matches!(n.op, Op::Collect(_)))
        .and_then(|i| match solved.outputs.get(&NodeId(i as u32)) {
            Some(Output::Images(images)) => Some(images.clone()),
            _ => None,
        });
    // App types come from what each app's copy selected; an undetectable app fails at its APP.
    let applications = apps::applications(def, &request.image.apps, |i| {
        match solved.outputs.get(&NodeId(i as u32)) {
            Some(Output::Context(sel)) => Some(sel.as_ref()),
            _ => None,
        }
    })
    .map_err(|(node, source)| BuildError {
        node: Some(node),
        source,
    })?;
    let _export = tracing::info_span!(target: "seal_trace", "export").entered();
    let exported = export(
        &store,
        chain,
        &request.image,
        &applications,
        collected.as_deref(),
        request.name.as_ref(),
        &request.seal_version,
    )?;
    let status = (0..def.nodes.len())
        .map(|i| solved.status.get(&NodeId(i as u32)).copied())
        .collect();
    Ok(BuildReport {
        exported,
        status,
        files_hashed,
        collected,
    })
}

/// The first node that reads node `i` (where a context scan's errors belong).
fn consumer(def: &Definition, i: usize) -> usize {
    def.nodes
        .iter()
        .position(|n| n.inputs.contains(&i))
        .unwrap_or(i)
}
