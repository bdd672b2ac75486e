//! The scheduler: cache keys bottom-up, cache lookups, parallel execution, cancellation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use futures::future::join_all;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::{
    CacheKey, CachePolicy, CacheStorage, EventKind, ExecContext, Graph, NodeId, ProgressEvent,
    ProgressSender, Vertex,
};

/// How to solve.
#[derive(Debug, Clone)]
pub struct SolveOptions {
    /// At most this many vertices execute at once (cache lookups are not limited).
    pub max_parallelism: usize,
    /// At most this many offloaded vertices ([`Vertex::offloaded`]: work done on other
    /// machines) execute at once; they take no slot of `max_parallelism`.
    pub max_offloaded: usize,
    /// Ignore every stored result (results are still saved).
    pub no_cache: bool,
    /// Ignore the stored results of these vertices only.
    pub no_cache_nodes: BTreeSet<NodeId>,
    /// Set from outside (Ctrl-C) to stop the solve; running vertices see it through
    /// [`ExecContext::is_cancelled`].
    pub cancel: Arc<AtomicBool>,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            max_parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            max_offloaded: 16,
            no_cache: false,
            no_cache_nodes: BTreeSet::new(),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// How a vertex's output was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    /// Served from the cache.
    Cached,
    /// Executed in this solve.
    Executed,
}

/// The result of a solve: every reached vertex's output, status and cache key.
#[derive(Debug)]
pub struct Solved<O> {
    pub outputs: HashMap<NodeId, O>,
    pub status: BTreeMap<NodeId, NodeStatus>,
    pub keys: BTreeMap<NodeId, CacheKey>,
}

/// Why a solve failed: the first vertex that failed, with the caller's error.
#[derive(Debug, thiserror::Error)]
pub enum SolveError<E: std::error::Error + 'static> {
    /// A vertex's `exec` failed.
    #[error("{source}")]
    Exec {
        node: NodeId,
        #[source]
        source: E,
    },
    /// Loading or saving a cache record failed.
    #[error("cache storage failed: {source}")]
    Cache {
        node: NodeId,
        #[source]
        source: E,
    },
    /// A vertex's task panicked (a bug in seal).
    #[error("internal error: a build step panicked: {0}")]
    Panicked(String),
}

impl<E: std::error::Error + 'static> SolveError<E> {
    /// The vertex that failed, when known.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            SolveError::Exec { node, .. } | SolveError::Cache { node, .. } => Some(*node),
            SolveError::Panicked(_) => None,
        }
    }
}

type NodeResult<O> = Result<Arc<(O, NodeStatus, CacheKey)>, ()>;
/// A node's result as its dependents see it: `None` until its own task has finished. Each
/// node is driven by its own task only — dependents wait on the channel, they never poll the
/// node's future — so a chain of 500 steps is 500 tasks, not 500 nested polls on one stack.
type NodeResultRx<O> = watch::Receiver<Option<NodeResult<O>>>;

struct State<V: Vertex> {
    first_error: Mutex<Option<SolveError<V::Error>>>,
    cancelled: Arc<AtomicBool>,
    running: Mutex<BTreeSet<NodeId>>,
    semaphore: Semaphore,
    offloaded: Semaphore,
    progress: Option<ProgressSender>,
}

impl<V: Vertex> State<V> {
    fn fail(&self, error: SolveError<V::Error>) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = self.first_error.lock() {
            slot.get_or_insert(error);
        }
    }

    fn event(&self, node: NodeId, kind: EventKind) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(ProgressEvent {
                node,
                at: SystemTime::now(),
                kind,
            });
        }
    }
}

