//! FileOp (COPY and friends): builds one layer straight from its sources, never by unpacking
//! the layers below it, so its cache entry survives changes to earlier steps.
//!
//! COPY follows the seed's destination semantics (KUBEFILE.md): each source lands at
//! `<dest>/<basename>`, or at `<dest>` itself when dest's last element equals the basename;
//! a directory written `dir/.` contributes its contents. Of the rootfs below (the FileOp's last
//! input) it reads only the resolution of each destination ([`crate::layer_index`]): symlinks
//! on the destination are followed inside the rootfs, and the destination and its ancestors
//! that exist keep their mode and owner. That resolution is all the step's cache key covers of
//! the rootfs ([`input_keys`]).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use seal_solver::{ContentId, Id};
use seal_store::Store;

use crate::context::{ContextSelection, EntryKind};
use crate::layer::{write_layer, write_layer_with_snapshot, LayerEntry, LayerEntryKind};
use crate::layer_index::{self, IndexBuilder, PathRecord, Resolution, StoredLayers};
use crate::layers::snapshot_image::IMAGE_MIN_ENTRIES;
use crate::layers::snapshot_tee::SnapshotForm;
use crate::llb::encode::Encoder;
use crate::llb::{CopyAction, FileAction, FileOp};
use crate::output::{LayerChain, Output};
use crate::paths;
use crate::sources::copy::{add_missing_parents, plan_copy};
use crate::EngineError;

/// The ids by which the inputs enter the FileOp's cache key: the sources' content ids, and for
/// the rootfs below (the last input) only the resolution of the op's destinations.
pub fn input_keys(op: &FileOp, inputs: &[Output], store: &Store) -> Result<Vec<Id>, EngineError> {
    let (source, rootfs) = split_inputs(inputs)?;
    let mut ids: Vec<Id> = inputs[..inputs.len() - 1]
        .iter()
        .map(ContentId::content_id)
        .collect();
    let mut e = Encoder::new("seal.destinations.v2");
    for resolution in resolutions(op, source, rootfs, store)?.iter().flatten() {
        resolution.encode_key(&mut e);
    }
    ids.push(e.finish());
    Ok(ids)
}

