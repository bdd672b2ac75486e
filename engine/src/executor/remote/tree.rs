//! A rootfs as REAPI sees it: a flat map from path to node ([`FlatTree`]), and its encoding as
//! a Merkle tree of `Directory` messages. Both the input root (from layers) and the output
//! root (from the server's `Tree`) are flat trees, so the step's layer is their difference
//! (`output.rs`).
//!
//! REAPI carries files (bytes, executable bit, `unix_mode` node property), directories
//! (`unix_mode`) and symlinks. It has no owners, no extended attributes, no device nodes, fifos
//! or sockets and no hardlinks: those are not part of the input root, and a remote step's new
//! files belong to root.

use std::collections::BTreeMap;

use seal_remote::digest;
use seal_remote::proto::{Digest, Directory, DirectoryNode, FileNode, NodeProperties, SymlinkNode};
use serde::{Deserialize, Serialize};

/// Rootfs paths (no leading `/`; `""` is the root directory) to nodes.
pub type FlatTree = BTreeMap<String, Node>;

/// One path of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Node {
    Dir {
        mode: u32,
        /// uid and gid (input trees only: REAPI has no owners).
        #[serde(default, skip_serializing_if = "is_root")]
        owner: (u32, u32),
    },
    File {
        hash: String,
        size: i64,
        mode: u32,
        #[serde(default, skip_serializing_if = "is_root")]
        owner: (u32, u32),
        /// Which layer of the chain holds the bytes (input trees only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layer: Option<usize>,
    },
    Symlink {
        target: String,
    },
}

fn is_root(owner: &(u32, u32)) -> bool {
    *owner == (0, 0)
}

impl Node {
    /// The file's REAPI digest.
    pub fn file_digest(hash: &str, size: i64) -> Digest {
        Digest {
            hash: hash.to_string(),
            size_bytes: size,
        }
    }

    /// Same content and metadata, wherever the bytes are.
    pub fn same_as(&self, other: &Node) -> bool {
        match (self, other) {
            (
                Node::File {
                    hash, size, mode, ..
                },
                Node::File {
                    hash: h2,
                    size: s2,
                    mode: m2,
                    ..
                },
            ) => hash == h2 && size == s2 && mode == m2,
            (Node::Dir { mode, .. }, Node::Dir { mode: m2, .. }) => mode == m2,
            (a, b) => a == b,
        }
    }
}

/// The parent of a path (`""` for top-level names).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// The last component of a path.
pub fn base_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

/// Remove `path` and everything under it.
pub fn remove_subtree(tree: &mut FlatTree, path: &str) {
    tree.remove(path);
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let under: Vec<String> = tree
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in under {
        if !k.is_empty() {
            tree.remove(&k);
        }
    }
}

/// A tree encoded as REAPI messages.
pub struct Encoded {
    pub root: Digest,
    /// Every directory message, by digest, with its bytes.
    pub directories: Vec<(Digest, Vec<u8>)>,
}

/// Encode `tree` (which must hold `""` and every parent of every path) as `Directory`
/// messages, children sorted by name as REAPI requires; modes as `unix_mode`.
pub fn encode(tree: &FlatTree) -> Encoded {
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for path in tree.keys().filter(|p| !p.is_empty()) {
        children.entry(parent(path)).or_default().push(path);
    }
    let mut directories = Vec::new();
    let root = encode_dir(tree, "", &children, &mut directories);
    directories.sort_by(|a, b| a.0.hash.cmp(&b.0.hash));
    directories.dedup_by(|a, b| a.0 == b.0);
    Encoded { root, directories }
}

