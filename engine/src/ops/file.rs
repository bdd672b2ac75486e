//! FileOp (COPY and friends): builds one layer straight from its input, never from the layers
//! below it, so its cache entry survives changes to earlier steps.
//!
//! COPY follows the seed's destination semantics (KUBEFILE.md): each source lands at
//! `<dest>/<basename>`, or at `<dest>` itself when dest's last element equals the basename;
//! a directory written `dir/.` contributes its contents.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use seal_store::BlobStore;

use crate::context::{ContextSelection, EntryKind};
use crate::layer::{write_layer, LayerEntry, LayerEntryKind};
use crate::llb::{CopyAction, FileAction, FileOp};
use crate::output::{LayerChain, Output};
use crate::paths;
use crate::EngineError;

/// Build the layer of `op` from `inputs` (input 0: the context selection for copies).
pub fn exec(op: &FileOp, inputs: &[Output], blobs: &BlobStore, cancel: &AtomicBool) -> Result<Output, EngineError> {
    let mut entries: BTreeMap<String, LayerEntry> = BTreeMap::new();
    for action in &op.actions {
        match action {
            FileAction::Copy(copy) => {
                let Some(Output::Context(selection)) = inputs.first() else {
                    return Err(EngineError::NotSupported("COPY from a stage or an image".into()));
                };
                plan_copy(copy, selection, &mut entries)?;
            }
            FileAction::Mkdir { path, mode } => {
                let path = paths::clean(path);
                entries.insert(path.clone(), LayerEntry { path, kind: LayerEntryKind::Dir, mode: *mode, uid: 0, gid: 0 });
            }
            FileAction::Mkfile { path, mode, data } => {
                let path = paths::clean(path);
                entries.insert(path.clone(), LayerEntry { path, kind: LayerEntryKind::Bytes(data.clone()), mode: *mode, uid: 0, gid: 0 });
            }
            FileAction::Rm { path } => {
                // In a diff layer, removal is an OCI whiteout.
                let path = paths::clean(path);
                let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                let whiteout = paths::join(parent, &format!(".wh.{}", paths::basename(&path)));
                entries.insert(whiteout.clone(), LayerEntry { path: whiteout, kind: LayerEntryKind::Bytes(Vec::new()), mode: 0o644, uid: 0, gid: 0 });
            }
        }
    }
    let owner = op.actions.iter().find_map(|a| match a {
        FileAction::Copy(c) => c.chown,
        _ => None,
    });
    add_missing_parents(&mut entries, owner.unwrap_or((0, 0)));
    let ordered: Vec<LayerEntry> = entries.into_values().collect();
    let layer = write_layer(blobs, &ordered, op.format, cancel)?;
    Ok(Output::Layers(LayerChain { layers: vec![layer], base_config: None }))
}

fn plan_copy(copy: &CopyAction, selection: &ContextSelection, entries: &mut BTreeMap<String, LayerEntry>) -> Result<(), EngineError> {
    if selection.patterns.len() != copy.sources.len() {
        return Err(EngineError::Internal("COPY sources and context patterns disagree".into()));
    }
    let dest = paths::clean(&copy.dest);
    let (uid, gid) = copy.chown.unwrap_or((0, 0));
    for (source, matches) in copy.sources.iter().zip(&selection.patterns) {
        for m in matches {
            let root_is_dir = m.entries.first().is_some_and(|e| e.kind == EntryKind::Dir);
            let contents_only = root_is_dir && (source.contents_only || m.name.is_empty());
            let target = if contents_only {
                dest.clone()
            } else if paths::basename(&dest) == m.name {
                dest.clone()
            } else {
                paths::join(&dest, &m.name)
            };
            for e in &m.entries {
                if contents_only && e.rel.is_empty() {
                    continue;
                }
                let path = paths::join(&target, &e.rel);
                if path.is_empty() {
                    continue;
                }
                let kind = match &e.kind {
                    EntryKind::Dir => LayerEntryKind::Dir,
                    EntryKind::Symlink { target } => LayerEntryKind::Symlink { target: target.clone() },
                    EntryKind::File { size, blake3 } => LayerEntryKind::File { source: selection.host_path(m, e), size: *size, blake3: *blake3 },
                };
                let mode = match (&e.kind, copy.chmod) {
                    (EntryKind::Symlink { .. }, _) => 0o777,
                    (_, Some(chmod)) => chmod,
                    (_, None) => e.mode,
                };
                entries.insert(path.clone(), LayerEntry { path, kind, mode, uid, gid });
            }
        }
    }
    Ok(())
}

/// Every entry's ancestors must be in the tar before it: add the missing ones as 0755 dirs.
fn add_missing_parents(entries: &mut BTreeMap<String, LayerEntry>, (uid, gid): (u32, u32)) {
    let mut missing = Vec::new();
    for path in entries.keys() {
        let mut idx = 0;
        while let Some(slash) = path[idx..].find('/') {
            let parent = &path[..idx + slash];
            if !entries.contains_key(parent) {
                missing.push(parent.to_string());
            }
            idx += slash + 1;
        }
    }
    for path in missing {
        entries.entry(path.clone()).or_insert(LayerEntry { path, kind: LayerEntryKind::Dir, mode: 0o755, uid, gid });
    }
}
