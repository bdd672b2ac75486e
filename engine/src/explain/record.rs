//! What a build remembers of each step it ran or reused, per image name and step position
//! (`stage/step`): the step's text, the ARG/ENV values it saw, its definition digest, the ids
//! its inputs entered its cache key with, its output, its layers and when it was built; and
//! apart, the source files it read. The next build of the same name compares against these.
//!
//! A record is rewritten only when something in it changed, so a no-op build writes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use seal_solver::Id;
use seal_store::{StepWrite, Store};
use serde::{Deserialize, Serialize};

use crate::context::{ContextSelection, EntryKind};
use crate::llb::{Node, OpMetadata, SeenVar, VarKind};
use crate::paths;
use crate::EngineError;

/// What one build of one step read and made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// `[2/5] COPY a.txt /etc`.
    pub description: String,
    /// The instruction as written.
    pub text: String,
    /// The op's own definition digest (hex), without its inputs.
    pub digest: String,
    /// The ARG/ENV values it saw.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<RecordedVar>,
    /// A FROM image: `reference@manifest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The ids its inputs entered its cache key with (hex), in input order.
    pub inputs: Vec<String>,
    /// The content id of its output (hex).
    pub output: String,
    /// The blob digests of the layers it made (a COPY, ADD or RUN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
    /// Unix seconds of the build that made `output` for this name.
    pub built_at: u64,
}

/// A [`SeenVar`] as records keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedVar {
    /// `ARG` or `ENV`.
    pub kind: String,
    pub name: String,
    pub value: Option<String>,
}

impl From<&SeenVar> for RecordedVar {
    fn from(v: &SeenVar) -> RecordedVar {
        RecordedVar {
            kind: match v.kind {
                VarKind::Arg => "ARG",
                VarKind::Env => "ENV",
            }
            .into(),
            name: v.name.clone(),
            value: v.value.clone(),
        }
    }
}

/// One source file as a step read it: path in the context (or stage), type, mode and a
/// fingerprint of the content (bytes or link target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry(pub String, pub char, pub u32, pub String);

/// The files of a step's sources, sorted by path.
pub type FileList = Vec<FileEntry>;

/// A step's record as this build made it, with the context selection it read, if any (its
/// file list is made only when the record is written).
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub position: String,
    pub record: StepRecord,
    pub selection: Option<Arc<ContextSelection>>,
}

/// The key of a step: `stage/step`; `None` for nodes that are not Kubefile steps.
pub fn position(metadata: &OpMetadata) -> Option<String> {
    if metadata.quiet || metadata.description.is_none() {
        return None;
    }
    Some(format!("{}/{}", metadata.stage.as_deref()?, metadata.step?))
}

/// The record of `node` for this build: `inputs` are the ids its inputs entered its key with,
/// `output` its output's content id, `layers` the blobs it made. `built_at` is filled by
/// [`save`], which knows the previous record.
pub fn record_of(node: &Node, inputs: &[Id], output: Id, layers: Vec<String>) -> StepRecord {
    let image = match &node.op {
        crate::llb::Op::Source(crate::llb::SourceOp::Image {
            reference,
            manifest,
        }) => Some(format!("{reference}@{manifest}")),
        _ => None,
    };
    StepRecord {
        description: node.metadata.description.clone().unwrap_or_default(),
        text: node.metadata.text.clone().unwrap_or_default(),
        digest: crate::llb::op_digest(&node.op, &[]).to_hex(),
        vars: node.metadata.vars.iter().map(RecordedVar::from).collect(),
        image,
        inputs: inputs.iter().map(Id::to_hex).collect(),
        output: output.to_hex(),
        layers,
        built_at: 0,
    }
}

/// The files a context selection holds, as a [`FileList`].
pub fn file_list(selection: &ContextSelection) -> FileList {
    let mut files: FileList = Vec::new();
    for m in selection.patterns.iter().flatten() {
        for e in &m.entries {
            let (kind, fingerprint) = match &e.kind {
                EntryKind::File { blake3, .. } => ('f', fingerprint(blake3)),
                EntryKind::Dir => ('d', String::new()),
                EntryKind::Symlink { target } => ('l', target.clone()),
            };
            let path = paths::join(&m.resolved, &e.rel);
            files.push(FileEntry(path, kind, e.mode, fingerprint));
        }
    }
    // Two patterns may select one path: keep its first entry.
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.dedup_by(|later, first| later.0 == first.0);
    files
}