fn encode_dir(
    tree: &FlatTree,
    path: &str,
    children: &BTreeMap<&str, Vec<&str>>,
    out: &mut Vec<(Digest, Vec<u8>)>,
) -> Digest {
    let mode = match tree.get(path) {
        Some(Node::Dir { mode, .. }) => *mode,
        _ => 0o755,
    };
    let mut dir = Directory {
        node_properties: Some(mode_properties(mode)),
        ..Default::default()
    };
    // Siblings share their parent's prefix, so path order is name order.
    let mut names: Vec<&str> = children.get(path).cloned().unwrap_or_default();
    names.sort_by_key(|p| base_name(p));
    for child in names {
        let name = base_name(child).to_string();
        match &tree[child] {
            Node::Dir { .. } => {
                let digest = encode_dir(tree, child, children, out);
                dir.directories.push(DirectoryNode {
                    name,
                    digest: Some(digest),
                });
            }
            Node::File {
                hash, size, mode, ..
            } => dir.files.push(FileNode {
                name,
                digest: Some(Node::file_digest(hash, *size)),
                is_executable: mode & 0o111 != 0,
                node_properties: Some(mode_properties(*mode)),
            }),
            Node::Symlink { target } => dir.symlinks.push(SymlinkNode {
                name,
                target: target.clone(),
                node_properties: None,
            }),
        }
    }
    let (digest, bytes) = digest::of_message(&dir);
    out.push((digest.clone(), bytes));
    digest
}

fn mode_properties(mode: u32) -> NodeProperties {
    NodeProperties {
        unix_mode: Some(seal_remote::protobuf::UInt32Value {
            value: mode & 0o7777,
        }),
        ..Default::default()
    }
}

/// The flat tree of a REAPI `Tree` (root and every child directory): file modes from
/// `unix_mode` when the server sent it, else from `fallback` (the input tree) when the file is
/// unchanged, else 0755/0644 by the executable bit. `None` when the tree names a directory
/// it does not contain. `Err` names a directory digest (hash) missing from `children`.
pub fn flatten(
    root: &Directory,
    children: &BTreeMap<String, Directory>,
    fallback: &FlatTree,
) -> Result<FlatTree, String> {
    let mut tree = FlatTree::new();
    flatten_dir(root, "", children, fallback, &mut tree, 0)?;
    Ok(tree)
}

fn flatten_dir(
    dir: &Directory,
    path: &str,
    children: &BTreeMap<String, Directory>,
    fallback: &FlatTree,
    tree: &mut FlatTree,
    depth: usize,
) -> Result<(), String> {
    if depth > 4096 {
        return Err("(a tree deeper than 4096 directories)".into());
    }
    let mode =
        unix_mode(dir.node_properties.as_ref()).unwrap_or_else(|| match fallback.get(path) {
            Some(Node::Dir { mode, .. }) => *mode,
            _ => 0o755,
        });
    tree.insert(
        path.to_string(),
        Node::Dir {
            mode,
            owner: (0, 0),
        },
    );
    let join = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}/{name}")
        }
    };
    for file in &dir.files {
        let p = join(&file.name);
        let digest = file.digest.clone().unwrap_or_default();
        let mode =
            unix_mode(file.node_properties.as_ref()).unwrap_or_else(|| match fallback.get(&p) {
                Some(Node::File {
                    hash, mode, size, ..
                }) if *hash == digest.hash
                    && *size == digest.size_bytes
                    && (mode & 0o111 != 0) == file.is_executable =>
                {
                    *mode
                }
                _ if file.is_executable => 0o755,
                _ => 0o644,
            });
        tree.insert(
            p,
            Node::File {
                hash: digest.hash,
                size: digest.size_bytes,
                mode,
                owner: (0, 0),
                layer: None,
            },
        );
    }
    for link in &dir.symlinks {
        tree.insert(
            join(&link.name),
            Node::Symlink {
                target: link.target.clone(),
            },
        );
    }
    for sub in &dir.directories {
        let hash = sub
            .digest
            .as_ref()
            .map(|d| d.hash.clone())
            .unwrap_or_default();
        let child = children.get(&hash).ok_or(hash)?;
        flatten_dir(child, &join(&sub.name), children, fallback, tree, depth + 1)?;
    }
    Ok(())
}

