//! The tree a layer tar makes, in memory (metadata only): the same tree
//! [`crate::unpack::unpack_into`] makes on disk with `apply_whiteouts: false, privileged: true`,
//! rule for rule, so a RUN sees the same rootfs whichever form its snapshot has. Regular files'
//! bytes are handed to a [`DataSink`] as their entry is read and only their block address and
//! size are kept.
//!
//! The rules, in unpack's order: paths are cleaned (`./` dropped; absolute or `..` refused);
//! missing parents become directories `0755 0:0`; a parent that is a symlink is refused; a
//! `.wh.<name>` whiteout becomes a `0000 0:0` character device 0/0 unless this layer wrote
//! `<name>` itself; `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory; a
//! non-directory entry replaces whatever its path held; a directory entry over a directory
//! keeps its children and takes the entry's owner and kept xattrs (overlay's own stay), its
//! mode landing last (every directory entry's mode is set at the end on whatever directory is
//! then at that path, as unpack's deferred `chmod` does); a hardlink shares its target's node
//! and changes none of its metadata; only regular files and directories carry `user.*` xattrs
//! (Linux allows them nowhere else: unpack skips them on symlinks and fails on devices and
//! fifos, which the image instead stores without them).

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::unpack::{safe_relative, OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::xattrs::{self, Xattrs};
use crate::EngineError;

use super::format::{encode_dev, NAME_MAX};

/// An index into [`Tree::nodes`].
pub type NodeId = usize;
/// The root directory's id.
pub const ROOT: NodeId = 0;

/// What a node is, with what its type needs.
#[derive(Debug)]
pub enum Kind {
    Dir(BTreeMap<String, NodeId>),
    /// The first block of the bytes and their length.
    File {
        start: u32,
        size: u64,
    },
    Symlink(Vec<u8>),
    /// An encoded device number ([`encode_dev`]).
    Char(u32),
    Block(u32),
    Fifo,
}

/// One inode: a path or several (hardlinks) name it.
#[derive(Debug)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub xattrs: Xattrs,
}

impl Node {
    fn new(kind: Kind, mode: u32) -> Node {
        Node {
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Xattrs::new(),
        }
    }
}

/// Where regular files' bytes go as their entries are read.
pub trait DataSink {
    /// Store all of `data`; returns its first block and its length.
    fn store(&mut self, data: &mut dyn Read) -> io::Result<(u32, u64)>;
}

/// The nodes of a layer; those no path reaches any more (replaced) are left in place.
#[derive(Debug)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn children(&self, id: NodeId) -> Option<&BTreeMap<String, NodeId>> {
        match &self.nodes[id].kind {
            Kind::Dir(children) => Some(children),
            _ => None,
        }
    }

    fn child(&self, dir: NodeId, name: &str) -> Option<NodeId> {
        self.children(dir).and_then(|c| c.get(name).copied())
    }

    fn children_mut(&mut self, dir: NodeId) -> &mut BTreeMap<String, NodeId> {
        match &mut self.nodes[dir].kind {
            Kind::Dir(children) => children,
            // Callers only pass directories ([`Builder::parent_dir`] returns one).
            _ => unreachable!("a parent that is not a directory"),
        }
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }
}

