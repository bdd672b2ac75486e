//! The step's layer: the server's output root compared with the input root.
//!
//! A path new in the output, or whose content, mode, type or link target changed, is an
//! entry; a path of the input missing from the output is a whiteout (only the topmost: the
//! children of a removed directory go with it). Unchanged parent directories of changed paths
//! are entries too, with their input mode and owner, as overlayfs copies them up. New files
//! belong to root (REAPI carries no owners); a changed file keeps its input owner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use seal_remote::proto::Digest;

use super::tree::{parent, FlatTree, Node};
use crate::layer::{LayerEntry, LayerEntryKind};
use crate::unpack::WHITEOUT_PREFIX;

/// What the layer needs: its entries, and the files to download before it can be written
/// (each digest once, into `files_dir`).
#[derive(Debug, Default)]
pub struct OutputDiff {
    pub entries: Vec<LayerEntry>,
    pub downloads: Vec<(Digest, PathBuf)>,
}

/// The difference `output - input`; file entries name their bytes at `files_dir/<hash>`, and
/// their blake3 is filled in by the caller after the download (`LayerEntryKind::File`).
pub fn diff(input: &FlatTree, output: &FlatTree, files_dir: &Path) -> OutputDiff {
    let mut out = OutputDiff::default();
    let mut entries: BTreeMap<String, LayerEntry> = BTreeMap::new();
    let mut downloads: BTreeMap<String, (Digest, PathBuf)> = BTreeMap::new();
    for (path, node) in output.iter().filter(|(p, _)| !p.is_empty()) {
        let before = input.get(path);
        if before.is_some_and(|b| b.same_as(node)) {
            continue;
        }
        let owner = match before {
            Some(Node::Dir { owner, .. }) | Some(Node::File { owner, .. }) => *owner,
            _ => (0, 0),
        };
        let (kind, mode) = match node {
            Node::Dir { mode, .. } => (LayerEntryKind::Dir, *mode),
            Node::File {
                hash, size, mode, ..
            } => {
                let source = files_dir.join(hash);
                downloads
                    .entry(hash.clone())
                    .or_insert_with(|| (Node::file_digest(hash, *size), source.clone()));
                let kind = LayerEntryKind::File {
                    source,
                    size: *size as u64,
                    blake3: [0; 32],
                };
                (kind, *mode)
            }
            Node::Symlink { target } => (
                LayerEntryKind::Symlink {
                    target: target.clone(),
                },
                0o777,
            ),
        };
        entries.insert(
            path.clone(),
            LayerEntry {
                path: path.clone(),
                kind,
                mode,
                uid: owner.0,
                gid: owner.1,
                xattrs: Default::default(),
            },
        );
        add_parents(path, input, output, &mut entries);
    }
    for path in input.keys().filter(|p| !p.is_empty()) {
        if output.contains_key(path) {
            continue;
        }
        let dir = parent(path);
        // Only the topmost removed path: its parent is still a directory in the output.
        if !matches!(output.get(dir), Some(Node::Dir { .. })) {
            continue;
        }
        let name = super::tree::base_name(path);
        let whiteout = if dir.is_empty() {
            format!("{WHITEOUT_PREFIX}{name}")
        } else {
            format!("{dir}/{WHITEOUT_PREFIX}{name}")
        };
        entries.insert(
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
        add_parents(path, input, output, &mut entries);
    }
    out.entries = entries.into_values().collect();
    out.downloads = downloads.into_values().collect();
    out
}

/// The unchanged parent directories of `path`, with their input metadata.
fn add_parents(
    path: &str,
    input: &FlatTree,
    output: &FlatTree,
    entries: &mut BTreeMap<String, LayerEntry>,
) {
    let mut dir = parent(path);
    while !dir.is_empty() && !entries.contains_key(dir) {
        let (mode, owner) = match (input.get(dir), output.get(dir)) {
            (Some(Node::Dir { mode, owner }), _) => (*mode, *owner),
            (_, Some(Node::Dir { mode, .. })) => (*mode, (0, 0)),
            _ => (0o755, (0, 0)),
        };
        entries.insert(
            dir.to_string(),
            LayerEntry {
                path: dir.to_string(),
                kind: LayerEntryKind::Dir,
                mode,
                uid: owner.0,
                gid: owner.1,
                xattrs: Default::default(),
            },
        );
        dir = parent(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(mode: u32) -> Node {
        Node::Dir {
            mode,
            owner: (0, 0),
        }
    }

    fn file(hash: &str, mode: u32, owner: (u32, u32)) -> Node {
        Node::File {
            hash: hash.into(),
            size: 3,
            mode,
            owner,
            layer: Some(0),
        }
    }

    fn tree(nodes: &[(&str, Node)]) -> FlatTree {
        nodes
            .iter()
            .map(|(p, n)| (p.to_string(), n.clone()))
            .collect()
    }

    #[test]
    fn changes_become_entries_and_removals_whiteouts() {
        let input = tree(&[
            ("", dir(0o755)),
            ("etc", dir(0o755)),
            ("etc/keep", file("k", 0o644, (0, 0))),
            ("etc/edit", file("e1", 0o644, (5, 5))),
            ("etc/chmod", file("c", 0o644, (0, 0))),
            ("gone", dir(0o755)),
            ("gone/child", file("g", 0o644, (0, 0))),
            (
                "home",
                Node::Dir {
                    mode: 0o700,
                    owner: (1000, 1000),
                },
            ),
            ("home/old", file("o", 0o644, (1000, 1000))),
        ]);
        let output = tree(&[
            ("", dir(0o755)),
            ("etc", dir(0o755)),
            ("etc/keep", file("k", 0o644, (0, 0))),
            ("etc/edit", file("e2", 0o644, (0, 0))),
            ("etc/chmod", file("c", 0o4755, (0, 0))),
            ("home", dir(0o700)),
            (
                "new",
                Node::Symlink {
                    target: "etc".into(),
                },
            ),
        ]);
        let d = diff(&input, &output, Path::new("/f"));
        let got: Vec<(String, u32, u32)> = d
            .entries
            .iter()
            .map(|e| (e.path.clone(), e.mode, e.uid))
            .collect();
        assert_eq!(
            got,
            [
                (".wh.gone".to_string(), 0o644, 0),
                ("etc".into(), 0o755, 0),
                ("etc/chmod".into(), 0o4755, 0),
                ("etc/edit".into(), 0o644, 5),
                ("home".into(), 0o700, 1000),
                ("home/.wh.old".into(), 0o644, 0),
                ("new".into(), 0o777, 0),
            ]
        );
        // Each changed file's bytes are fetched once, by digest.
        let hashes: Vec<&str> = d.downloads.iter().map(|(d, _)| d.hash.as_str()).collect();
        assert_eq!(hashes, ["c", "e2"]);
    }

    #[test]
    fn an_unchanged_output_is_an_empty_layer() {
        let input = tree(&[("", dir(0o755)), ("a", file("x", 0o644, (0, 0)))]);
        assert!(diff(&input, &input.clone(), Path::new("/f"))
            .entries
            .is_empty());
    }
}
