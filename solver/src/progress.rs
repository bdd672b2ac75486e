//! Progress events streamed while solving, and the per-exec context a vertex reports through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc::UnboundedSender;

use crate::NodeId;

/// Where progress events go.
pub type ProgressSender = UnboundedSender<ProgressEvent>;

/// Something that happened to one vertex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent {
    pub node: NodeId,
    pub at: SystemTime,
    pub kind: EventKind,
}

/// The kinds of [`ProgressEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// Execution began (a cache miss).
    Started,
    /// Served from the cache; nothing executed.
    Cached,
    /// A line of output or status.
    Log(String),
    /// Something the user should know that does not fail the vertex (a file a RUN made that
    /// the layer cannot hold, a manifest read by the fallback rule).
    Warning(String),
    /// Bytes processed so far out of an optional total.
    Bytes { done: u64, total: Option<u64> },
    /// Execution finished.
    Done { elapsed: Duration },
    /// Execution failed (or was cancelled because a sibling failed).
    Error(String),
    /// Why the vertex executes, in the caller's terms; sent right after [`EventKind::Started`]
    /// by callers that explain their misses (the solver itself never sends it).
    Explain(String),
}

/// Handed to [`crate::Vertex::exec`]: report progress, notice cancellation.
#[derive(Clone)]
pub struct ExecContext {
    node: NodeId,
    progress: Option<ProgressSender>,
    cancelled: Arc<AtomicBool>,
}

impl ExecContext {
    pub(crate) fn new(
        node: NodeId,
        progress: Option<ProgressSender>,
        cancelled: Arc<AtomicBool>,
    ) -> Self {
        ExecContext {
            node,
            progress,
            cancelled,
        }
    }

    /// A context that reports nowhere, for calling `exec` outside a solve.
    pub fn detached() -> ExecContext {
        ExecContext::new(NodeId(0), None, Arc::new(AtomicBool::new(false)))
    }

    /// A context outside any solve that reports to `progress` (as node 0) and is cancelled
    /// through `cancelled`: a step run on behalf of another machine (`seal`'s cloud server).
    pub fn standalone(progress: Option<ProgressSender>, cancelled: Arc<AtomicBool>) -> ExecContext {
        ExecContext::new(NodeId(0), progress, cancelled)
    }

    /// The vertex being executed.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Report a line of output.
    pub fn log(&self, line: impl Into<String>) {
        self.send(EventKind::Log(line.into()));
    }

    /// Report a warning.
    pub fn warn(&self, message: impl Into<String>) {
        self.send(EventKind::Warning(message.into()));
    }

    /// Report bytes processed.
    pub fn bytes(&self, done: u64, total: Option<u64>) {
        self.send(EventKind::Bytes { done, total });
    }

    /// True once another vertex failed: long work should stop at the next chance.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// A flag that turns true on cancellation, for blocking code on other threads.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    pub(crate) fn send(&self, kind: EventKind) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(ProgressEvent {
                node: self.node,
                at: SystemTime::now(),
                kind,
            });
        }
    }
}