/// Build the layer of `op` from `inputs` (input 0: the source of copies, when an action reads
/// one; the last input: the rootfs below). With `snapshot` (a RUN on this machine will mount
/// the layer in that form), its snapshot is made while the layer is written, from the same
/// tar stream.
pub fn exec(
    op: &FileOp,
    inputs: &[Output],
    store: &Store,
    cancel: &AtomicBool,
    snapshot: Option<SnapshotForm>,
) -> Result<Output, EngineError> {
    let blobs = store.blobs();
    let (source, rootfs) = split_inputs(inputs)?;
    let resolutions = resolutions(op, source, rootfs, store)?;
    let mut entries: BTreeMap<String, LayerEntry> = BTreeMap::new();
    // The existing directories on every destination path, with the rootfs's metadata.
    let mut existing: BTreeMap<String, PathRecord> = BTreeMap::new();
    // Unpacked stage filesystems, kept until the layer is written from them.
    let mut staging = Vec::new();
    for (action, resolution) in op.actions.iter().zip(&resolutions) {
        let mut planned: BTreeMap<String, LayerEntry> = BTreeMap::new();
        match action {
            FileAction::Copy(copy) => match source {
                Some(Output::Context(selection)) => plan_copy(copy, selection, &mut planned)?,
                Some(Output::Layers(chain)) => {
                    let selection = stage_selection(copy, chain, store, &mut staging)?;
                    plan_copy(copy, &selection, &mut planned)?;
                }
                Some(Output::Images(_)) | None => {
                    return Err(EngineError::Internal("COPY has no files to copy".into()))
                }
            },
            FileAction::Mkdir { path, mode } => {
                let path = paths::clean(path);
                planned.insert(
                    path.clone(),
                    LayerEntry {
                        path,
                        kind: LayerEntryKind::Dir,
                        mode: *mode,
                        uid: 0,
                        gid: 0,
                        xattrs: Default::default(),
                    },
                );
            }
            FileAction::Mkfile { path, mode, data } => {
                let path = paths::clean(path);
                planned.insert(
                    path.clone(),
                    LayerEntry {
                        path,
                        kind: LayerEntryKind::Bytes(data.clone()),
                        mode: *mode,
                        uid: 0,
                        gid: 0,
                        xattrs: Default::default(),
                    },
                );
            }
            FileAction::Rm { path } => {
                // In a diff layer, removal is an OCI whiteout.
                let path = paths::clean(path);
                let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                let whiteout = paths::join(parent, &format!(".wh.{}", paths::basename(&path)));
                planned.insert(
                    whiteout.clone(),
                    LayerEntry {
                        path: whiteout,
                        kind: LayerEntryKind::Bytes(Vec::new()),
                        mode: 0o644,
                        uid: 0,
                        gid: 0,
                        xattrs: Default::default(),
                    },
                );
            }
            FileAction::Add(add) => {
                let selection = match source {
                    Some(Output::Context(selection)) => Some(&**selection),
                    _ => None,
                };
                staging.push(crate::add::plan(
                    add,
                    selection,
                    blobs,
                    cancel,
                    &mut planned,
                )?)
            }
        }
        relocate(planned, resolution, &mut entries)?;
        for r in resolution {
            existing.extend(r.dirs.iter().map(|(p, r)| (p.clone(), r.clone())));
        }
    }
    // The destination and its existing ancestors keep the rootfs's mode and owner (Docker).
    for (path, record) in &existing {
        if let Some(entry) = entries.get_mut(path) {
            if entry.kind == LayerEntryKind::Dir {
                (entry.mode, entry.uid, entry.gid) = (record.mode, record.uid, record.gid);
            }
        }
    }
    let owner = op.actions.iter().find_map(|a| match a {
        FileAction::Copy(c) => c.chown,
        _ => None,
    });
    add_missing_parents(&mut entries, owner.unwrap_or((0, 0)), &existing);
    // Lowering let image collection skip this step when its destination, as written, is none
    // of the directories collection reads; a symlink of the rootfs below must not move the
    // files there behind collection's back.
    if !crate::llb::collected::may_change(&crate::llb::Op::File(op.clone())) {
        if let Some(entry) = entries
            .values()
            .rev()
            .find(|e| crate::llb::collected::concerns_collection(&e.path))
        {
            let resolution = resolutions.iter().flatten().find(|r| r.resolved != r.dest);
            return Err(EngineError::DestinationIntoCollection {
                dest: resolution.map_or_else(String::new, |r| r.dest.clone()),
                path: entry.path.clone(),
            });
        }
    }
    let ordered: Vec<LayerEntry> = entries.into_values().collect();
    // A few entries are cheaper as a directory than as an image mounted at every RUN.
    let snapshot = snapshot.map(|form| match form {
        SnapshotForm::Image if ordered.len() < IMAGE_MIN_ENTRIES => SnapshotForm::Directory,
        form => form,
    });
    let layer = match snapshot {
        Some(form) => write_layer_with_snapshot(store, &ordered, op.format, cancel, form)?,
        None => write_layer(blobs, &ordered, op.format, cancel)?,
    };
    IndexBuilder::from_entries(&ordered).store(store, &layer.digest)?;
    Ok(Output::Layers(LayerChain {
        layers: vec![layer],
        base_config: None,
    }))
}

/// The source of the copies (input 0, when there is one) and the rootfs below (the last input).
fn split_inputs(inputs: &[Output]) -> Result<(Option<&Output>, &LayerChain), EngineError> {
    match inputs.split_last() {
        Some((Output::Layers(rootfs), rest)) => Ok((rest.first(), rootfs)),
        _ => Err(EngineError::Internal(
            "a FileOp's last input is not the rootfs below it".into(),
        )),
    }
}

/// Each action's destination resolved in `rootfs`, in action order.
fn resolutions(
    op: &FileOp,
    source: Option<&Output>,
    rootfs: &LayerChain,
    store: &Store,
) -> Result<Vec<Vec<Resolution>>, EngineError> {
    // An empty rootfs resolves like any other (every lookup finds nothing), so a COPY moved
    // to the top of a Kubefile keeps its key when nothing below it is on its way.
    let layers = StoredLayers::new(store, &rootfs.layers)?;
    op.actions
        .iter()
        .map(|a| {
            landings(a, source)
                .iter()
                .map(|dir| layer_index::resolve(&layers, dir))
                .collect()
        })
        .collect()
}

/// The directories an action's entries land in, each resolved in the rootfs below: its
/// destination, and `<dest>/<name>` of each directory it copies from the build context under
/// its own name (`COPY bin .` over a base with `bin -> usr/bin` fills `usr/bin`, as Docker's
/// `COPY bin /bin` does). A file replaces what is at its path. `COPY --from` sources are known
/// only once the stage is unpacked, so only its destination is resolved.
fn landings(action: &FileAction, source: Option<&Output>) -> Vec<String> {
    let dest = action.destination_dir();
    let mut out = vec![dest.clone()];
    let (sources, Some(Output::Context(selection))) = (
        match action {
            FileAction::Copy(c) => &c.sources,
            FileAction::Add(a) => &a.sources,
            _ => return out,
        },
        source,
    ) else {
        return out;
    };
    for (source, matches) in sources.iter().zip(&selection.patterns) {
        for m in matches {
            let root_is_dir = m.entries.first().is_some_and(|e| e.kind == EntryKind::Dir);
            let contents_only = source.contents_only || m.name.is_empty();
            if root_is_dir && !contents_only && paths::basename(&dest) != m.name {
                let landing = paths::join(&dest, &m.name);
                if !out.contains(&landing) {
                    out.push(landing);
                }
            }
        }
    }
    out
}

