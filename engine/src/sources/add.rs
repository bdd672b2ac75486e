//! The layer entries of an ADD action (part of a FileOp, [`crate::ops::file`]).
//!
//! Local sources follow COPY's rules, except that a match that is a regular file named like an
//! archive (`.tar`, `.tar.gz`, `.tgz`, `.tar.zst`, `.tar.zstd`) is unpacked into the
//! destination ([`crate::archive`]): its contents land directly in `dest`, owners 0:0 (or
//! `--chown`), modes kept (or `--chmod`). Each URL is downloaded ([`crate::download`]) to
//! `<dest>/<name>` (or `dest` itself when dest's last element is the name), mode 0600 unless
//! `--chmod`, and is never unpacked (Docker's rule).
//!
//! Unpacked files and downloads live in a scratch directory under the store's `tmp/` that the
//! caller keeps until the layer is written and then drops (removing it).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use seal_store::BlobStore;
use tempfile::TempDir;

use crate::archive::{self, Expected};
use crate::context::{ContextSelection, EntryKind};
use crate::download;
use crate::layer::{LayerEntry, LayerEntryKind};
use crate::llb::{AddAction, CopyAction};
use crate::paths;
use crate::sources::copy::plan_copy;
use crate::EngineError;

/// Add the entries of `add` to `entries`; `selection` is what the FileOp's input 0 (the Local
/// source of the local sources) selected. Returns the scratch directory the file entries point
/// into.
pub fn plan(
    add: &AddAction,
    selection: Option<&ContextSelection>,
    blobs: &BlobStore,
    cancel: &AtomicBool,
    entries: &mut BTreeMap<String, LayerEntry>,
) -> Result<TempDir, EngineError> {
    let tmp = blobs.tmp_dir();
    let scratch = tempfile::Builder::new()
        .prefix("add-")
        .tempdir_in(tmp)
        .map_err(|e| EngineError::io("creating a scratch directory in", tmp, e))?;
    let dest = paths::clean(&add.dest);
    let owner = add.chown.unwrap_or((0, 0));
    if !add.sources.is_empty() {
        let Some(selection) = selection else {
            return Err(EngineError::Internal(
                "ADD's local sources have no context selection".into(),
            ));
        };
        if selection.patterns.len() != add.sources.len() {
            return Err(EngineError::Internal(
                "ADD sources and context patterns disagree".into(),
            ));
        }
        // Plain matches go through COPY's planner; archives are unpacked after them.
        let mut plain = Vec::with_capacity(selection.patterns.len());
        let mut archives = Vec::new();
        for matches in &selection.patterns {
            let mut keep = Vec::new();
            for m in matches {
                let kind = match m.entries.first().map(|e| &e.kind) {
                    Some(EntryKind::File { size, blake3 }) => {
                        archive::archive_kind(&m.name).map(|k| {
                            (
                                k,
                                Expected {
                                    size: *size,
                                    blake3: *blake3,
                                },
                            )
                        })
                    }
                    _ => None,
                };
                match kind {
                    Some((kind, expected)) => archives.push((m, kind, expected)),
                    None => keep.push(m.clone()),
                }
            }
            plain.push(keep);
        }
        let copy = CopyAction {
            sources: add.sources.clone(),
            dest: dest.clone(),
            chmod: add.chmod.clone(),
            chown: add.chown,
        };
        let plain = ContextSelection {
            dir: selection.dir.clone(),
            patterns: plain,
            content_id: selection.content_id,
            files_hashed: 0,
        };
        plan_copy(&copy, &plain, entries)?;
        for (i, (m, kind, expected)) in archives.into_iter().enumerate() {
            let host = selection.host_path(m, &m.entries[0]);
            let files = scratch.path().join(format!("archive-{i}"));
            std::fs::create_dir(&files).map_err(|e| EngineError::io("creating", &files, e))?;
            let unpacked =
                archive::unpack_archive(&host, &m.resolved, kind, Some(expected), &files, cancel)?;
            for mut entry in unpacked {
                entry.path = paths::join(&dest, &entry.path);
                if let LayerEntryKind::Hardlink { target, .. } = &mut entry.kind {
                    *target = paths::join(&dest, target);
                }
                (entry.uid, entry.gid) = owner;
                if let (Some(chmod), false) = (
                    &add.chmod,
                    matches!(entry.kind, LayerEntryKind::Symlink { .. }),
                ) {
                    entry.mode = chmod.apply(entry.mode, entry.kind == LayerEntryKind::Dir);
                }
                place(entries, entry);
            }
        }
    }
    for source in &add.urls {
        let name = download::url_file_name(&source.url).ok_or_else(|| EngineError::Download {
            url: source.url.clone(),
            reason: "the URL names no file".into(),
        })?;
        let path = if paths::basename(&dest) == name {
            dest.clone()
        } else {
            paths::join(&dest, &name)
        };
        let got = download::fetch(
            &source.url,
            source.checksum.as_deref(),
            scratch.path(),
            cancel,
        )?;
        place(
            entries,
            LayerEntry {
                path,
                kind: LayerEntryKind::File {
                    source: got.path,
                    size: got.size,
                    blake3: got.blake3,
                },
                mode: add.chmod.as_ref().map_or(0o600, |c| c.apply(0o600, false)),
                uid: owner.0,
                gid: owner.1,
                xattrs: Default::default(),
            },
        );
    }
    add_parents(entries, &dest, owner);
    Ok(scratch)
}

/// Insert `entry`; a non-directory replaces whatever was at its path, children included.
fn place(entries: &mut BTreeMap<String, LayerEntry>, entry: LayerEntry) {
    if entry.path.is_empty() {
        return;
    }
    if entry.kind != LayerEntryKind::Dir {
        archive::remove_children(entries, &entry.path);
    }
    entries.insert(entry.path.clone(), entry);
}

/// Give every entry its missing ancestors (and `dest` itself), as 0755 directories owned like
/// the added files, as COPY does.
fn add_parents(entries: &mut BTreeMap<String, LayerEntry>, dest: &str, (uid, gid): (u32, u32)) {
    if !dest.is_empty() {
        entries.entry(dest.to_string()).or_insert(LayerEntry {
            path: dest.to_string(),
            kind: LayerEntryKind::Dir,
            mode: 0o755,
            uid,
            gid,
            xattrs: Default::default(),
        });
    }
    crate::sources::copy::add_missing_parents(entries, (uid, gid), &BTreeMap::new());
}
