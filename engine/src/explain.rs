//! Why a step ran (`seal build --explain`), and what a build remembers so the next one can
//! say it exactly.
//!
//! Every build records, per image name and step position, what each step read
//! ([`record`]): its definition, the ARG/ENV values it saw, the ids its inputs entered its
//! cache key with, its output and layers, and its source files. With `--explain`, each step
//! that executes gets one [`seal_solver::EventKind::Explain`] event right after its `Started`
//! event, computed by [`reason::Explainer`] from those records and what the solve observed
//! ([`observed`]). The store keeps the records (`seal_store`'s `steps` column family);
//! `seal history` reads their build times.

pub mod observed;
pub mod reason;
pub mod record;

use std::collections::HashMap;
use std::sync::Arc;

use seal_solver::{ContentId, EventKind, NodeId, ProgressEvent, ProgressSender};

pub use observed::Observed;
pub use reason::Explainer;
pub use record::{NewRecord, StepRecord};

use crate::llb::{Definition, Op};
use crate::output::Output;

/// The records of the steps a successful solve reached, from its outputs and what it
/// observed.
pub fn records_of(
    definition: &Definition,
    outputs: &HashMap<NodeId, Output>,
    observed: &Observed,
) -> Vec<NewRecord> {
    let mut records = Vec::new();
    for (i, node) in definition.nodes.iter().enumerate() {
        let Some(position) = record::position(&node.metadata) else {
            continue;
        };
        let (Some(output), Some(keys)) = (outputs.get(&NodeId(i as u32)), observed.keys(i)) else {
            continue;
        };
        let layers = match (&node.op, output) {
            (Op::File(_) | Op::Exec(_), Output::Layers(chain)) => {
                chain.layers.iter().map(|l| l.digest.to_string()).collect()
            }
            _ => Vec::new(),
        };
        let selection = node
            .inputs
            .first()
            .and_then(|&input| observed.selection(input));
        records.push(NewRecord {
            position,
            record: record::record_of(node, &keys, output.content_id(), layers),
            selection,
        });
    }
    records
}

/// A sender that passes every event on to `outer`, following each `Started` of a step with
/// its [`EventKind::Explain`]. Must be called inside a tokio runtime.
pub fn explaining(explainer: Arc<Explainer>, outer: ProgressSender) -> ProgressSender {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ProgressEvent>();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let reason = match event.kind {
                EventKind::Started => explainer.reason(event.node.0 as usize),
                _ => None,
            };
            let (node, at) = (event.node, event.at);
            if outer.send(event).is_err() {
                break;
            }
            if let Some(reason) = reason {
                let _ = outer.send(ProgressEvent {
                    node,
                    at,
                    kind: EventKind::Explain(reason),
                });
            }
        }
    });
    tx
}