/// Solve every vertex that `roots` need; return their outputs or the first failure.
pub async fn solve<V, C>(
    graph: &Graph<V>,
    roots: &[NodeId],
    cache: Arc<C>,
    options: &SolveOptions,
    progress: Option<ProgressSender>,
) -> Result<Solved<V::Output>, SolveError<V::Error>>
where
    V: Vertex,
    C: CacheStorage<V>,
{
    let state: Arc<State<V>> = Arc::new(State {
        first_error: Mutex::new(None),
        cancelled: options.cancel.clone(),
        running: Mutex::new(BTreeSet::new()),
        semaphore: Semaphore::new(options.max_parallelism.max(1)),
        offloaded: Semaphore::new(options.max_offloaded.max(1)),
        progress,
    });
    let mut results: HashMap<NodeId, NodeResultRx<V::Output>> = HashMap::new();
    let mut tasks = JoinSet::new();
    for node in graph.reachable(roots) {
        let deps: Vec<NodeResultRx<V::Output>> = graph
            .inputs(node)
            .iter()
            .filter_map(|i| results.get(i).cloned())
            .collect();
        let ignore_cache = options.no_cache || options.no_cache_nodes.contains(&node);
        let (tx, rx) = watch::channel(None);
        results.insert(node, rx);
        let (vertex, cache, state) = (graph.vertex(node).clone(), cache.clone(), state.clone());
        tasks.spawn(async move {
            let result = run_node(node, vertex, deps, cache, state, ignore_cache).await;
            tx.send_replace(Some(result));
        });
    }

    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            if e.is_panic() {
                state.fail(SolveError::Panicked(format!("{e}")));
            }
        }
        if state.cancelled.load(Ordering::SeqCst) {
            tasks.abort_all();
        }
    }
    let cancelled_nodes: Vec<NodeId> = state
        .running
        .lock()
        .map(|r| r.iter().copied().collect())
        .unwrap_or_default();
    if let Some(error) = state.first_error.lock().ok().and_then(|mut e| e.take()) {
        for node in cancelled_nodes {
            if Some(node) != error.node() {
                state.event(node, EventKind::Error("cancelled".into()));
            }
        }
        return Err(error);
    }

    let mut solved = Solved {
        outputs: HashMap::new(),
        status: BTreeMap::new(),
        keys: BTreeMap::new(),
    };
    for (node, rx) in results {
        // Every task has finished, so every node has its result.
        if let Some(Ok(result)) = rx.borrow().as_ref() {
            let (output, status, key) = &**result;
            solved.outputs.insert(node, output.clone());
            solved.status.insert(node, *status);
            solved.keys.insert(node, *key);
        } else {
            return Err(SolveError::Panicked(format!(
                "vertex {node:?} did not finish"
            )));
        }
    }
    Ok(solved)
}

/// The result of a dependency, once its task has published it. A task that died without
/// publishing (a panic, or aborted after another failure) is a failed dependency.
async fn wait_for<O: Clone>(mut rx: NodeResultRx<O>) -> NodeResult<O> {
    match rx.wait_for(Option::is_some).await {
        Ok(result) => result.clone().unwrap_or(Err(())),
        Err(_) => Err(()),
    }
}

async fn run_node<V, C>(
    node: NodeId,
    vertex: Arc<V>,
    deps: Vec<NodeResultRx<V::Output>>,
    cache: Arc<C>,
    state: Arc<State<V>>,
    ignore_cache: bool,
) -> NodeResult<V::Output>
where
    V: Vertex,
    C: CacheStorage<V>,
{
    let mut inputs = Vec::with_capacity(deps.len());
    for dep in join_all(deps.into_iter().map(wait_for)).await {
        inputs.push(dep?.0.clone());
    }
    let cache_map = vertex.cache_map();
    let input_ids = match vertex.input_keys(&inputs).await {
        Ok(ids) if ids.len() == inputs.len() => ids,
        Ok(_) => {
            state.fail(SolveError::Panicked(format!(
                "vertex {node:?} gave a key part count unlike its input count"
            )));
            return Err(());
        }
        Err(source) => {
            state.event(node, EventKind::Error(source.to_string()));
            state.fail(SolveError::Exec { node, source });
            return Err(());
        }
    };
    let key = CacheKey::compute(&cache_map.digest, &input_ids);
    let cacheable = cache_map.policy == CachePolicy::Cache;
    if cacheable && !ignore_cache {
        let span = tracing::info_span!(
            target: "seal_trace",
            "cache lookup",
            node = node.0,
            hit = tracing::field::Empty
        );
        let loaded = span.in_scope(|| cache.load(&key));
        span.record("hit", matches!(loaded, Ok(Some(_))));
        match loaded {
            Ok(Some(output)) => {
                state.event(node, EventKind::Cached);
                return Ok(Arc::new((output, NodeStatus::Cached, key)));
            }
            Ok(None) => {}
            Err(source) => {
                state.fail(SolveError::Cache { node, source });
                return Err(());
            }
        }
    }
    if state.cancelled.load(Ordering::SeqCst) {
        return Err(());
    }
    let slots = if vertex.offloaded() {
        &state.offloaded
    } else {
        &state.semaphore
    };
    let _permit = slots.acquire().await.map_err(|_| ())?;
    if state.cancelled.load(Ordering::SeqCst) {
        return Err(());
    }
    if let Ok(mut running) = state.running.lock() {
        running.insert(node);
    }
    let cx = ExecContext::new(node, state.progress.clone(), state.cancelled.clone());
    cx.send(EventKind::Started);
    let started = Instant::now();
    let result = vertex.exec(&cx, &inputs).await;
    if let Ok(mut running) = state.running.lock() {
        running.remove(&node);
    }
    match result {
        Ok(output) => {
            if cacheable {
                let span = tracing::info_span!(target: "seal_trace", "cache save", node = node.0);
                if let Err(source) = span.in_scope(|| cache.save(&key, &output)) {
                    state.fail(SolveError::Cache { node, source });
                    return Err(());
                }
            }
            cx.send(EventKind::Done {
                elapsed: started.elapsed(),
            });
            Ok(Arc::new((output, NodeStatus::Executed, key)))
        }
        Err(source) => {
            cx.send(EventKind::Error(source.to_string()));
            state.fail(SolveError::Exec { node, source });
            Err(())
        }
    }
}