/// Move what an action planned under its destinations to where they resolved (the longest
/// landing that holds a path wins); drop the ancestors it planned for the unresolved
/// destination (they are added again, with the rootfs's metadata where they exist).
fn relocate(
    planned: BTreeMap<String, LayerEntry>,
    resolutions: &[Resolution],
    entries: &mut BTreeMap<String, LayerEntry>,
) -> Result<(), EngineError> {
    for (path, mut entry) in planned {
        let landing = resolutions
            .iter()
            .filter_map(|r| {
                let rest = if r.dest.is_empty() {
                    Some(path.as_str())
                } else if path == r.dest {
                    Some("")
                } else {
                    path.strip_prefix(r.dest.as_str())
                        .and_then(|rest| rest.strip_prefix('/'))
                };
                rest.map(|rest| (r, rest))
            })
            .max_by_key(|(r, _)| r.dest.len());
        let Some((resolution, rest)) = landing else {
            continue;
        };
        let below_a_file = resolution
            .existing
            .as_ref()
            .is_some_and(|r| !matches!(r.kind, layer_index::PathKind::Dir { .. }));
        if !rest.is_empty() && below_a_file {
            return Err(EngineError::DestinationUnresolvable {
                dest: resolution.dest.clone(),
                reason: format!(
                    "`{}` is a file in the image below, not a directory",
                    resolution.resolved
                ),
            });
        }
        let target = paths::join(&resolution.resolved, rest);
        if target.is_empty() {
            continue;
        }
        entry.path = target.clone();
        entries.insert(target, entry);
    }
    Ok(())
}

