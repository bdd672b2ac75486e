//! The build DAG: vertices and their ordered inputs, identical vertices collapsed.

use std::collections::HashMap;
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, EdgeRef, Reversed};
use petgraph::Direction;

use crate::{Id, Vertex};

/// A vertex's position in a [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    fn index(self) -> NodeIndex {
        NodeIndex::new(self.0 as usize)
    }
}

/// Adds vertices in dependency order; a vertex equal to one already added (same definition
/// digest, same inputs) is not added twice.
pub struct GraphBuilder<V> {
    graph: DiGraph<Arc<V>, u32>,
    seen: HashMap<(Id, Vec<NodeId>), NodeId>,
}

impl<V: Vertex> Default for GraphBuilder<V> {
    fn default() -> Self {
        GraphBuilder::new()
    }
}

impl<V: Vertex> GraphBuilder<V> {
    /// An empty graph.
    pub fn new() -> Self {
        GraphBuilder {
            graph: DiGraph::new(),
            seen: HashMap::new(),
        }
    }

    /// Add `vertex` reading `inputs` (already added), returning its id, or the id of an identical
    /// vertex added before.
    pub fn add(&mut self, vertex: V, inputs: &[NodeId]) -> NodeId {
        let key = (vertex.cache_map().digest, inputs.to_vec());
        if let Some(&id) = self.seen.get(&key) {
            return id;
        }
        let node = self.graph.add_node(Arc::new(vertex));
        for (slot, input) in inputs.iter().enumerate() {
            self.graph.add_edge(input.index(), node, slot as u32);
        }
        let id = NodeId(node.index() as u32);
        self.seen.insert(key, id);
        id
    }

    /// Freeze the graph.
    pub fn build(self) -> Graph<V> {
        Graph { graph: self.graph }
    }
}

/// A frozen DAG of vertices. Node ids are assigned in insertion order, which is topological
/// because inputs must exist before the vertex that reads them.
pub struct Graph<V> {
    graph: DiGraph<Arc<V>, u32>,
}

impl<V: Vertex> Graph<V> {
    /// Number of vertices.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// True when the graph has no vertex.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The vertex behind `id`.
    pub fn vertex(&self, id: NodeId) -> &Arc<V> {
        &self.graph[id.index()]
    }

    /// The inputs of `id`, in slot order.
    pub fn inputs(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(u32, NodeId)> = self
            .graph
            .edges_directed(id.index(), Direction::Incoming)
            .map(|e| (*e.weight(), NodeId(e.source().index() as u32)))
            .collect();
        edges.sort_unstable();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// Every vertex that `roots` depend on (roots included), in topological order.
    pub fn reachable(&self, roots: &[NodeId]) -> Vec<NodeId> {
        let reversed = Reversed(&self.graph);
        let mut keep = vec![false; self.graph.node_count()];
        for root in roots {
            let mut dfs = Dfs::new(reversed, root.index());
            while let Some(n) = dfs.next(reversed) {
                keep[n.index()] = true;
            }
        }
        (0..self.graph.node_count() as u32)
            .filter(|&i| keep[i as usize])
            .map(NodeId)
            .collect()
    }
}
