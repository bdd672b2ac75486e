//! What `seal build --trace` and `--graph` need from a build: the flags checked before it
//! starts, each node's fate read from the progress events, and the files written after it
//! ends (also when it failed: that is when a picture helps most).

use seal_engine::llb::Definition;
use seal_solver::{EventKind, ProgressEvent};

use crate::args::observe::ObserveArgs;
use crate::failure::Failure;
use crate::graph::{self, NodeState};
use crate::trace::{self, NodeLabel};

/// The files a build writes about itself.
pub struct Observer {
    args: ObserveArgs,
    states: Vec<NodeState>,
}

impl Observer {
    /// Check the flags before anything runs: an SVG needs `dot`, and every file a directory
    /// to go in (a build of minutes must not end in "no such directory").
    pub fn new(args: &ObserveArgs) -> Result<Observer, Failure> {
        for (flag, path) in [("--trace", &args.trace), ("--graph", &args.graph)] {
            let Some(path) = path else { continue };
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if parent.is_some_and(|p| !p.is_dir()) {
                return Err(Failure::Usage(format!(
                    "{flag} {}: the directory {} does not exist",
                    path.display(),
                    parent.map_or_else(String::new, |p| p.display().to_string())
                )));
            }
        }
        if let Some(path) = args.graph.as_deref().filter(|p| graph::wants_svg(p)) {
            graph::check_dot(path).map_err(Failure::Usage)?;
        }
        Ok(Observer {
            args: args.clone(),
            states: Vec::new(),
        })
    }

    /// One progress event of the build.
    pub fn see(&mut self, event: &ProgressEvent) {
        let node = event.node.0 as usize;
        let state = match &event.kind {
            EventKind::Cached => NodeState::Cached,
            EventKind::Done { .. } => NodeState::Executed,
            EventKind::Error(message) if message == "cancelled" => NodeState::NotRun,
            EventKind::Error(_) => NodeState::Failed,
            _ => return,
        };
        if self.states.len() <= node {
            self.states.resize(node + 1, NodeState::NotRun);
        }
        self.states[node] = state;
    }

    /// Write the trace and the graph of a build that ran; `failed` is the node a failed
    /// build's error names.
    pub fn finish(
        &mut self,
        definition: &Definition,
        source: &[u8],
        file_name: &str,
        failed: Option<usize>,
    ) -> Result<(), String> {
        if let Some(path) = &self.args.trace {
            let recorder = trace::recorder().ok_or("--trace: the trace recorder did not start")?;
            recorder
                .write(path, "seal build", &|node| label(definition, node as usize))
                .map_err(|e| format!("--trace: writing {}: {e}", path.display()))?;
        }
        if let Some(path) = &self.args.graph {
            self.states
                .resize(definition.nodes.len(), NodeState::NotRun);
            if let Some(node) = failed.filter(|&n| n < self.states.len()) {
                self.states[node] = NodeState::Failed;
            }
            let text = graph::dot(definition, &self.states, source, file_name);
            graph::write(path, &text)?;
        }
        Ok(())
    }
}

/// How the trace names node `i`: its step, or what it does for the step that reads it.
fn label(definition: &Definition, i: usize) -> Option<NodeLabel> {
    let node = definition.nodes.get(i)?;
    if let Some(step) = &node.metadata.description {
        return Some(NodeLabel {
            name: step.clone(),
            step: step.clone(),
            kubefile_step: !node.metadata.quiet,
        });
    }
    let what = graph::internal_label(&node.op);
    let name_and_step = definition
        .nodes
        .iter()
        .find(|n| n.inputs.contains(&i) && n.metadata.description.is_some())
        .and_then(|n| n.metadata.description.clone())
        .map(|step| (format!("{what} for {step}"), step));
    let (name, step) = name_and_step.unwrap_or_else(|| (what.clone(), what));
    Some(NodeLabel {
        name,
        step,
        kubefile_step: false,
    })
}