/// The step records of `name`, by position (unreadable ones are skipped: they only cost an
/// explanation).
pub fn load(store: &Store, name: &str) -> Result<BTreeMap<String, StepRecord>, EngineError> {
    Ok(store
        .steps(name)?
        .into_iter()
        .filter_map(|(position, bytes)| {
            serde_json::from_slice(&bytes)
                .ok()
                .map(|record| (position, record))
        })
        .collect())
}

/// The file list stored with the step of `name` at `position`.
pub fn load_files(store: &Store, name: &str, position: &str) -> Option<FileList> {
    let bytes = store.step_files(name, position).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Write the records of `name` that differ from `previous`; `now` is the build's time. A
/// record whose output is unchanged keeps its `built_at`; a file list is written only when the
/// step's sources changed. Returns how many records were written.
pub fn save(
    store: &Store,
    name: &str,
    previous: &BTreeMap<String, StepRecord>,
    records: &[NewRecord],
    now: u64,
) -> Result<usize, EngineError> {
    let mut writes = Vec::new();
    for new in records {
        let old = previous.get(&new.position);
        let mut record = new.record.clone();
        record.built_at = match old {
            Some(old) if old.output == record.output => old.built_at,
            _ => now,
        };
        if old == Some(&record) {
            continue;
        }
        let sources_changed = old.is_none_or(|old| old.inputs.first() != record.inputs.first());
        let files = match &new.selection {
            Some(selection) if sources_changed => Some(
                serde_json::to_vec(&file_list(selection))
                    .map_err(|e| EngineError::Internal(e.to_string()))?,
            ),
            _ => None,
        };
        writes.push(StepWrite {
            position: new.position.clone(),
            record: serde_json::to_vec(&record)
                .map_err(|e| EngineError::Internal(e.to_string()))?,
            files,
        });
    }
    store.put_steps(name, &writes)?;
    Ok(writes.len())
}

/// The first 8 bytes of a content hash as hex: plenty to tell two versions of one path apart,
/// and short, since a context can have tens of thousands of files.
fn fingerprint(hash: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(16);
    for &b in &hash[..8] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A selection of one file `a` whose content hash is all `byte`.
    fn selection(byte: u8) -> Arc<ContextSelection> {
        use crate::context::{ContextEntry, SourceMatch};
        Arc::new(ContextSelection {
            dir: "/ctx".into(),
            patterns: vec![vec![SourceMatch {
                name: "a".into(),
                resolved: "a".into(),
                entries: vec![ContextEntry {
                    rel: String::new(),
                    kind: EntryKind::File {
                        size: 1,
                        blake3: [byte; 32],
                    },
                    mode: 0o644,
                    stat: None,
                    xattrs: Default::default(),
                }],
            }]],
            content_id: Id::default(),
            files_hashed: 0,
        })
    }

    fn record(output: &str, byte: u8) -> NewRecord {
        NewRecord {
            position: "stage-0/2".into(),
            record: StepRecord {
                description: "[2/2] COPY a /x".into(),
                text: "COPY a /x".into(),
                digest: "d".into(),
                vars: vec![],
                image: None,
                inputs: vec![format!("sel-{output}"), "rootfs".into()],
                output: output.into(),
                layers: vec![],
                built_at: 0,
            },
            selection: Some(selection(byte)),
        }
    }

    #[test]
    fn only_changed_records_are_written_and_unchanged_outputs_keep_their_time() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), &mut || {}).unwrap();
        assert_eq!(
            save(&store, "n", &BTreeMap::new(), &[record("one", 1)], 100).unwrap(),
            1
        );
        let first = load(&store, "n").unwrap();
        assert_eq!(first["stage-0/2"].built_at, 100);
        assert_eq!(
            load_files(&store, "n", "stage-0/2").unwrap(),
            [FileEntry("a".into(), 'f', 0o644, "01".repeat(8))]
        );
        // The same record later: nothing to write, the time stays.
        assert_eq!(
            save(&store, "n", &first, &[record("one", 1)], 200).unwrap(),
            0
        );
        // Another output: rewritten with the new time and the new files.
        assert_eq!(
            save(&store, "n", &first, &[record("two", 2)], 300).unwrap(),
            1
        );
        let second = load(&store, "n").unwrap();
        assert_eq!(second["stage-0/2"].built_at, 300);
        assert_eq!(
            load_files(&store, "n", "stage-0/2").unwrap()[0].3,
            "02".repeat(8)
        );
    }
}
