//! Laying a [`Tree`] out as EROFS metadata after the data blocks: inodes first (the root at
//! nid 0, then breadth-first in name order, so a directory's children sit together), each
//! 32-byte aligned and kept within one block, then the directory blocks. Symlink targets are
//! inline after their inode (`FLAT_INLINE`) when they fit in its block, else in a block of
//! their own.

use std::io;

use crate::EngineError;

use super::format::{
    encode_dir, encode_xattrs, Dirent, Inode, XattrRefusal, BLOCK_SIZE, FLAT_INLINE, FLAT_PLAIN,
    FT_BLK, FT_CHR, FT_DIR, FT_FIFO, FT_REG, FT_SYMLINK, INODE_SIZE, NID_SLOT,
};
use super::tree::{Kind, NodeId, Tree, ROOT};

/// Where the metadata goes: a sequential writer whose next block is `block`.
pub trait BlockWriter {
    /// The block the next write starts at.
    fn block(&self) -> u64;
    /// Write `bytes` and zeros up to the next block boundary.
    fn write_blocks(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// What [`write_metadata`] wrote.
pub struct Metadata {
    pub root_nid: u16,
    pub inodes: u64,
    pub meta_blkaddr: u32,
}

/// One reachable node's place in the image.
struct Slot {
    node: NodeId,
    nid: u64,
    nlink: u32,
    xattrs: Vec<u8>,
    xattr_icount: u16,
    /// The symlink target stored after the inode, when inline.
    inline: bool,
}

fn file_type(kind: &Kind) -> (u8, u32) {
    match kind {
        Kind::Dir(_) => (FT_DIR, 0o040000),
        Kind::File { .. } => (FT_REG, 0o100000),
        Kind::Symlink(_) => (FT_SYMLINK, 0o120000),
        Kind::Char(_) => (FT_CHR, 0o020000),
        Kind::Block(_) => (FT_BLK, 0o060000),
        Kind::Fifo => (FT_FIFO, 0o010000),
    }
}

fn image_error(what: &str) -> EngineError {
    EngineError::io(
        "writing an EROFS image",
        std::path::Path::new("<image>"),
        io::Error::new(io::ErrorKind::InvalidData, what.to_string()),
    )
}

/// Write the inodes and directories of `tree` from `out`'s next block on.
pub fn write_metadata(tree: &Tree, out: &mut dyn BlockWriter) -> Result<Metadata, EngineError> {
    let write_err =
        |e| EngineError::io("writing an EROFS image", std::path::Path::new("<image>"), e);
    // Breadth-first order of the reachable nodes; a hardlinked node once.
    let mut index: Vec<Option<usize>> = vec![None; tree.nodes.len()];
    let mut links = vec![0u32; tree.nodes.len()];
    // A directory's parent (directories have one name); the root is its own.
    let mut parent = vec![ROOT; tree.nodes.len()];
    let mut order = vec![ROOT];
    index[ROOT] = Some(0);
    let mut next = 0;
    while next < order.len() {
        let id = order[next];
        next += 1;
        for &child in tree.children(id).into_iter().flat_map(|c| c.values()) {
            links[child] += 1;
            if index[child].is_none() {
                parent[child] = id;
                index[child] = Some(order.len());
                order.push(child);
            }
        }
    }
    // Inode places: 32-byte aligned, not crossing a block when they fit in one.
    let mut slots = Vec::with_capacity(order.len());
    let mut offset = 0u64;
    for &id in &order {
        let node = &tree.nodes[id];
        let (xattrs, xattr_icount) = encode_xattrs(&node.xattrs).map_err(|(name, why)| {
            image_error(&format!(
                "the extended attribute `{name}` cannot be stored ({})",
                match why {
                    XattrRefusal::NoPrefix => "no EROFS name prefix",
                    XattrRefusal::NameTooLong => "its name is empty or too long",
                    XattrRefusal::ValueTooLong => "too long",
                }
            ))
        })?;
        let mut size = (INODE_SIZE + xattrs.len()) as u64;
        let mut inline = false;
        if let Kind::Symlink(target) = &node.kind {
            if size + target.len() as u64 <= BLOCK_SIZE {
                size += target.len() as u64;
                inline = true;
            }
        }
        offset = offset.next_multiple_of(NID_SLOT);
        if size <= BLOCK_SIZE && offset % BLOCK_SIZE + size > BLOCK_SIZE {
            offset = offset.next_multiple_of(BLOCK_SIZE);
        }
        let nlink = match &node.kind {
            Kind::Dir(children) => {
                2 + children
                    .values()
                    .filter(|&&c| matches!(tree.nodes[c].kind, Kind::Dir(_)))
                    .count() as u32
            }
            _ => links[id],
        };
        slots.push(Slot {
            node: id,
            nid: offset / NID_SLOT,
            nlink,
            xattrs,
            xattr_icount,
            inline,
        });
        offset += size;
    }
    let meta_blkaddr = out.block();
    let meta_blocks = offset.div_ceil(BLOCK_SIZE);
    let nid_of = |id: NodeId| index[id].map(|i| slots[i].nid).unwrap_or(0);

    // Directory blocks and non-inline symlink targets follow the inodes, in inode order.
    let mut next_block = meta_blkaddr + meta_blocks;
    let mut extra: Vec<Vec<u8>> = Vec::new();
    let mut placed: Vec<(u32, u64)> = vec![(0, 0); slots.len()];
    for (i, slot) in slots.iter().enumerate() {
        let node = &tree.nodes[slot.node];
        let blocks = match &node.kind {
            Kind::Dir(children) => {
                let mut entries: Vec<Dirent<'_>> = Vec::with_capacity(children.len() + 2);
                entries.push(Dirent {
                    name: b".",
                    nid: slot.nid,
                    file_type: FT_DIR,
                });
                entries.push(Dirent {
                    name: b"..",
                    nid: nid_of(parent[slot.node]),
                    file_type: FT_DIR,
                });
                for (name, &child) in children {
                    entries.push(Dirent {
                        name: name.as_bytes(),
                        nid: nid_of(child),
                        file_type: file_type(&tree.nodes[child].kind).0,
                    });
                }
                entries.sort_by(|a, b| a.name.cmp(b.name));
                encode_dir(&entries)
            }
            Kind::Symlink(target) if !slot.inline => vec![target.clone()],
            _ => continue,
        };
        let count = blocks.len() as u64;
        let size = (count - 1) * BLOCK_SIZE + blocks.last().map_or(0, |b| b.len() as u64);
        let start = u32::try_from(next_block).map_err(|_| image_error("the image is too large"))?;
        placed[i] = (start, size);
        next_block += count;
        extra.extend(blocks);
    }

    let mut meta = vec![0u8; (meta_blocks * BLOCK_SIZE) as usize];
    for (i, slot) in slots.iter().enumerate() {
        let node = &tree.nodes[slot.node];
        let (_, type_bits) = file_type(&node.kind);
        let (layout, size, i_u) = match &node.kind {
            Kind::File { start, size } => (FLAT_PLAIN, *size, *start),
            Kind::Dir(_) => (FLAT_PLAIN, placed[i].1, placed[i].0),
            Kind::Symlink(target) if slot.inline => (FLAT_INLINE, target.len() as u64, 0),
            Kind::Symlink(_) => (FLAT_PLAIN, placed[i].1, placed[i].0),
            Kind::Char(dev) | Kind::Block(dev) => (FLAT_PLAIN, 0, *dev),
            Kind::Fifo => (FLAT_PLAIN, 0, 0),
        };
        let inode = Inode {
            layout,
            xattr_icount: slot.xattr_icount,
            mode: (type_bits | (node.mode & 0o7777)) as u16,
            size,
            i_u,
            ino: u32::try_from(i + 1).map_err(|_| image_error("too many inodes"))?,
            uid: node.uid,
            gid: node.gid,
            mtime: node.mtime,
            nlink: slot.nlink,
        };
        let at = (slot.nid * NID_SLOT) as usize;
        let mut bytes = inode.encode().to_vec();
        bytes.extend_from_slice(&slot.xattrs);
        if let Kind::Symlink(target) = &node.kind {
            if slot.inline {
                bytes.extend_from_slice(target);
            }
        }
        meta[at..at + bytes.len()].copy_from_slice(&bytes);
    }
    out.write_blocks(&meta).map_err(write_err)?;
    for block in &extra {
        out.write_blocks(block).map_err(write_err)?;
    }
    let root_nid = u16::try_from(slots[0].nid).map_err(|_| image_error("the root nid"))?;
    Ok(Metadata {
        root_nid,
        inodes: slots.len() as u64,
        meta_blkaddr: u32::try_from(meta_blkaddr)
            .map_err(|_| image_error("the image is too large"))?,
    })
}
