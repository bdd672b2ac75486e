//! The on-disk structures of EROFS this writer uses, encoded little-endian as Linux 6.x reads
//! them (`fs/erofs/erofs_fs.h`): the superblock, the 64-byte extended inode, inline xattrs and
//! directory entries. Nothing here knows about tar or trees: it only turns values into bytes.

use crate::xattrs::Xattrs;

/// Block size (4 KiB) and its shift.
pub const BLOCK_SIZE: u64 = 4096;
pub const BLOCK_BITS: u8 = 12;
/// Where the superblock starts.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
const MAGIC: u32 = 0xE0F5_E1E2;
/// An extended inode's size; inode slots (nids) are 32 bytes.
pub const INODE_SIZE: usize = 64;
pub const NID_SLOT: u64 = 32;
/// A directory entry's fixed part.
pub const DIRENT_SIZE: usize = 12;
/// The longest name a directory entry holds.
pub const NAME_MAX: usize = 255;

/// `i_format` data layouts.
pub const FLAT_PLAIN: u16 = 0;
pub const FLAT_INLINE: u16 = 2;

/// Directory entry file types (the generic `FT_*` values).
pub const FT_REG: u8 = 1;
pub const FT_DIR: u8 = 2;
pub const FT_CHR: u8 = 3;
pub const FT_BLK: u8 = 4;
pub const FT_FIFO: u8 = 5;
pub const FT_SYMLINK: u8 = 7;

/// The superblock's variable fields.
pub struct Superblock {
    pub root_nid: u16,
    pub inodes: u64,
    pub blocks: u32,
    pub meta_blkaddr: u32,
    /// The file system's UUID (overlayfs tells its lowers apart by it).
    pub uuid: [u8; 16],
}

impl Superblock {
    /// The 128 bytes at [`SUPERBLOCK_OFFSET`]. No feature bits: plain uncompressed data,
    /// extended inodes with their own mtime, no checksum, zero build time and a UUID taken from
    /// the content (so the same tar gives the same bytes).
    pub fn encode(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        // checksum (4..8) and feature_compat (8..12) stay 0.
        b[12] = BLOCK_BITS;
        b[14..16].copy_from_slice(&self.root_nid.to_le_bytes());
        b[16..24].copy_from_slice(&self.inodes.to_le_bytes());
        // build_time (24..32), build_time_nsec (32..36): only compact inodes use them.
        b[36..40].copy_from_slice(&self.blocks.to_le_bytes());
        b[40..44].copy_from_slice(&self.meta_blkaddr.to_le_bytes());
        // xattr_blkaddr (44..48): 0.
        b[48..64].copy_from_slice(&self.uuid);
        // volume name, feature_incompat and the rest: 0.
        b
    }
}

/// One extended inode's fields.
pub struct Inode {
    pub layout: u16,
    pub xattr_icount: u16,
    /// File type and permission bits.
    pub mode: u16,
    pub size: u64,
    /// Start block (files, directories, plain symlinks) or the encoded device number.
    pub i_u: u32,
    pub ino: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub nlink: u32,
}

impl Inode {
    pub fn encode(&self) -> [u8; INODE_SIZE] {
        let mut b = [0u8; INODE_SIZE];
        // Bit 0: the extended (64-byte) form; bits 1-3: the data layout.
        let format = 1 | (self.layout << 1);
        b[0..2].copy_from_slice(&format.to_le_bytes());
        b[2..4].copy_from_slice(&self.xattr_icount.to_le_bytes());
        b[4..6].copy_from_slice(&self.mode.to_le_bytes());
        b[8..16].copy_from_slice(&self.size.to_le_bytes());
        b[16..20].copy_from_slice(&self.i_u.to_le_bytes());
        b[20..24].copy_from_slice(&self.ino.to_le_bytes());
        b[24..28].copy_from_slice(&self.uid.to_le_bytes());
        b[28..32].copy_from_slice(&self.gid.to_le_bytes());
        b[32..40].copy_from_slice(&self.mtime.to_le_bytes());
        // mtime_nsec (40..44): tar headers carry whole seconds.
        b[44..48].copy_from_slice(&self.nlink.to_le_bytes());
        b
    }
}

/// Linux's `new_encode_dev`: what `i_u` holds for a device node.
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// The name index and suffix of an extended attribute name, or `None` for a family EROFS
/// has no short prefix for. [`crate::xattrs::from_pax`] only keeps `user.*`, `trusted.*` and
/// `security.capability`, all of which have one.
fn name_index(name: &str) -> Option<(u8, &str)> {
    [("user.", 1u8), ("trusted.", 4), ("security.", 6)]
        .iter()
        .find_map(|(prefix, index)| name.strip_prefix(prefix).map(|s| (*index, s)))
}

/// Why an attribute cannot be stored.
#[derive(Debug)]
pub enum XattrRefusal {
    NoPrefix,
    NameTooLong,
    ValueTooLong,
}

