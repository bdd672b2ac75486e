//! What a solve learns about each node just before its cache lookup: the ids its inputs enter
//! its cache key with, the content ids of those inputs' outputs, and the build-context
//! selections it reads. [`crate::vertex::OpVertex::input_keys`] fills it; explanations and
//! step records read it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use seal_solver::Id;

use crate::context::ContextSelection;
use crate::output::Output;

/// Shared by every vertex of one build.
#[derive(Debug, Default)]
pub struct Observed {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Node -> the ids its inputs entered its cache key with.
    keys: HashMap<usize, Vec<Id>>,
    /// Node -> the content id of its output, as a consumer saw it.
    outputs: HashMap<usize, Id>,
    /// Local source node -> what it selected.
    selections: HashMap<usize, Arc<ContextSelection>>,
}

impl Observed {
    /// Node `node`, reading the nodes `input_nodes` whose outputs are `inputs` with content
    /// ids `content`, enters its cache key with `keys`.
    pub fn note(
        &self,
        node: usize,
        input_nodes: &[usize],
        inputs: &[Output],
        content: &[Id],
        keys: &[Id],
    ) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.keys.insert(node, keys.to_vec());
        for ((&input, output), id) in input_nodes.iter().zip(inputs).zip(content) {
            inner.outputs.insert(input, *id);
            if let Output::Context(selection) = output {
                inner.selections.insert(input, selection.clone());
            }
        }
    }

    /// The ids node `node`'s inputs entered its key with, once its lookup was prepared.
    pub fn keys(&self, node: usize) -> Option<Vec<Id>> {
        self.inner.lock().ok()?.keys.get(&node).cloned()
    }

    /// The content id of node `node`'s output, once a node reading it was prepared.
    pub fn output(&self, node: usize) -> Option<Id> {
        self.inner.lock().ok()?.outputs.get(&node).copied()
    }

    /// What the Local source node `node` selected.
    pub fn selection(&self, node: usize) -> Option<Arc<ContextSelection>> {
        self.inner.lock().ok()?.selections.get(&node).cloned()
    }
}
