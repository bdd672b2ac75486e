//! The input root of a remote RUN: the flat tree of a layer chain, built once and remembered.
//!
//! Each layer's snapshot is read once — paths, modes, symlink targets, and the SHA-256 of
//! every file — and kept in the store's `remote` column family by diffID (`layer:<diffID>`).
//! A chain's tree folds its layers' records bottom to top with overlay rules (a whiteout
//! removes a path and what is under it, an opaque directory hides what was under it) and is
//! kept by the chain's id (`chain:<id>`), so an unchanged rootfs costs one record read, and a
//! rootfs with one new layer costs that layer's scan and a fold onto its parent chain's tree.
//! Device nodes, fifos and sockets are left out (REAPI cannot carry them); owners and
//! extended attributes are not part of any REAPI tree.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rayon::prelude::*;
use seal_store::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::tree::{remove_subtree, FlatTree, Node};
use crate::layer::Layer;
use crate::unpack::{snapshot, OVERLAY_OPAQUE_XATTR};
use crate::EngineError;

/// Bumped when the encoding of the records changes.
const RECORD_VERSION: &str = "v1";

/// What one layer's snapshot holds, as REAPI sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum LayerNode {
    /// A whiteout, or something REAPI cannot carry (both hide what was below).
    Remove,
    Dir {
        mode: u32,
        opaque: bool,
        owner: (u32, u32),
    },
    File {
        hash: String,
        size: i64,
        mode: u32,
        owner: (u32, u32),
    },
    Symlink {
        target: String,
    },
}

/// The input tree of `layers` (bottom to top); `""` is always a directory.
pub fn chain_tree(store: &Store, layers: &[Layer]) -> Result<FlatTree, EngineError> {
    // The longest prefix of the chain whose tree is remembered, then fold the rest onto it.
    let mut known = layers.len();
    let mut tree = loop {
        if known == 0 {
            let mut tree = FlatTree::new();
            tree.insert(
                String::new(),
                Node::Dir {
                    mode: 0o755,
                    owner: (0, 0),
                },
            );
            break tree;
        }
        if let Some(bytes) = store.reapi_tree_get(&chain_key(&layers[..known]))? {
            if let Ok(tree) = serde_json::from_slice::<FlatTree>(&bytes) {
                break tree;
            }
        }
        known -= 1;
    };
    if known == layers.len() {
        return Ok(tree);
    }
    for (index, layer) in layers.iter().enumerate().skip(known) {
        let record = layer_record(store, layer)?;
        apply(&mut tree, index, &record);
    }
    let bytes = serde_json::to_vec(&tree)
        .map_err(|e| EngineError::Internal(format!("encoding a remote input tree: {e}")))?;
    store.reapi_tree_put(&chain_key(layers), &bytes)?;
    Ok(tree)
}

/// The record key of a chain's tree: its layers' diffIDs, in order.
fn chain_key(layers: &[Layer]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"seal.remote.chain.");
    h.update(RECORD_VERSION.as_bytes());
    for layer in layers {
        h.update(layer.diff_id.to_string().as_bytes());
        h.update(b"\n");
    }
    format!("chain:{}", h.finalize().to_hex())
}

/// A layer's record, reading its snapshot the first time.
fn layer_record(store: &Store, layer: &Layer) -> Result<Vec<(String, LayerNode)>, EngineError> {
    let key = format!("layer:{RECORD_VERSION}:{}", layer.diff_id);
    if let Some(bytes) = store.reapi_tree_get(&key)? {
        if let Ok(record) = serde_json::from_slice(&bytes) {
            return Ok(record);
        }
    }
    let dir = snapshot(store, layer)?;
    let record = scan(&dir)?;
    let bytes = serde_json::to_vec(&record)
        .map_err(|e| EngineError::Internal(format!("encoding a remote layer record: {e}")))?;
    store.reapi_tree_put(&key, &bytes)?;
    Ok(record)
}

/// Apply layer `index`'s record to the tree below it.
fn apply(tree: &mut FlatTree, index: usize, record: &[(String, LayerNode)]) {
    for (path, node) in record {
        match node {
            LayerNode::Remove => remove_subtree(tree, path),
            LayerNode::Dir {
                mode,
                opaque,
                owner,
            } => {
                let was_dir = matches!(tree.get(path), Some(Node::Dir { .. }));
                if *opaque || !was_dir {
                    remove_subtree(tree, path);
                }
                tree.insert(
                    path.clone(),
                    Node::Dir {
                        mode: *mode,
                        owner: *owner,
                    },
                );
            }
            LayerNode::File {
                hash,
                size,
                mode,
                owner,
            } => {
                remove_subtree(tree, path);
                tree.insert(
                    path.clone(),
                    Node::File {
                        hash: hash.clone(),
                        size: *size,
                        mode: *mode,
                        owner: *owner,
                        layer: Some(index),
                    },
                );
            }
            LayerNode::Symlink { target } => {
                remove_subtree(tree, path);
                tree.insert(
                    path.clone(),
                    Node::Symlink {
                        target: target.clone(),
                    },
                );
            }
        }
    }
}