fn bad(path: &str, reason: &str) -> EngineError {
    EngineError::UnsafeLayer {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

fn io_error(path: &str, errno: rustix::io::Errno) -> EngineError {
    EngineError::io("unpacking", Path::new(path), io::Error::from(errno))
}

fn names_of(rel: &Path) -> Vec<String> {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

struct Builder {
    tree: Tree,
    /// Paths this layer wrote: its own whiteouts never hide them.
    written: HashSet<PathBuf>,
    /// Directory entries' modes by path, set at the end (a later entry for a path wins).
    dir_modes: BTreeMap<PathBuf, u32>,
}

impl Builder {
    /// The directory at `names` (all components of a parent path), creating missing ones.
    fn parent_dir(&mut self, names: &[String], raw: &str) -> Result<NodeId, EngineError> {
        let mut dir = ROOT;
        for name in names {
            match self.tree.child(dir, name) {
                Some(id) => match self.tree.nodes[id].kind {
                    Kind::Dir(_) => dir = id,
                    Kind::Symlink(_) => return Err(bad(raw, "the path goes through a symlink")),
                    // `create_dir_all` through a file.
                    _ => return Err(io_error(raw, rustix::io::Errno::NOTDIR)),
                },
                None => {
                    check_name(name, raw)?;
                    let id = self.tree.push(Node::new(Kind::Dir(BTreeMap::new()), 0o755));
                    self.tree.children_mut(dir).insert(name.clone(), id);
                    dir = id;
                }
            }
        }
        Ok(dir)
    }

    /// The node a hardlink entry names: an existing non-directory reached through
    /// directories only.
    fn link_target(&self, link_rel: &Path, raw: &str) -> Result<NodeId, EngineError> {
        let mut node = ROOT;
        for name in names_of(link_rel) {
            let Some(children) = self.tree.children(node) else {
                return Err(bad(raw, "a hardlink to outside the layer"));
            };
            match children.get(&name) {
                Some(&id) if matches!(self.tree.nodes[id].kind, Kind::Symlink(_)) => {
                    return Err(bad(raw, "a hardlink through a symlink"))
                }
                Some(&id) => node = id,
                None => return Err(bad(raw, "a hardlink to outside the layer")),
            }
        }
        if matches!(self.tree.nodes[node].kind, Kind::Dir(_)) {
            return Err(bad(raw, "a hardlink to a directory"));
        }
        Ok(node)
    }

    /// Set every directory entry's mode on the directory now at its path, if any.
    fn apply_dir_modes(&mut self) {
        for (rel, mode) in std::mem::take(&mut self.dir_modes) {
            let mut node = ROOT;
            let mut found = true;
            for name in names_of(&rel) {
                match self.tree.child(node, &name) {
                    Some(id) if matches!(self.tree.nodes[id].kind, Kind::Dir(_)) => node = id,
                    _ => {
                        found = false;
                        break;
                    }
                }
            }
            if found {
                self.tree.nodes[node].mode = mode;
            }
        }
    }
}

fn check_name(name: &str, raw: &str) -> Result<(), EngineError> {
    if name.len() > NAME_MAX {
        return Err(io_error(raw, rustix::io::Errno::NAMETOOLONG));
    }
    Ok(())
}

/// Read the tar `reader` into a tree, its regular files' bytes into `sink`.
pub fn build(reader: impl Read, sink: &mut dyn DataSink) -> Result<Tree, EngineError> {
    let layer = Path::new("<layer>");
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| EngineError::io("reading a layer", layer, e))?;
    let mut b = Builder {
        tree: Tree {
            nodes: vec![Node::new(Kind::Dir(BTreeMap::new()), 0o755)],
        },
        written: HashSet::new(),
        dir_modes: BTreeMap::new(),
    };
    for entry in entries {
        let mut entry = entry.map_err(|e| EngineError::io("reading a layer", layer, e))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = safe_relative(&raw)
            .ok_or_else(|| bad(&raw, "the path is absolute or leaves the layer with `..`"))?;
        let mut names = names_of(&rel);
        let Some(name) = names.pop() else {
            // The layer's root (`./`): the snapshot's root is not the layer's to change.
            continue;
        };
        let parent = b.parent_dir(&names, &raw)?;
        if name == WHITEOUT_OPAQUE {
            b.tree.nodes[parent]
                .xattrs
                .insert(OVERLAY_OPAQUE_XATTR.to_string(), b"y".to_vec());
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if matches!(hidden, "" | "." | "..") {
                return Err(bad(&raw, "a whiteout that names no entry"));
            }
            if b.written.contains(&rel.with_file_name(hidden)) {
                continue;
            }
            check_name(hidden, &raw)?;
            let whiteout = b.tree.push(Node::new(Kind::Char(0), 0));
            b.tree
                .children_mut(parent)
                .insert(hidden.to_string(), whiteout);
            continue;
        }
        b.written.insert(rel.clone());
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let kind = header.entry_type();
        let uid = header.uid().ok().map(|u| u as u32);
        let gid = header.gid().ok().map(|g| g as u32);
        let mtime = header.mtime().unwrap_or(0);
        let wanted = xattrs::from_pax(&mut entry)
            .map_err(|e| EngineError::io("unpacking", Path::new(&raw), e))?;
        let existing = b.tree.child(parent, &name);
        if !kind.is_dir() {
            b.tree.children_mut(parent).remove(&name);
        }
        let new_kind = match kind {
            tar::EntryType::Directory => {
                b.dir_modes.insert(rel.clone(), mode);
                if let Some(id) = existing.filter(|&id| b.tree.children(id).is_some()) {
                    // An existing directory keeps its children and what is not the layer's
                    // to set (overlay's opaque marker); the entry replaces the rest.
                    let node = &mut b.tree.nodes[id];
                    node.xattrs.retain(|n, _| !xattrs::kept(n));
                    node.xattrs.extend(wanted);
                    node.uid = uid.unwrap_or(node.uid);
                    node.gid = gid.unwrap_or(node.gid);
                    node.mtime = mtime;
                    continue;
                }
                Kind::Dir(BTreeMap::new())
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let (start, size) = sink
                    .store(&mut entry)
                    .map_err(|e| EngineError::io("writing the image of", Path::new(&raw), e))?;
                Kind::File { start, size }
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| bad(&raw, "a symlink without a target"))?;
                if link.len() >= 4096 {
                    return Err(io_error(&raw, rustix::io::Errno::NAMETOOLONG));
                }
                Kind::Symlink(link.into_owned())
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| EngineError::io("unpacking", Path::new(&raw), e))?
                    .ok_or_else(|| bad(&raw, "a hardlink without a target"))?;
                let link_rel = safe_relative(&link.to_string_lossy())
                    .ok_or_else(|| bad(&raw, "a hardlink to outside the layer"))?;
                let target = b.link_target(&link_rel, &raw)?;
                check_name(&name, &raw)?;
                b.tree.children_mut(parent).insert(name, target);
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let dev = encode_dev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                if kind == tar::EntryType::Char {
                    Kind::Char(dev)
                } else {
                    Kind::Block(dev)
                }
            }
            tar::EntryType::Fifo => Kind::Fifo,
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => continue,
            other => return Err(bad(&raw, &format!("unsupported tar entry type {other:?}"))),
        };
        let is_dir = matches!(new_kind, Kind::Dir(_));
        let symlink = matches!(new_kind, Kind::Symlink(_));
        // Linux allows `user.*` attributes on regular files and directories only.
        let user_xattrs = is_dir || matches!(new_kind, Kind::File { .. });
        let mut node = Node::new(new_kind, if symlink { 0o777 } else { mode });
        if is_dir {
            // Its mode comes at the end; until then what `create_dir_all` gives.
            node.mode = 0o755;
        }
        node.uid = uid.unwrap_or(0);
        node.gid = gid.unwrap_or(0);
        node.mtime = mtime;
        // unpack skips them on a symlink (and fails the layer on a device or fifo, where
        // `setxattr` refuses them: the image drops them there too, as it could not hold them).
        node.xattrs = wanted
            .into_iter()
            .filter(|(n, _)| user_xattrs || !n.starts_with("user."))
            .collect();
        // A name Linux cannot create fails where unpack's create fails.
        check_name(&name, &raw)?;
        let id = b.tree.push(node);
        b.tree.children_mut(parent).insert(name, id);
    }
    b.apply_dir_modes();
    Ok(b.tree)
}
