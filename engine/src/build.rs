//! One build: check the sources, solve the Definition, export the image.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use seal_solver::{
    solve, CachePolicy, GraphBuilder, NodeId, NodeStatus, ProgressSender, SolveError, SolveOptions,
    Vertex,
};
use seal_store::{Reference, Store};

use crate::apps;
use crate::cache::StoreCache;
use crate::context;
use crate::explain::{self, Explainer, Observed};
use crate::export::{export, Exported};
use crate::ignore::IgnoreMatcher;
use crate::image_spec::ImageSpec;
use crate::llb::{Definition, Op, SourceOp};
use crate::ops::ExecEnv;
use crate::output::{CollectedImages, LayerChain, Output};
use crate::remote_cache::{
    export_cache, import_cache, CacheExport, CacheLocation, ExportReport, ImportedCache,
};
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
    /// `--remote-executor`: who runs RUN steps of mode `remote` (the caller keeps a clone to
    /// read its counters after the build).
    pub remote: Option<Arc<crate::executor::remote::RemoteExecutor>>,
    /// `--cloud-host`: who runs RUN steps of mode `cloud` (the caller keeps a clone to read
    /// its counters after the build).
    pub cloud: Option<Arc<crate::executor::cloud::CloudExecutor>>,
    /// Follow each executing step's `Started` event with an `Explain` event saying why.
    pub explain: bool,
    /// The name the steps' records are kept under (the image name; with several platforms,
    /// the name and the platform).
    pub steps_name: String,
    /// `--cache-from`: caches consulted after the store, in order.
    pub cache_from: Vec<CacheLocation>,
    /// `--cache-to`: where this build's cache records go once the image is exported.
    pub cache_to: Vec<CacheExport>,
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
    /// What each step read, as recorded under `request.name` (the caller records it under
    /// the image's other names with [`explain::record::save`]).
    pub steps: Vec<explain::NewRecord>,
    /// Per `--cache-from` that could be read: its location and record count.
    pub imported: Vec<(CacheLocation, usize)>,
    /// Per `--cache-to` that succeeded.
    pub exported_caches: Vec<(CacheLocation, ExportReport)>,
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
        remote: request.remote.clone(),
        cloud: request.cloud.clone(),
    });
    let observed = Arc::new(Observed::default());
    let mut graph = GraphBuilder::new();
    // Probed only when a RUN here will mount snapshots (a COPY-only build mounts nothing).
    let images = crate::vertex::has_local_run(def) && crate::executor::images_usable(&store)?;
    let feeds_run = crate::vertex::feeds_local_run(def, images);
    for (i, node) in def.nodes.iter().enumerate() {
        let inputs: Vec<NodeId> = node.inputs.iter().map(|&n| NodeId(n as u32)).collect();
        let id = graph.add(
            OpVertex {
                node: node.clone(),
                index: i,
                env: env.clone(),
                observed: observed.clone(),
                feeds_run: feeds_run[i],
            },
            &inputs,
        );
        if id != NodeId(i as u32) {
            return Err(EngineError::Internal("the Definition has duplicate nodes".into()).into());
        }
    }
    let graph = graph.build();
    let imports = import_all(&store, &request).await;
    let imported = imports
        .iter()
        .map(|i| (i.location.clone(), i.len()))
        .collect();
    let cache = Arc::new(StoreCache::with_imports(store.clone(), imports));
    let root = NodeId(def.output as u32);
    let name = request.steps_name.clone();
    // What this name's last build of each step read: compared against to explain, and to
    // write only what changed.
    let previous = explain::record::load(&store, &name)?;
    let progress = match progress {
        Some(outer) if request.explain => Some(explain::explaining(
            Arc::new(Explainer {
                definition: def.clone(),
                name: name.clone(),
                store: store.clone(),
                previous: previous.clone(),
                observed: observed.clone(),
                no_cache: request.options.no_cache,
                no_cache_nodes: request.options.no_cache_nodes.clone(),
            }),
            outer,
        )),
        other => other,
    };
    let solved = solve(&graph, &[root], cache.clone(), &request.options, progress).await;
    // Snapshots COPY steps left to finish in the background and no RUN waited for (its
    // result was cached, or the build failed first): done before the build returns.
    let _ = tokio::task::spawn_blocking(crate::layers::snapshot_tee::wait_all).await;
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
    let exported = {
        // Entered only around the synchronous export: a span guard must not live across an
        // await (it is not Send).
        let _export = tracing::info_span!(target: "seal_trace", "export").entered();
        export(
            &store,
            chain,
            &request.image,
            &applications,
            collected.as_deref(),
            request.name.as_ref(),
            &request.seal_version,
        )?
    };
    let status = (0..def.nodes.len())
        .map(|i| solved.status.get(&NodeId(i as u32)).copied())
        .collect();
    let steps = explain::records_of(def, &solved.outputs, &observed);
    explain::record::save(&store, &name, &previous, &steps, seal_store::now_unix())?;

    // Every cached step's record, for `--cache-to`.
    let records: Vec<([u8; 32], LayerChain)> = solved
        .keys
        .iter()
        .filter(|(node, _)| graph.vertex(**node).cache_map().policy == CachePolicy::Cache)
        .filter_map(|(node, key)| match solved.outputs.get(node) {
            Some(Output::Layers(chain)) => Some((*key.0.as_bytes(), chain.clone())),
            _ => None,
        })
        .collect();
    // Image collection's scans, so an importer collects without reading the layers.
    let scans: Vec<String> = def
        .nodes
        .iter()
        .filter_map(|n| match (&n.op, n.inputs.first()) {
            (Op::Collect(op), Some(&input)) => match solved.outputs.get(&NodeId(input as u32)) {
                Some(Output::Layers(chain)) => Some(crate::ops::collect::scan_key(op, chain)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let exported_caches = export_all(&store, &request, records, scans, chain.clone()).await?;
    Ok(BuildReport {
        exported,
        status,
        files_hashed,
        collected,
        steps,
        imported,
        exported_caches,
    })
}

/// Read every `--cache-from`, in order. One that cannot be read (unreachable, missing,
/// unauthorised, malformed) is a warning naming it and why; the build goes on without it.
async fn import_all(store: &Arc<Store>, request: &BuildRequest) -> Vec<ImportedCache> {
    let (locations, registries) = (request.cache_from.clone(), request.registries.clone());
    let store = store.clone();
    let read = tokio::task::spawn_blocking(move || {
        locations
            .iter()
            .filter_map(|location| {
                let imported = import_cache(location, &registries).and_then(|cache| {
                    cache.adopt_collect(&store)?;
                    Ok(cache)
                });
                match imported {
                    Ok(cache) => Some(cache),
                    Err(e) => {
                        tracing::warn!("--cache-from {location} is not used: {e}");
                        None
                    }
                }
            })
            .collect()
    });
    read.await.unwrap_or_default()
}

/// Write every `--cache-to`. A failure fails the build, unless `ignore-error=true` made it a
/// warning.
async fn export_all(
    store: &Arc<Store>,
    request: &BuildRequest,
    records: Vec<([u8; 32], LayerChain)>,
    scans: Vec<String>,
    image: LayerChain,
) -> Result<Vec<(CacheLocation, ExportReport)>, BuildError> {
    if request.cache_to.is_empty() {
        return Ok(Vec::new());
    }
    let (store, exports, registries) = (
        store.clone(),
        request.cache_to.clone(),
        request.registries.clone(),
    );
    let written = tokio::task::spawn_blocking(move || {
        let mut done = Vec::new();
        for export in &exports {
            match export_cache(&store, &records, &scans, &image, export, &registries) {
                Ok(report) => done.push((export.location.clone(), report)),
                Err(e) if export.ignore_error => {
                    tracing::warn!(
                        "--cache-to {} failed (ignore-error=true): {e}",
                        export.location
                    )
                }
                Err(e) => {
                    return Err(EngineError::CacheExport {
                        location: export.location.to_string(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        Ok(done)
    });
    written
        .await
        .map_err(|e| EngineError::Internal(format!("the cache export failed: {e}")))?
        .map_err(BuildError::from)
}

/// The first node that reads node `i` (where a context scan's errors belong).
fn consumer(def: &Definition, i: usize) -> usize {
    def.nodes
        .iter()
        .position(|n| n.inputs.contains(&i))
        .unwrap_or(i)
}
