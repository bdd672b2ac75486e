//! seal's solver: runs a DAG of opaque vertices in parallel and caches each one by content.
//!
//! The solver knows nothing of LLB, files, containers or RocksDB (DESIGN.md). A caller describes
//! each vertex through the [`Vertex`] trait — a definition digest ([`CacheMap`]) and an `exec` —
//! and stores results through the [`CacheStorage`] trait. The solver then
//!
//! - builds a petgraph DAG in which identical vertices collapse ([`GraphBuilder`]);
//! - computes every vertex's [`CacheKey`] bottom-up from its definition digest and the *content
//!   identity* of its inputs' outputs, so a re-run that yields identical bytes does not
//!   invalidate what follows (early cutoff);
//! - serves hits from the cache and executes misses concurrently, bounded by
//!   `max_parallelism`; the first failure cancels the rest;
//! - streams [`ProgressEvent`]s.
//!
//! ```
//! # use seal_solver::*;
//! # use std::sync::Arc;
//! #[derive(Clone)]
//! struct Text(String);
//! impl ContentId for Text {
//!     fn content_id(&self) -> Id { blake3::hash(self.0.as_bytes()).into() }
//! }
//! struct Upper(&'static str);
//! impl Vertex for Upper {
//!     type Output = Text;
//!     type Error = std::io::Error;
//!     fn cache_map(&self) -> CacheMap { CacheMap::new(blake3::hash(self.0.as_bytes()).into()) }
//!     async fn exec(&self, _cx: &ExecContext, inputs: &[Text]) -> std::io::Result<Text> {
//!         let mut s: String = inputs.iter().map(|t| t.0.as_str()).collect();
//!         s.push_str(&self.0.to_uppercase());
//!         Ok(Text(s))
//!     }
//! }
//! let mut graph = GraphBuilder::new();
//! let a = graph.add(Upper("a"), &[]);
//! let b = graph.add(Upper("b"), &[a]);
//! let graph = graph.build();
//! let rt = tokio::runtime::Runtime::new().unwrap();
//! let cache = Arc::new(MemoryCache::default());
//! let solved = rt.block_on(solve(&graph, &[b], cache, &SolveOptions::default(), None)).unwrap();
//! assert_eq!(solved.outputs[&b].0, "AB");
//! ```

mod cache;
mod graph;
mod id;
mod progress;
mod solve;

pub use cache::{CacheStorage, MemoryCache};
pub use graph::{Graph, GraphBuilder, NodeId};
pub use id::{CacheKey, Id};
pub use progress::{EventKind, ExecContext, ProgressEvent, ProgressSender};
pub use solve::{solve, NodeStatus, SolveError, SolveOptions, Solved};

use std::future::Future;

/// What the solver needs to know about a vertex before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheMap {
    /// Digest of the vertex's normalised definition (not of its inputs' content).
    pub digest: Id,
    /// Whether a result may be looked up and stored.
    pub policy: CachePolicy,
}

impl CacheMap {
    /// A cacheable vertex with this definition digest.
    pub fn new(digest: Id) -> CacheMap {
        CacheMap {
            digest,
            policy: CachePolicy::Cache,
        }
    }

    /// A vertex that runs on every solve (a context scan, an un-pinned download, a cheap merge).
    pub fn uncached(digest: Id) -> CacheMap {
        CacheMap {
            digest,
            policy: CachePolicy::Never,
        }
    }
}

/// Whether a vertex's result is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    Cache,
    Never,
}

/// The content identity of an output: equal ids mean byte-identical results.
pub trait ContentId {
    /// A hash of the output's content (for a layer, its diffID chain).
    fn content_id(&self) -> Id;
}

/// One node of the build graph, opaque to the solver.
pub trait Vertex: Send + Sync + 'static {
    /// The result of running the vertex; cheap to clone (descriptors, not bytes).
    type Output: Clone + Send + Sync + ContentId + 'static;
    /// The caller's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The definition digest and cache policy.
    fn cache_map(&self) -> CacheMap;

    /// Whether the vertex's work happens on another machine (a remote RUN): it waits on
    /// [`crate::SolveOptions::max_offloaded`] instead of the local `max_parallelism`, so
    /// remote steps are not bounded by this machine's cores.
    fn offloaded(&self) -> bool {
        false
    }

    /// The ids by which `inputs` enter this vertex's cache key, one per input, in order.
    ///
    /// By default each input's [`ContentId`]. A vertex that reads only a small part of an input
    /// returns an id of that part instead (BuildKit's content-based cache-map selectors): a COPY
    /// reads of the rootfs below it only the resolution of its destination, so a change
    /// elsewhere in that rootfs leaves it cached. Called once per solve, before the cache lookup.
    fn input_keys(
        &self,
        inputs: &[Self::Output],
    ) -> impl Future<Output = Result<Vec<Id>, Self::Error>> + Send {
        let ids = inputs.iter().map(ContentId::content_id).collect();
        std::future::ready(Ok(ids))
    }

    /// Produce the output from the inputs' outputs, in input order.
    fn exec(
        &self,
        cx: &ExecContext,
        inputs: &[Self::Output],
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}