/// The inline xattr area of an inode (`erofs_xattr_ibody_header` and the entries, each
/// 4-byte aligned), empty when there are none, with its `i_xattr_icount`.
pub fn encode_xattrs(xattrs: &Xattrs) -> Result<(Vec<u8>, u16), (String, XattrRefusal)> {
    if xattrs.is_empty() {
        return Ok((Vec::new(), 0));
    }
    // Header: name filter 0 (the filter feature is off), no shared xattrs.
    let mut out = vec![0u8; 12];
    for (name, value) in xattrs {
        let (index, suffix) = name_index(name).ok_or((name.clone(), XattrRefusal::NoPrefix))?;
        if suffix.is_empty() || suffix.len() > NAME_MAX {
            return Err((name.clone(), XattrRefusal::NameTooLong));
        }
        let value_len =
            u16::try_from(value.len()).map_err(|_| (name.clone(), XattrRefusal::ValueTooLong))?;
        out.push(suffix.len() as u8);
        out.push(index);
        out.extend_from_slice(&value_len.to_le_bytes());
        out.extend_from_slice(suffix.as_bytes());
        out.extend_from_slice(value);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let icount = u16::try_from((out.len() - 12) / 4 + 1)
        .map_err(|_| (String::new(), XattrRefusal::ValueTooLong))?;
    Ok((out, icount))
}

/// One directory entry to encode.
pub struct Dirent<'a> {
    pub name: &'a [u8],
    pub nid: u64,
    pub file_type: u8,
}

/// Split sorted entries into directory blocks: each block holds its entries' fixed parts,
/// then their names back to back (no terminator: the next entry's `nameoff`, or the end of
/// the block or of the directory, ends a name). Returns the blocks (the last one trimmed to
/// its used length, which with the others makes the directory's size).
pub fn encode_dir(entries: &[Dirent<'_>]) -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut used = 0usize;
        while end < entries.len() {
            let more = DIRENT_SIZE + entries[end].name.len();
            if used + more > BLOCK_SIZE as usize {
                break;
            }
            used += more;
            end += 1;
        }
        let chunk = &entries[start..end];
        let mut block = Vec::with_capacity(used);
        let mut nameoff = DIRENT_SIZE * chunk.len();
        for e in chunk {
            block.extend_from_slice(&e.nid.to_le_bytes());
            block.extend_from_slice(&(nameoff as u16).to_le_bytes());
            block.push(e.file_type);
            block.push(0);
            nameoff += e.name.len();
        }
        for e in chunk {
            block.extend_from_slice(e.name);
        }
        blocks.push(block);
        start = end;
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_encode_as_linux_does() {
        assert_eq!(encode_dev(1, 3), 0x103);
        assert_eq!(encode_dev(0, 0), 0);
        // Minor numbers above 255 go to bits 20 and up.
        assert_eq!(encode_dev(259, 0x12345), 0x45 | (259 << 8) | (0x123 << 20));
    }

    #[test]
    fn xattrs_use_short_prefixes_and_align() {
        let mut x = Xattrs::new();
        x.insert("user.a".into(), b"1".to_vec());
        x.insert("security.capability".into(), vec![0; 20]);
        let (bytes, icount) = encode_xattrs(&x).unwrap();
        // header 12 + (4 + 10 + 20 = 34 -> 36) + (4 + 1 + 1 = 6 -> 8)
        assert_eq!(bytes.len(), 12 + 36 + 8);
        assert_eq!(12 + (icount as usize - 1) * 4, bytes.len());
        assert_eq!(&bytes[12..16], &[10, 6, 20, 0]);
        let mut bad = Xattrs::new();
        bad.insert("system.x".into(), vec![]);
        assert!(encode_xattrs(&bad).is_err());
        let mut big = Xattrs::new();
        big.insert("user.big".into(), vec![0; 70_000]);
        assert!(encode_xattrs(&big).is_err());
    }

    #[test]
    fn directory_blocks_hold_sorted_entries_without_crossing() {
        let names: Vec<Vec<u8>> = (0..1000).map(|i| format!("n{i:05}").into_bytes()).collect();
        let entries: Vec<Dirent<'_>> = names
            .iter()
            .map(|n| Dirent {
                name: n,
                nid: 7,
                file_type: FT_REG,
            })
            .collect();
        let blocks = encode_dir(&entries);
        // 18 bytes an entry: 227 fit in a block.
        assert_eq!(blocks.len(), 1000usize.div_ceil(227));
        assert!(blocks.iter().all(|b| b.len() <= BLOCK_SIZE as usize));
        let first = &blocks[1];
        let nameoff = u16::from_le_bytes([first[8], first[9]]) as usize;
        assert_eq!(nameoff, 227 * DIRENT_SIZE);
        assert_eq!(&first[nameoff..nameoff + 6], b"n00227");
    }
}