/// `COPY --from`: flatten the stage's (or image's) layers into a scratch directory and select
/// the sources there. The FileOp's cache key already covers the stage through its content id.
fn stage_selection(
    copy: &CopyAction,
    chain: &crate::output::LayerChain,
    store: &Store,
    staging: &mut Vec<tempfile::TempDir>,
) -> Result<ContextSelection, EngineError> {
    let blobs = store.blobs();
    let dir = tempfile::Builder::new()
        .prefix("from-")
        .tempdir_in(blobs.tmp_dir())
        .map_err(|e| EngineError::io("creating a staging directory in", blobs.tmp_dir(), e))?;
    crate::unpack::flatten(store, &chain.layers, dir.path())?;
    let include: Vec<String> = copy.sources.iter().map(|s| s.pattern.clone()).collect();
    let selection = crate::context::scan_uncached(dir.path(), &include).map_err(|e| match e {
        EngineError::SourceNotFound { source_path }
        | EngineError::GlobNoMatch {
            pattern: source_path,
        } => EngineError::SourceNotInStage { source_path },
        other => other,
    })?;
    staging.push(dir);
    Ok(selection)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use seal_store::Store;

    use super::*;
    use crate::context;
    use crate::ignore::IgnoreMatcher;
    use crate::llb::{Chmod, Compression, CopySource, LayerFormat};

    /// Build a COPY layer of `sources` -> `dest` from a context and list its tar as
    /// `path mode uid:gid [-> target | = content]` lines.
    fn check(
        files: &[(&str, &str, u32)],
        sources: &[&str],
        dest: &str,
        chmod: Option<Chmod>,
        expected: &[&str],
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("ctx");
        for (path, content, mode) in files {
            let p = ctx.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            if let Some(target) = content.strip_prefix("->") {
                std::os::unix::fs::symlink(target, &p).unwrap();
            } else if let Some(first) = content.strip_prefix("=>") {
                std::fs::hard_link(ctx.join(first), &p).unwrap();
            } else {
                std::fs::write(&p, content).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
        }
        let store = Store::open(&tmp.path().join("store"), &mut || {}).unwrap();
        let copy_sources: Vec<CopySource> = sources
            .iter()
            .map(|s| CopySource {
                pattern: paths::clean(s),
                contents_only: s.ends_with("/."),
            })
            .collect();
        let include: Vec<String> = copy_sources.iter().map(|s| s.pattern.clone()).collect();
        let selection = context::scan(&store, &ctx, &include, &IgnoreMatcher::default()).unwrap();
        let op = FileOp {
            actions: vec![FileAction::Copy(CopyAction {
                sources: copy_sources,
                dest: dest.into(),
                chmod,
                chown: None,
            })],
            format: LayerFormat {
                compression: Compression::None,
                source_date_epoch: 0,
            },
        };
        let out = exec(
            &op,
            &[
                Output::Context(std::sync::Arc::new(selection)),
                Output::Layers(LayerChain::default()),
            ],
            &store,
            &AtomicBool::new(false),
            None,
        )
        .unwrap();
        let Output::Layers(chain) = out else {
            panic!("not layers")
        };
        assert_eq!(
            chain.layers[0].diff_id, chain.layers[0].digest,
            "uncompressed: digest is the diffID"
        );
        let listing = list_tar(&store.blobs().path(&chain.layers[0].digest));
        assert_eq!(listing, expected, "\nactual:\n{}", listing.join("\n"));
    }

    fn list_tar(path: &Path) -> Vec<String> {
        let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut e = entry.unwrap();
            let h = e.header().clone();
            assert_eq!(h.mtime().unwrap(), 0);
            let path = e.path().unwrap().display().to_string();
            let mut line = format!(
                "{path} {:o} {}:{}",
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap()
            );
            if let Some(target) = e.link_name().unwrap() {
                line.push_str(&format!(" -> {}", target.display()));
            } else if h.entry_type().is_file() {
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                line.push_str(&format!(" = {}", s.trim_end()));
            }
            out.push(line);
        }
        out
    }

    #[test]
    fn a_directory_lands_under_its_basename() {
        check(
            &[
                ("apollo/Chart.yaml", "c", 0o644),
                ("apollo/templates/t.yaml", "t", 0o600),
            ],
            &["apollo"],
            "charts",
            None,
            &[
                "charts/ 755 0:0",
                "charts/apollo/ 755 0:0",
                "charts/apollo/Chart.yaml 644 0:0 = c",
                "charts/apollo/templates/ 755 0:0",
                "charts/apollo/templates/t.yaml 600 0:0 = t",
            ],
        );
    }

    #[test]
    fn dest_ending_in_the_basename_is_the_full_path() {
        check(
            &[("a.yaml", "a", 0o644)],
            &["a.yaml"],
            "manifests/a.yaml",
            None,
            &["manifests/ 755 0:0", "manifests/a.yaml 644 0:0 = a"],
        );
        check(
            &[("mysql.yaml", "m", 0o755)],
            &["mysql.yaml"],
            ".",
            None,
            &["mysql.yaml 755 0:0 = m"],
        );
    }

    #[test]
    fn trailing_dot_copies_contents_and_chmod_applies() {
        check(
            &[("dir/x", "x", 0o644), ("dir/sub/y", "y", 0o755)],
            &["dir/."],
            "/opt/",
            Some(Chmod::Octal(0o600)),
            &[
                "opt/ 755 0:0",
                "opt/sub/ 600 0:0",
                "opt/sub/y 600 0:0 = y",
                "opt/x 600 0:0 = x",
            ],
        );
    }

    /// Two names of one inode inside one source are one file and a hardlink entry (issue 11);
    /// the same file named by two sources stays two files, as BuildKit copies each source on
    /// its own.
    #[test]
    fn hardlinks_within_a_source_stay_hardlinks() {
        check(
            &[
                ("d/a", "x", 0o4755),
                ("d/b", "=>d/a", 0),
                ("d/c", "y", 0o644),
            ],
            &["d"],
            "opt",
            None,
            &[
                "opt/ 755 0:0",
                "opt/d/ 755 0:0",
                "opt/d/a 4755 0:0 = x",
                "opt/d/b 4755 0:0 -> opt/d/a",
                "opt/d/c 644 0:0 = y",
            ],
        );
        check(
            &[("a", "x", 0o644), ("b", "=>a", 0)],
            &["a", "b"],
            "opt",
            None,
            &["opt/ 755 0:0", "opt/a 644 0:0 = x", "opt/b 644 0:0 = x"],
        );
    }

    #[test]
    fn globs_and_symlinks_inside_directories() {
        check(
            &[
                ("a.yaml", "a", 0o644),
                ("b.yaml", "b", 0o644),
                ("c.txt", "c", 0o644),
            ],
            &["*.yaml"],
            "manifests",
            None,
            &[
                "manifests/ 755 0:0",
                "manifests/a.yaml 644 0:0 = a",
                "manifests/b.yaml 644 0:0 = b",
            ],
        );
        check(
            &[("d/real", "r", 0o644), ("d/link", "->real", 0)],
            &["d"],
            "",
            None,
            &["d/ 755 0:0", "d/link 777 0:0 -> real", "d/real 644 0:0 = r"],
        );
    }
}
