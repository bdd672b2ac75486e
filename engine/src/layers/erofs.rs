//! A layer's snapshot as one EROFS image, which Linux (≥ 6.12) mounts straight from a regular
//! file: the tree [`crate::unpack::unpack_into`] makes in overlayfs' format (whiteouts as 0/0
//! character devices, opaque directories as `trusted.overlay.opaque=y`), with every mode,
//! owner, kept xattr and hardlink, in a single file instead of one inode per entry.
//!
//! [`write_image`] streams: each regular file's bytes are copied to the image's next blocks as
//! its tar entry is read (plain, uncompressed, 4 KiB blocks), only metadata stays in memory
//! ([`tree`]), and the inodes and directories are written after the data ([`image`]), the
//! superblock last ([`format`]). The same tar gives the same bytes: no clock, and the UUID is
//! the tar's own (its first 16 bytes of blake3), so two layers mounted in one overlay have
//! file systems of different UUIDs, which overlayfs needs to map their inode numbers (`xino`).

mod format;
mod image;
mod tree;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::EngineError;

use format::{Superblock, BLOCK_SIZE, SUPERBLOCK_OFFSET};

/// What `write_image` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSummary {
    /// Inodes in the image (a hardlinked file counts once).
    pub inodes: u64,
    /// The image's length.
    pub bytes: u64,
}

/// Write the EROFS image of the uncompressed layer tar `tar` to `out` (a new, empty, writable
/// file positioned at 0), in overlayfs' format: the same tree `unpack::unpack_into` makes with
/// `apply_whiteouts: false, privileged: true`. Deterministic: the same tar gives the same bytes.
pub fn write_image(tar: impl Read, out: &mut File) -> Result<ImageSummary, EngineError> {
    let image = Path::new("<image>");
    let err = |e| EngineError::io("writing an EROFS image", image, e);
    // Offsets are absolute: whatever the file held or where it was positioned, start over.
    out.set_len(0).map_err(err)?;
    out.seek(SeekFrom::Start(0)).map_err(err)?;
    let mut writer = Blocks {
        out: BufWriter::with_capacity(1 << 20, &mut *out),
        block: 0,
    };
    // Block 0 holds the superblock, written last.
    writer
        .out
        .write_all(&[0u8; BLOCK_SIZE as usize])
        .map_err(err)?;
    writer.block = 1;
    let mut tar = Hashed {
        inner: tar,
        hasher: blake3::Hasher::new(),
    };
    let tree = tree::build(&mut tar, &mut writer)?;
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&tar.hasher.finalize().as_bytes()[..16]);
    let meta = image::write_metadata(&tree, &mut writer)?;
    let blocks = writer.block;
    let out = writer.out.into_inner().map_err(|e| err(e.into_error()))?;
    let superblock = Superblock {
        root_nid: meta.root_nid,
        inodes: meta.inodes,
        blocks: u32::try_from(blocks)
            .map_err(|_| err(io::Error::other("the image is larger than 16 TiB")))?,
        meta_blkaddr: meta.meta_blkaddr,
        uuid,
    };
    out.seek(SeekFrom::Start(SUPERBLOCK_OFFSET)).map_err(err)?;
    out.write_all(&superblock.encode()).map_err(err)?;
    // Leave the file positioned at its end, as a sequential writer would.
    out.seek(SeekFrom::Start(blocks * BLOCK_SIZE))
        .map_err(err)?;
    Ok(ImageSummary {
        inodes: meta.inodes,
        bytes: blocks * BLOCK_SIZE,
    })
}

/// A reader that hashes what is read through it.
struct Hashed<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The image being written, block by block.
struct Blocks<'f> {
    out: BufWriter<&'f mut File>,
    /// The next block to write.
    block: u64,
}

impl Blocks<'_> {
    /// Zeros from `len` bytes into a block to its end.
    fn pad(&mut self, len: u64) -> io::Result<()> {
        const ZEROS: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];
        let rest = (BLOCK_SIZE - len % BLOCK_SIZE) % BLOCK_SIZE;
        self.out.write_all(&ZEROS[..rest as usize])?;
        self.block += len.div_ceil(BLOCK_SIZE);
        Ok(())
    }
}

impl image::BlockWriter for Blocks<'_> {
    fn block(&self) -> u64 {
        self.block
    }

    fn write_blocks(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.pad(bytes.len() as u64)
    }
}

impl tree::DataSink for Blocks<'_> {
    fn store(&mut self, data: &mut dyn Read) -> io::Result<(u32, u64)> {
        let start = self.block;
        let size = io::copy(data, &mut self.out)?;
        if size == 0 {
            return Ok((0, 0));
        }
        self.pad(size)?;
        let start = u32::try_from(start)
            .map_err(|_| io::Error::other("the image is larger than 16 TiB"))?;
        Ok((start, size))
    }
}