fn unix_mode(properties: Option<&NodeProperties>) -> Option<u32> {
    properties
        .and_then(|p| p.unix_mode.as_ref())
        .map(|m| m.value & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(hash: &str, mode: u32) -> Node {
        Node::File {
            hash: hash.into(),
            size: 1,
            mode,
            owner: (0, 0),
            layer: Some(0),
        }
    }

    fn sample() -> FlatTree {
        let mut t = FlatTree::new();
        t.insert(
            "".into(),
            Node::Dir {
                mode: 0o755,
                owner: (0, 0),
            },
        );
        t.insert(
            "bin".into(),
            Node::Dir {
                mode: 0o755,
                owner: (0, 0),
            },
        );
        t.insert("bin/sh".into(), file("aa", 0o4755));
        t.insert(
            "bin-old".into(),
            Node::Symlink {
                target: "bin".into(),
            },
        );
        t.insert(
            "etc".into(),
            Node::Dir {
                mode: 0o700,
                owner: (0, 0),
            },
        );
        t.insert("etc/a".into(), file("bb", 0o644));
        t
    }

    #[test]
    fn encode_then_flatten_gives_the_tree_back() {
        let tree = sample();
        let encoded = encode(&tree);
        let by_digest: BTreeMap<String, Directory> = encoded
            .directories
            .iter()
            .map(|(d, bytes)| {
                (
                    d.hash.clone(),
                    prost::Message::decode(bytes.as_slice()).unwrap(),
                )
            })
            .collect();
        let root = &by_digest[&encoded.root.hash];
        // Sorted by name: `bin` before `etc`, the symlink in its own list.
        let names: Vec<&str> = root.directories.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["bin", "etc"]);
        let mut back = flatten(root, &by_digest, &FlatTree::new()).unwrap();
        for node in back.values_mut() {
            if let Node::File { layer, .. } = node {
                *layer = Some(0);
            }
        }
        assert_eq!(back, tree);
    }

    #[test]
    fn equal_trees_have_equal_roots_and_a_change_changes_the_root() {
        let a = encode(&sample()).root;
        assert_eq!(a, encode(&sample()).root);
        let mut changed = sample();
        changed.insert(
            "etc".into(),
            Node::Dir {
                mode: 0o755,
                owner: (0, 0),
            },
        );
        assert_ne!(a, encode(&changed).root);
    }

    #[test]
    fn without_unix_mode_an_unchanged_file_keeps_its_input_mode() {
        let input = sample();
        let dir = Directory {
            files: vec![
                FileNode {
                    name: "sh".into(),
                    digest: Some(Node::file_digest("aa", 1)),
                    is_executable: true,
                    node_properties: None,
                },
                FileNode {
                    name: "new".into(),
                    digest: Some(Node::file_digest("cc", 1)),
                    is_executable: true,
                    node_properties: None,
                },
            ],
            ..Default::default()
        };
        let (d, _) = digest::of_message(&dir);
        let root = Directory {
            directories: vec![DirectoryNode {
                name: "bin".into(),
                digest: Some(d.clone()),
            }],
            ..Default::default()
        };
        let children = BTreeMap::from([(d.hash.clone(), dir)]);
        let tree = flatten(&root, &children, &input).unwrap();
        assert!(matches!(tree["bin/sh"], Node::File { mode: 0o4755, .. }));
        assert!(matches!(tree["bin/new"], Node::File { mode: 0o755, .. }));
        // A directory the tree does not hold.
        assert_eq!(
            flatten(&root, &BTreeMap::new(), &input),
            Err(d.hash.clone())
        );
    }

    #[test]
    fn remove_subtree_spares_siblings_with_a_common_prefix() {
        let mut t = sample();
        remove_subtree(&mut t, "bin");
        assert!(!t.contains_key("bin") && !t.contains_key("bin/sh"));
        assert!(t.contains_key("bin-old"));
    }
}
