//! COPY's layer entries: where each file a COPY selected lands under its destination (the
//! seed's rules: `dest/<name>`, `dir/.` contents, a destination that already names the
//! source), with `--chmod`/`--chown`, hardlinks kept, and the parent directories a tar needs.
//! ADD plans its plain files with the same rules.

use std::collections::BTreeMap;

use crate::context::{self, ContextSelection, EntryKind};
use crate::layer::{LayerEntry, LayerEntryKind};
use crate::layer_index::PathRecord;
use crate::llb::CopyAction;
use crate::paths;
use crate::EngineError;

pub(crate) fn plan_copy(
    copy: &CopyAction,
    selection: &ContextSelection,
    entries: &mut BTreeMap<String, LayerEntry>,
) -> Result<(), EngineError> {
    if selection.patterns.len() != copy.sources.len() {
        return Err(EngineError::Internal(
            "COPY sources and context patterns disagree".into(),
        ));
    }
    let dest = paths::clean(&copy.dest);
    let (uid, gid) = copy.chown.unwrap_or((0, 0));
    for (source, matches) in copy.sources.iter().zip(&selection.patterns) {
        for m in matches {
            let root_is_dir = m.entries.first().is_some_and(|e| e.kind == EntryKind::Dir);
            let contents_only = root_is_dir && (source.contents_only || m.name.is_empty());
            // Contents land in dest; so does a source whose name dest already ends with.
            let target = if contents_only || paths::basename(&dest) == m.name {
                dest.clone()
            } else {
                paths::join(&dest, &m.name)
            };
            for (e, link) in m.entries.iter().zip(context::hardlinks_of(m)) {
                if contents_only && e.rel.is_empty() {
                    continue;
                }
                let path = paths::join(&target, &e.rel);
                if path.is_empty() {
                    continue;
                }
                let kind = match (&e.kind, link) {
                    (EntryKind::File { size, blake3 }, Some(first)) => {
                        let first = &m.entries[first];
                        LayerEntryKind::Hardlink {
                            target: paths::join(&target, &first.rel),
                            source: selection.host_path(m, first),
                            size: *size,
                            blake3: *blake3,
                        }
                    }
                    (EntryKind::Dir, _) => LayerEntryKind::Dir,
                    (EntryKind::Symlink { target }, _) => LayerEntryKind::Symlink {
                        target: target.clone(),
                    },
                    (EntryKind::File { size, blake3 }, None) => LayerEntryKind::File {
                        source: selection.host_path(m, e),
                        size: *size,
                        blake3: *blake3,
                    },
                };
                let mode = match (&e.kind, &copy.chmod) {
                    (EntryKind::Symlink { .. }, _) => 0o777,
                    (_, Some(chmod)) => chmod.apply(e.mode, e.kind == EntryKind::Dir),
                    (_, None) => e.mode,
                };
                entries.insert(
                    path.clone(),
                    LayerEntry {
                        path,
                        kind,
                        mode,
                        uid,
                        gid,
                        xattrs: e.xattrs.clone(),
                    },
                );
            }
        }
    }
    Ok(())
}

/// Every entry's ancestors must be in the tar before it: add the missing ones, with the
/// metadata of `existing` (the rootfs's directories) where they exist, else as 0755 dirs.
pub(crate) fn add_missing_parents(
    entries: &mut BTreeMap<String, LayerEntry>,
    (uid, gid): (u32, u32),
    existing: &BTreeMap<String, PathRecord>,
) {
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
        let (mode, uid, gid) = existing
            .get(&path)
            .map_or((0o755, uid, gid), |r| (r.mode, r.uid, r.gid));
        entries.entry(path.clone()).or_insert(LayerEntry {
            path,
            kind: LayerEntryKind::Dir,
            mode,
            uid,
            gid,
            xattrs: Default::default(),
        });
    }
}
