//! Per-layer path indexes, and a COPY destination's resolution in the rootfs below through them.
//!
//! A COPY layer is built from its sources alone, but where it lands depends on the rootfs below
//! (KUBEFILE.md "COPY semantics"): a symlink on the destination path is followed inside the
//! rootfs, and directories that exist keep their type, mode and owner. That resolution is read
//! from an index of each layer — rootfs path -> type, mode, uid, gid, link target, plus
//! whiteouts and opaque directories — stored in the store by the layer blob's digest
//! (`Store::layer_path`; `prune` drops it with the blob).
//! Layers seal writes are indexed from their entries as they are written; any other layer (a
//! pulled or loaded base) is read once, headers only, the first time a COPY needs it.
//! Nothing is unpacked. The [`Resolution`]'s `trail` is every lookup it made, and is what the
//! COPY's cache key covers of the rootfs below: a change elsewhere in it leaves the COPY cached.

use std::collections::BTreeMap;

use seal_store::{Digest, Store};

use crate::layer::{Layer, LayerEntry, LayerEntryKind};
use crate::llb::encode::Encoder;
use crate::paths;
use crate::unpack::{WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::EngineError;

/// Symlinks followed while resolving one destination before giving up (Linux's ELOOP limit).
const MAX_LINK_HOPS: usize = 40;

/// What one layer has at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRecord {
    pub kind: PathKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The type of a [`PathRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathKind {
    /// A directory; `opaque` hides the lower layers' contents of it.
    Dir {
        opaque: bool,
    },
    /// A regular file (or a hard link to one).
    File,
    Symlink {
        target: String,
    },
    /// A whiteout: the path is deleted from the layers below.
    Whiteout,
    /// A device, fifo or socket.
    Other,
}

impl PathRecord {
    fn is_dir(&self) -> bool {
        matches!(self.kind, PathKind::Dir { .. })
    }

    /// Binary record as stored: tag, mode, uid, gid, then the opaque flag or the link target.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        let tag = match &self.kind {
            PathKind::Dir { .. } => 1u8,
            PathKind::File => 2,
            PathKind::Symlink { .. } => 3,
            PathKind::Whiteout => 4,
            PathKind::Other => 5,
        };
        out.push(tag);
        out.extend_from_slice(&self.mode.to_le_bytes());
        out.extend_from_slice(&self.uid.to_le_bytes());
        out.extend_from_slice(&self.gid.to_le_bytes());
        match &self.kind {
            PathKind::Dir { opaque } => out.push(*opaque as u8),
            PathKind::Symlink { target } => out.extend_from_slice(target.as_bytes()),
            _ => {}
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<PathRecord> {
        let word = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
        };
        let (mode, uid, gid) = (word(1)?, word(5)?, word(9)?);
        let rest = bytes.get(13..)?;
        let kind = match bytes.first()? {
            1 => PathKind::Dir {
                opaque: rest.first() == Some(&1),
            },
            2 => PathKind::File,
            3 => PathKind::Symlink {
                target: String::from_utf8(rest.to_vec()).ok()?,
            },
            4 => PathKind::Whiteout,
            5 => PathKind::Other,
            _ => return None,
        };
        Some(PathRecord {
            kind,
            mode,
            uid,
            gid,
        })
    }

    /// Feed the record into a cache-key encoder.
    fn encode_key(&self, e: &mut Encoder) {
        let (tag, extra): (u8, &str) = match &self.kind {
            PathKind::Dir { opaque: false } => (1, ""),
            PathKind::Dir { opaque: true } => (2, ""),
            PathKind::File => (3, ""),
            PathKind::Symlink { target } => (4, target),
            PathKind::Whiteout => (5, ""),
            PathKind::Other => (6, ""),
        };
        e.tag(tag)
            .u64(self.mode as u64)
            .u64(self.uid as u64)
            .u64(self.gid as u64)
            .str(extra);
    }
}

/// Builds one layer's index from its entries in layer order (a later entry of a path wins).
#[derive(Debug, Default)]
pub struct IndexBuilder {
    records: BTreeMap<String, PathRecord>,
}

impl IndexBuilder {
    /// Record the entry `path` (any spelling: `./a/`, `/a`), interpreting OCI whiteout names.
    pub fn add(&mut self, path: &str, record: PathRecord) {
        let path = paths::clean(path);
        if path.is_empty() || paths::escapes(&path) {
            return;
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n),
            None => (String::new(), path.as_str()),
        };
        if name == WHITEOUT_OPAQUE {
            self.implied_parents(&path);
            if let Some(dir) = self.records.get_mut(&parent) {
                if let PathKind::Dir { opaque } = &mut dir.kind {
                    *opaque = true;
                }
            }
            return;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let hidden = paths::join(&parent, hidden);
            self.implied_parents(&hidden);
            self.records.insert(
                hidden,
                PathRecord {
                    kind: PathKind::Whiteout,
                    mode: 0,
                    uid: 0,
                    gid: 0,
                },
            );
            return;
        }
        self.implied_parents(&path);
        let record = match (self.records.get(&path), record.kind) {
            // A directory entry after its opaque marker keeps the marker.
            (
                Some(PathRecord {
                    kind: PathKind::Dir { opaque: true },
                    ..
                }),
                PathKind::Dir { .. },
            ) => PathRecord {
                kind: PathKind::Dir { opaque: true },
                ..record
            },
            (_, kind) => PathRecord { kind, ..record },
        };
        self.records.insert(path, record);
    }

    /// A layer that lists `a/b/c` without `a/` still makes `a` a directory when unpacked
    /// (0755, root's): record the missing ancestors so lookups of them do not fall through.
    fn implied_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            let parent = &path[..end + slash];
            self.records
                .entry(parent.to_string())
                .or_insert(PathRecord {
                    kind: PathKind::Dir { opaque: false },
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                });
            end += slash + 1;
        }
    }

    /// The index of the entries of a layer seal is writing.
    pub fn from_entries(entries: &[LayerEntry]) -> IndexBuilder {
        let mut builder = IndexBuilder::default();
        for e in entries {
            let kind = match &e.kind {
                LayerEntryKind::Dir => PathKind::Dir { opaque: false },
                LayerEntryKind::Symlink { target } => PathKind::Symlink {
                    target: target.clone(),
                },
                LayerEntryKind::File { .. }
                | LayerEntryKind::Bytes(_)
                | LayerEntryKind::Blob { .. } => PathKind::File,
                // Kinds added later (devices, hard links) are not directories and not links:
                // all a destination's resolution needs to know of them.
                #[allow(unreachable_patterns)]
                _ => PathKind::Other,
            };
            builder.add(
                &e.path,
                PathRecord {
                    kind,
                    mode: e.mode & 0o7777,
                    uid: e.uid,
                    gid: e.gid,
                },
            );
        }
        builder
    }

    /// The index of a layer tar (headers only; file data is skipped).
    pub fn from_tar(
        reader: impl std::io::Read,
        what: &Digest,
    ) -> Result<IndexBuilder, EngineError> {
        let bad = |e: std::io::Error| EngineError::UnsafeLayer {
            path: what.to_string(),
            reason: format!("reading the layer's entries: {e}"),
        };
        let mut builder = IndexBuilder::default();
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let header = entry.header();
            let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let kind = match header.entry_type() {
                tar::EntryType::Directory => PathKind::Dir { opaque: false },
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse
                | tar::EntryType::Link => PathKind::File,
                tar::EntryType::Symlink => PathKind::Symlink {
                    target: entry
                        .link_name()
                        .map_err(bad)?
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                },
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    PathKind::Other
                }
                // PAX and GNU long-name headers are folded into the entry they describe.
                _ => continue,
            };
            builder.add(
                &path,
                PathRecord {
                    kind,
                    mode: header.mode().map_err(bad)? & 0o7777,
                    uid: header.uid().map_err(bad)? as u32,
                    gid: header.gid().map_err(bad)? as u32,
                },
            );
        }
        Ok(builder)
    }

    /// Store the index of the layer blob `layer`.
    pub fn store(self, store: &Store, layer: &Digest) -> Result<(), EngineError> {
        let _span = tracing::info_span!(
            target: "seal_trace",
            "path index",
            paths = self.records.len()
        )
        .entered();
        let records: Vec<(String, Vec<u8>)> = self
            .records
            .into_iter()
            .map(|(path, record)| (path, record.encode()))
            .collect();
        store.put_layer_index(layer, &records)?;
        Ok(())
    }

    #[cfg(test)]
    fn get(&self, path: &str) -> Option<&PathRecord> {
        self.records.get(path)
    }
}

/// Whether `bytes` is a path record as [`Store::put_layer_index`] stores them (a cache import
/// checks the indexes it is given before storing them).
pub fn is_valid_record(bytes: &[u8]) -> bool {
    PathRecord::decode(bytes).is_some()
}

/// Make sure the store has the index of `layer`, reading the layer's headers if it has not.
pub fn ensure(store: &Store, layer: &Layer) -> Result<(), EngineError> {
    if store.layer_index_complete(&layer.digest)? {
        return Ok(());
    }
    let reader = crate::unpack::layer_tar(store, layer)?;
    IndexBuilder::from_tar(reader, &layer.digest)?.store(store, &layer.digest)
}

/// Look a path up in one layer's index.
pub trait LayerPaths {
    /// How many layers the rootfs has.
    fn count(&self) -> usize;
    /// The record of `path` in layer `index` (0 is the bottom).
    fn get(&self, index: usize, path: &str) -> Result<Option<PathRecord>, EngineError>;
}

/// The layers of a rootfs, read through the store's indexes.
pub struct StoredLayers<'a> {
    store: &'a Store,
    digests: Vec<Digest>,
}

impl<'a> StoredLayers<'a> {
    /// Index every layer of `layers` that is not yet indexed, and read through them.
    pub fn new(store: &'a Store, layers: &[Layer]) -> Result<StoredLayers<'a>, EngineError> {
        for layer in layers {
            ensure(store, layer)?;
        }
        Ok(StoredLayers {
            store,
            digests: layers.iter().map(|l| l.digest.clone()).collect(),
        })
    }
}

impl LayerPaths for StoredLayers<'_> {
    fn count(&self) -> usize {
        self.digests.len()
    }

    fn get(&self, index: usize, path: &str) -> Result<Option<PathRecord>, EngineError> {
        let Some(bytes) = self.store.layer_path(&self.digests[index], path)? else {
            return Ok(None);
        };
        PathRecord::decode(&bytes).map(Some).ok_or_else(|| {
            EngineError::Internal(format!(
                "the path index of layer {} has a bad record for `{path}`",
                self.digests[index]
            ))
        })
    }
}

/// Where one destination lands in the rootfs below (KUBEFILE.md "COPY semantics").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The destination as written, cleaned (`""` is the root).
    pub dest: String,
    /// `dest` with every symlink on it followed, inside the rootfs.
    pub resolved: String,
    /// What the rootfs has at `resolved` (`None`: nothing yet).
    pub existing: Option<PathRecord>,
    /// The directories on `resolved` (it and its ancestors) that exist, with their metadata.
    pub dirs: BTreeMap<String, PathRecord>,
    /// Every lookup made, in order: what the step's cache key covers of the rootfs.
    pub trail: Vec<(String, Option<PathRecord>)>,
}

impl Resolution {
    /// Feed the trail into a cache-key encoder.
    pub fn encode_key(&self, e: &mut Encoder) {
        e.str(&self.dest).u64(self.trail.len() as u64);
        for (path, record) in &self.trail {
            e.str(path);
            e.opt(record.as_ref(), |e, r| r.encode_key(e));
        }
    }
}

/// Resolve `dest` in `layers`: follow each symlink on it (an absolute target from the rootfs's
/// root, `..` never above it), note the directories that exist, and fail when an element
/// before the last is a file.
pub fn resolve(layers: &dyn LayerPaths, dest: &str) -> Result<Resolution, EngineError> {
    let dest = paths::clean(dest);
    let mut trail = Vec::new();
    let mut todo: Vec<String> = components(&dest).rev().map(str::to_string).collect();
    let mut current: Vec<String> = Vec::new();
    let mut dirs = BTreeMap::new();
    let mut existing = None;
    // Layers (from the top) still visible to the children of `current`.
    let mut visible = layers.count();
    let mut hops = 0;
    while let Some(name) = todo.pop() {
        let path = paths::join(&current.join("/"), &name);
        let (record, below) = find(layers, &path, visible)?;
        trail.push((path.clone(), record.clone()));
        match record {
            None => {
                current.push(name);
                existing = None;
                visible = 0;
            }
            Some(r) if r.is_dir() => {
                current.push(name);
                dirs.insert(path, r.clone());
                existing = Some(r);
                visible = below;
            }
            Some(PathRecord {
                kind: PathKind::Symlink { target },
                ..
            }) => {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(EngineError::DestinationUnresolvable {
                        dest,
                        reason: format!("more than {MAX_LINK_HOPS} symlinks at `{path}`"),
                    });
                }
                // Continue from the link target: an absolute one from the root, a relative one
                // from the link's directory; `..` stops at the root (never out of the rootfs).
                let mut base = if target.starts_with('/') {
                    Vec::new()
                } else {
                    current.clone()
                };
                for part in target.split('/') {
                    match part {
                        "" | "." => {}
                        ".." => {
                            base.pop();
                        }
                        p => base.push(p.to_string()),
                    }
                }
                todo.extend(base.into_iter().rev());
                current.clear();
                dirs.clear();
                existing = None;
                visible = layers.count();
            }
            Some(r) => {
                if !todo.is_empty() {
                    return Err(EngineError::DestinationUnresolvable {
                        dest,
                        reason: format!("`{path}` is not a directory in the image below"),
                    });
                }
                current.push(name);
                existing = Some(r);
            }
        }
    }
    Ok(Resolution {
        resolved: current.join("/"),
        dest,
        existing,
        dirs,
        trail,
    })
}

/// The topmost record of `path` among the `visible` top layers, and how many top layers remain
/// visible to its children (a whiteout, a non-directory or an opaque directory hides the
/// layers below it).
fn find(
    layers: &dyn LayerPaths,
    path: &str,
    visible: usize,
) -> Result<(Option<PathRecord>, usize), EngineError> {
    let top = layers.count();
    let mut found: Option<PathRecord> = None;
    for depth in 0..visible {
        let index = top - 1 - depth;
        let Some(record) = layers.get(index, path)? else {
            continue;
        };
        let hides_below = match &record.kind {
            PathKind::Dir { opaque } => *opaque,
            _ => true,
        };
        match &found {
            None => {
                if record.kind == PathKind::Whiteout {
                    return Ok((None, 0));
                }
                if !record.is_dir() {
                    return Ok((Some(record), 0));
                }
                found = Some(record);
                if hides_below {
                    return Ok((found, depth + 1));
                }
            }
            Some(_) => {
                if !record.is_dir() {
                    return Ok((found, depth));
                }
                if hides_below {
                    return Ok((found, depth + 1));
                }
            }
        }
    }
    Ok((found, visible))
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Memory(Vec<IndexBuilder>);

    impl LayerPaths for Memory {
        fn count(&self) -> usize {
            self.0.len()
        }
        fn get(&self, index: usize, path: &str) -> Result<Option<PathRecord>, EngineError> {
            Ok(self.0[index].get(path).cloned())
        }
    }

    fn dir(mode: u32) -> PathRecord {
        PathRecord {
            kind: PathKind::Dir { opaque: false },
            mode,
            uid: 0,
            gid: 0,
        }
    }

    fn link(target: &str) -> PathRecord {
        PathRecord {
            kind: PathKind::Symlink {
                target: target.into(),
            },
            mode: 0o777,
            uid: 0,
            gid: 0,
        }
    }

    fn file() -> PathRecord {
        PathRecord {
            kind: PathKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn layer(entries: &[(&str, PathRecord)]) -> IndexBuilder {
        let mut b = IndexBuilder::default();
        for (p, r) in entries {
            b.add(p, r.clone());
        }
        b
    }

    #[test]
    fn a_symlink_on_the_destination_is_followed_and_existing_dirs_keep_their_mode() {
        let base = layer(&[
            ("usr", dir(0o755)),
            ("usr/bin", dir(0o755)),
            ("bin", link("usr/bin")),
            ("etc", dir(0o755)),
            ("etc/kubernetes", dir(0o755)),
            ("etc/kubernetes/pki", dir(0o700)),
        ]);
        let layers = Memory(vec![base]);
        let r = resolve(&layers, "bin").unwrap();
        assert_eq!(r.resolved, "usr/bin");
        assert_eq!(r.dirs.keys().collect::<Vec<_>>(), ["usr", "usr/bin"]);
        let r = resolve(&layers, "/etc/kubernetes/pki/").unwrap();
        assert_eq!(r.resolved, "etc/kubernetes/pki");
        assert_eq!(r.dirs["etc/kubernetes/pki"].mode, 0o700);
        let r = resolve(&layers, "opt/x").unwrap();
        assert_eq!(r.resolved, "opt/x");
        assert!(r.dirs.is_empty());
        assert_eq!(r.trail.len(), 2);
    }

    #[test]
    fn links_never_leave_the_rootfs_and_loops_fail() {
        let layers = Memory(vec![layer(&[
            ("up", link("../../../etc")),
            ("abs", link("/etc/app")),
            ("loop", link("loop")),
            ("f", file()),
        ])]);
        assert_eq!(resolve(&layers, "up/x").unwrap().resolved, "etc/x");
        assert_eq!(resolve(&layers, "abs").unwrap().resolved, "etc/app");
        assert!(resolve(&layers, "loop").is_err());
        assert!(
            resolve(&layers, "f/x").is_err(),
            "a file before the last element"
        );
        let r = resolve(&layers, "f").unwrap();
        assert_eq!(r.existing.map(|e| e.kind), Some(PathKind::File));
    }

    #[test]
    fn upper_layers_win_whiteouts_and_opaque_dirs_hide_lower_ones() {
        let bottom = layer(&[
            ("a", dir(0o700)),
            ("a/b", dir(0o700)),
            ("c", link("a")),
            ("o", dir(0o755)),
            ("o/p", dir(0o700)),
        ]);
        let top = layer(&[
            ("a", dir(0o750)),
            (".wh.c", file()),
            ("o/.wh..wh..opq", file()),
            ("o", dir(0o755)),
        ]);
        let layers = Memory(vec![bottom, top]);
        let r = resolve(&layers, "a/b").unwrap();
        assert_eq!(r.dirs["a"].mode, 0o750);
        assert_eq!(r.dirs["a/b"].mode, 0o700);
        let r = resolve(&layers, "c/b").unwrap();
        assert_eq!(r.resolved, "c/b", "the link was whited out");
        assert!(r.dirs.is_empty());
        let r = resolve(&layers, "o/p").unwrap();
        assert!(!r.dirs.contains_key("o/p"), "hidden by the opaque dir");
    }

    #[test]
    fn records_round_trip_and_implied_parents_are_dirs() {
        for r in [
            dir(0o700),
            link("../x"),
            file(),
            PathRecord {
                kind: PathKind::Dir { opaque: true },
                mode: 0o755,
                uid: 7,
                gid: 8,
            },
        ] {
            assert_eq!(PathRecord::decode(&r.encode()), Some(r));
        }
        let b = layer(&[("./x/y/z", file())]);
        assert_eq!(b.get("x/y"), Some(&dir(0o755)));
    }
}