/// Every path of a snapshot directory (overlay format), parents first; files hashed in
/// parallel.
fn scan(root: &Path) -> Result<Vec<(String, LayerNode)>, EngineError> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    walk(root, "", &mut out, &mut files)?;
    let hashes: Vec<Result<(usize, String), EngineError>> = files
        .par_iter()
        .map(|&i| {
            let path = root.join(&out[i].0);
            sha256_file(&path).map(|h| (i, h))
        })
        .collect();
    for result in hashes {
        let (i, hash) = result?;
        if let LayerNode::File { hash: slot, .. } = &mut out[i].1 {
            *slot = hash;
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn walk(
    root: &Path,
    rel: &str,
    out: &mut Vec<(String, LayerNode)>,
    files: &mut Vec<usize>,
) -> Result<(), EngineError> {
    let dir = root.join(rel);
    for name in crate::diff::sorted_names(&dir)? {
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let host = root.join(&path);
        let meta = fs::symlink_metadata(&host)
            .map_err(|e| EngineError::io("reading the metadata of", &host, e))?;
        let ft = meta.file_type();
        let mode = meta.mode() & 0o7777;
        let owner = (meta.uid(), meta.gid());
        if ft.is_dir() {
            let mut buf = [0u8; 4];
            let opaque = matches!(
                rustix::fs::lgetxattr(&host, OVERLAY_OPAQUE_XATTR, &mut buf),
                Ok(n) if &buf[..n] == b"y"
            );
            out.push((
                path.clone(),
                LayerNode::Dir {
                    mode,
                    opaque,
                    owner,
                },
            ));
            walk(root, &path, out, files)?;
        } else if ft.is_file() {
            files.push(out.len());
            out.push((
                path,
                LayerNode::File {
                    hash: String::new(),
                    size: meta.len() as i64,
                    mode,
                    owner,
                },
            ));
        } else if ft.is_symlink() {
            let target = fs::read_link(&host)
                .map_err(|e| EngineError::io("reading the symlink", &host, e))?
                .into_os_string()
                .into_string()
                .map_err(|_| EngineError::NonUtf8Path { path: host.clone() })?;
            out.push((path, LayerNode::Symlink { target }));
        } else {
            // Whiteouts (0/0 character devices) and what REAPI cannot carry: device nodes,
            // fifos, sockets. Either way nothing is at this path in the input root.
            out.push((path, LayerNode::Remove));
        }
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, EngineError> {
    use std::io::Read;
    let mut file = fs::File::open(path).map_err(|e| EngineError::io("opening", path, e))?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| EngineError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    Ok(hex::encode(sha.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(hash: &str) -> LayerNode {
        LayerNode::File {
            hash: hash.into(),
            size: 1,
            mode: 0o644,
            owner: (0, 0),
        }
    }

    fn dir(opaque: bool) -> LayerNode {
        LayerNode::Dir {
            mode: 0o755,
            opaque,
            owner: (0, 0),
        }
    }

    #[test]
    fn layers_fold_with_overlay_rules() {
        let mut tree = FlatTree::new();
        tree.insert(
            String::new(),
            Node::Dir {
                mode: 0o755,
                owner: (0, 0),
            },
        );
        apply(
            &mut tree,
            0,
            &[
                ("a".into(), dir(false)),
                ("a/x".into(), file("1")),
                ("b".into(), dir(false)),
                ("b/y".into(), file("2")),
                ("c".into(), file("3")),
            ],
        );
        apply(
            &mut tree,
            1,
            &[
                ("a".into(), dir(false)),
                ("a/z".into(), file("4")),
                ("b".into(), dir(true)),
                ("b/w".into(), file("5")),
                ("c".into(), LayerNode::Remove),
            ],
        );
        let paths: Vec<&str> = tree.keys().map(String::as_str).collect();
        assert_eq!(paths, ["", "a", "a/x", "a/z", "b", "b/w"]);
        assert!(matches!(tree["a/x"], Node::File { layer: Some(0), .. }));
        assert!(matches!(tree["a/z"], Node::File { layer: Some(1), .. }));
    }

    #[test]
    fn a_snapshot_scan_hashes_files_and_drops_whiteouts() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        fs::write(tmp.path().join("d/f"), b"hello").unwrap();
        std::os::unix::fs::symlink("d/f", tmp.path().join("l")).unwrap();
        let record = scan(tmp.path()).unwrap();
        let paths: Vec<&str> = record.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["d", "d/f", "l"]);
        let LayerNode::File { hash, size, .. } = &record[1].1 else {
            panic!("{record:?}");
        };
        assert_eq!(
            (hash.as_str(), *size),
            (
                "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                5
            )
        );
    }
}
