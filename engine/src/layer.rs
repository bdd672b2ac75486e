//! Deterministic layer tars, compressed and stored as blobs in one streaming pass.
//!
//! Entries are written in sorted path order with every mtime set to SOURCE_DATE_EPOCH, uid/gid
//! and mode kept, owner names dropped: equal content gives equal bytes on any machine. The tar
//! stream is hashed (diffID) before compression and the blob after it, while it is written.
//! File bytes are re-hashed as they stream in and compared with the hash the cache key was
//! computed from, so a file edited mid-build fails the step instead of caching a lie.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use seal_store::oci::{MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD};
use seal_store::{BlobStore, BlobWriter, Digest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::llb::{Compression, LayerFormat};
use crate::EngineError;

/// zstd level for layers: fast, since layers are rebuilt often and mostly binaries.
const ZSTD_LEVEL: i32 = 3;

/// One stored layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The blob: sha256 of the compressed bytes.
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// Known to hold nothing image collection reads (no entry under `manifests/`,
    /// `application/apps/`, `charts/` or `registry/`), so collection never decompresses it.
    /// False when unknown (layers of pulled or loaded images).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub collect_free: bool,
}

/// An entry to write into a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Rootfs-relative path without a leading or trailing `/`.
    pub path: String,
    pub kind: LayerEntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The content of a [`LayerEntry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEntryKind {
    Dir,
    /// A host file expected to have this size and blake3.
    File {
        source: PathBuf,
        size: u64,
        blake3: [u8; 32],
    },
    Symlink {
        target: String,
    },
    Bytes(Vec<u8>),
    /// A blob of the store, verified against its sha256 digest while it is copied.
    Blob {
        source: PathBuf,
        size: u64,
        digest: Digest,
    },
}

/// Write `entries` (sorted by path, parents first) as a layer blob.
pub fn write_layer(
    blobs: &BlobStore,
    entries: &[LayerEntry],
    format: LayerFormat,
    cancel: &AtomicBool,
) -> Result<Layer, EngineError> {
    let blob = blobs.writer()?;
    let compressor = Compressor::new(blob, format.compression)
        .map_err(|e| EngineError::io("starting compression", &PathBuf::new(), e))?;
    let mut tar = tar::Builder::new(DiffIdWriter {
        inner: compressor,
        hasher: Sha256::new(),
    });
    let epoch = format.source_date_epoch.max(0) as u64;
    let wrap = |e: io::Error| EngineError::io("writing a layer", &PathBuf::from("<layer>"), e);
    for entry in entries {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(entry.mode & 0o7777);
        h.set_uid(entry.uid as u64);
        h.set_gid(entry.gid as u64);
        h.set_mtime(epoch);
        match &entry.kind {
            LayerEntryKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, format!("{}/", entry.path), io::empty())
                    .map_err(wrap)?;
            }
            LayerEntryKind::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, &entry.path, target).map_err(wrap)?;
            }
            LayerEntryKind::Bytes(bytes) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(bytes.len() as u64);
                tar.append_data(&mut h, &entry.path, bytes.as_slice())
                    .map_err(wrap)?;
            }
            LayerEntryKind::File {
                source,
                size,
                blake3,
            } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size);
                let file = File::open(source).map_err(|e| EngineError::io("reading", source, e))?;
                let mut reader = VerifyingReader {
                    inner: file.take(*size),
                    hasher: blake3::Hasher::new(),
                    read: 0,
                };
                tar.append_data(&mut h, &entry.path, &mut reader)
                    .map_err(|e| EngineError::io("reading", source, e))?;
                if reader.read != *size || reader.hasher.finalize().as_bytes() != blake3 {
                    return Err(EngineError::FileChanged {
                        path: source.clone(),
                    });
                }
            }
            LayerEntryKind::Blob {
                source,
                size,
                digest,
            } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size);
                let file = File::open(source).map_err(|e| EngineError::io("reading", source, e))?;
                let mut reader = Sha256Reader {
                    inner: file.take(*size),
                    hasher: Sha256::new(),
                    read: 0,
                };
                tar.append_data(&mut h, &entry.path, &mut reader)
                    .map_err(|e| EngineError::io("reading", source, e))?;
                let actual = Digest::from_sha256(reader.hasher.finalize().into());
                if reader.read != *size || &actual != digest {
                    return Err(seal_store::StoreError::CorruptBlob {
                        expected: digest.clone(),
                        actual,
                    }
                    .into());
                }
            }
        }
    }
    let diff = tar.into_inner().map_err(wrap)?;
    let diff_id = Digest::from_sha256(diff.hasher.finalize().into());
    let blob = diff.inner.finish().map_err(wrap)?;
    let (digest, size) = blob.commit(None)?;
    let media_type = match format.compression {
        Compression::None => MEDIA_TYPE_LAYER_TAR,
        Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
        Compression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
    };
    Ok(Layer {
        diff_id,
        digest,
        size,
        media_type: media_type.into(),
        collect_free: !entries
            .iter()
            .any(|e| crate::collect::rootfs::concerns_collection(&e.path)),
    })
}

/// Hashes the uncompressed tar on its way to the compressor.
struct DiffIdWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for DiffIdWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Re-hashes file bytes as they are copied into the tar.
struct VerifyingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    read: u64,
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Re-hashes a store blob (sha256) as it is copied into the tar.
struct Sha256Reader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

enum Compressor {
    None(BlobWriter),
    Gzip(flate2::write::GzEncoder<BlobWriter>),
    Zstd(zstd::stream::write::Encoder<'static, BlobWriter>),
}

impl Compressor {
    fn new(out: BlobWriter, compression: Compression) -> io::Result<Compressor> {
        Ok(match compression {
            Compression::None => Compressor::None(out),
            Compression::Gzip => Compressor::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .write(out, flate2::Compression::default()),
            ),
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
                // Output with workers >= 1 is identical whatever the worker count.
                let workers = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1) as u32;
                enc.multithread(workers.max(1))?;
                enc.include_checksum(true)?;
                Compressor::Zstd(enc)
            }
        })
    }

    fn finish(self) -> io::Result<BlobWriter> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
        }
    }
}

impl Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(g) => g.flush(),
            Compressor::Zstd(z) => z.flush(),
        }
    }
}
