//! Deterministic layer tars, compressed and stored as blobs in one streaming pass.
//!
//! Entries are written in sorted path order with every mtime set to SOURCE_DATE_EPOCH, uid/gid
//! and mode (setuid, setgid and sticky bits included) kept, owner names dropped: equal content
//! gives equal bytes on any machine. An entry's extended attributes go in a PAX header before it
//! (`SCHILY.xattr.<name>` records in name order; none when it has none, so layers without
//! xattrs are byte-identical to before); a second name of a file is a tar hardlink entry
//! pointing at the first, and a device node or fifo a header of its type. The tar
//! stream is hashed (diffID) before compression and the blob after it, while it is written.
//! File bytes are re-hashed as they stream in and compared with the hash the cache key was
//! computed from, so a file edited mid-build fails the step instead of caching a lie.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use seal_store::oci::{MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD};
use seal_store::{BlobStore, Digest, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::layers::snapshot_tee::{SnapshotForm, SnapshotTee};
use crate::llb::{Compression, LayerFormat};
use crate::phase_times::{PhaseTimes, TimedBlobWriter};
use crate::xattrs::{Xattrs, PAX_XATTR_PREFIX};
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
    /// Extended attributes ([`crate::xattrs::kept`] names only).
    pub xattrs: Xattrs,
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
    /// Another name of the file `target` (a layer path) whose bytes are `source`: a tar
    /// hardlink entry when `target` was written earlier in this layer from the same `source`,
    /// otherwise (a later action replaced `target`) a full copy of `source`, verified like
    /// [`LayerEntryKind::File`]. The inode's mode, owner and xattrs are those of `target`.
    Hardlink {
        target: String,
        source: PathBuf,
        size: u64,
        blake3: [u8; 32],
    },
    /// A device node or fifo.
    Node {
        kind: NodeKind,
        major: u32,
        minor: u32,
    },
}

/// The type of a [`LayerEntryKind::Node`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Char,
    Block,
    Fifo,
}

/// Write `entries` (sorted by path, parents first) as a layer blob.
pub fn write_layer(
    blobs: &BlobStore,
    entries: &[LayerEntry],
    format: LayerFormat,
    cancel: &AtomicBool,
) -> Result<Layer, EngineError> {
    write_layer_teed(blobs, entries, format, cancel, None)
}

/// [`write_layer`] into `store`, leaving the layer's snapshot beside it (built from the same
/// tar stream on another thread, [`crate::layers::snapshot_tee`]): for a layer a RUN will
/// mount, in the `form` it will mount.
pub fn write_layer_with_snapshot(
    store: &Store,
    entries: &[LayerEntry],
    format: LayerFormat,
    cancel: &AtomicBool,
    form: SnapshotForm,
) -> Result<Layer, EngineError> {
    let tee = SnapshotTee::start(store, form);
    write_layer_teed(store.blobs(), entries, format, cancel, tee)
}

fn write_layer_teed(
    blobs: &BlobStore,
    entries: &[LayerEntry],
    format: LayerFormat,
    cancel: &AtomicBool,
    tee: Option<SnapshotTee>,
) -> Result<Layer, EngineError> {
    let span = tracing::info_span!(
        target: "seal_trace",
        "write layer",
        entries = entries.len(),
        bytes = tracing::field::Empty,
        blob_bytes = tracing::field::Empty,
        tar_us = tracing::field::Empty,
        hashing_us = tracing::field::Empty,
        compression_us = tracing::field::Empty,
        blob_write_us = tracing::field::Empty
    )
    .entered();
    let started = Instant::now();
    let times = PhaseTimes::new(!span.is_disabled());
    let blob = TimedBlobWriter {
        inner: blobs.writer()?,
        times: times.clone(),
    };
    let compressor = Compressor::new(blob, format.compression)
        .map_err(|e| EngineError::io("starting compression", &PathBuf::new(), e))?;
    let mut tar = tar::Builder::new(DiffIdWriter {
        inner: compressor,
        hasher: Sha256::new(),
        times: times.clone(),
        tee,
    });
    let epoch = format.source_date_epoch.max(0) as u64;
    let wrap = |e: io::Error| EngineError::io("writing a layer", &PathBuf::from("<layer>"), e);
    // Hardlink targets, and the source each was written from once it has been.
    let mut link_targets: BTreeMap<&str, Option<&PathBuf>> = entries
        .iter()
        .filter_map(|e| match &e.kind {
            LayerEntryKind::Hardlink { target, .. } => Some((target.as_str(), None)),
            _ => None,
        })
        .collect();
    for entry in entries {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(entry.mode & 0o7777);
        h.set_uid(entry.uid as u64);
        h.set_gid(entry.gid as u64);
        h.set_mtime(epoch);
        if !entry.xattrs.is_empty() {
            let records: Vec<(String, &[u8])> = entry
                .xattrs
                .iter()
                .map(|(name, value)| (format!("{PAX_XATTR_PREFIX}{name}"), value.as_slice()))
                .collect();
            tar.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(wrap)?;
        }
        let is_target = link_targets.contains_key(entry.path.as_str());
        let written_from = |source| is_target.then_some(source);
        let mut recorded = None;
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
                append_file(&mut tar, &mut h, &entry.path, source, *size, blake3, &times)?;
                recorded = written_from(source);
            }
            LayerEntryKind::Hardlink {
                target,
                source,
                size,
                blake3,
            } => {
                if link_targets.get(target.as_str()) == Some(&Some(source)) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    tar.append_link(&mut h, &entry.path, target).map_err(wrap)?;
                } else {
                    append_file(&mut tar, &mut h, &entry.path, source, *size, blake3, &times)?;
                    recorded = written_from(source);
                }
            }
            LayerEntryKind::Node { kind, major, minor } => {
                h.set_entry_type(match kind {
                    NodeKind::Char => tar::EntryType::Char,
                    NodeKind::Block => tar::EntryType::Block,
                    NodeKind::Fifo => tar::EntryType::Fifo,
                });
                h.set_size(0);
                h.set_device_major(*major).map_err(wrap)?;
                h.set_device_minor(*minor).map_err(wrap)?;
                tar.append_data(&mut h, &entry.path, io::empty())
                    .map_err(wrap)?;
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
                    times: times.clone(),
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
        // Any other entry at a target's path (a directory, a symlink) leaves it unwritten.
        if let Some(slot) = link_targets.get_mut(entry.path.as_str()) {
            *slot = recorded;
        }
    }
    let mut diff = tar.into_inner().map_err(wrap)?;
    let diff_id = Digest::from_sha256(diff.hasher.finalize().into());
    let tee = diff.tee.take();
    let blob = times
        .time(&times.compressing, || diff.inner.finish())
        .map_err(wrap)?;
    let (digest, size) = times.time(&times.committing, || blob.inner.commit(None))?;
    if let Some(tee) = tee {
        tee.finish(&diff_id);
    }
    times.record(&span, started.elapsed());
    span.record("blob_bytes", size);
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
            .any(|e| crate::llb::collected::concerns_collection(&e.path)),
    })
}

/// Append a regular file whose bytes are `source`, checking they still have the size and
/// blake3 the cache key was computed from.
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    h: &mut tar::Header,
    path: &str,
    source: &PathBuf,
    size: u64,
    blake3: &[u8; 32],
    times: &Rc<PhaseTimes>,
) -> Result<(), EngineError> {
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    let file = File::open(source).map_err(|e| EngineError::io("reading", source, e))?;
    let mut reader = VerifyingReader {
        inner: file.take(size),
        hasher: blake3::Hasher::new(),
        read: 0,
        times: times.clone(),
    };
    tar.append_data(h, path, &mut reader)
        .map_err(|e| EngineError::io("reading", source, e))?;
    if reader.read != size || reader.hasher.finalize().as_bytes() != blake3 {
        return Err(EngineError::FileChanged {
            path: source.clone(),
        });
    }
    Ok(())
}

/// Hashes the uncompressed tar on its way to the compressor.
/// And passes it to the snapshot's unpacker when there is one.
struct DiffIdWriter<W> {
    inner: W,
    hasher: Sha256,
    times: Rc<PhaseTimes>,
    tee: Option<SnapshotTee>,
}

impl<W: Write> Write for DiffIdWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (inner, hasher, times) = (&mut self.inner, &mut self.hasher, &self.times);
        let n = times.time(&times.compressing, || inner.write(buf))?;
        times.time(&times.hashing, || hasher.update(&buf[..n]));
        if let Some(tee) = &mut self.tee {
            tee.write(&buf[..n]);
        }
        times.tar_bytes.set(times.tar_bytes.get() + n as u64);
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
    times: Rc<PhaseTimes>,
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let (hasher, times) = (&mut self.hasher, &self.times);
        times.time(&times.hashing, || hasher.update(&buf[..n]));
        self.read += n as u64;
        Ok(n)
    }
}

/// Re-hashes a store blob (sha256) as it is copied into the tar.
struct Sha256Reader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    times: Rc<PhaseTimes>,
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let (hasher, times) = (&mut self.hasher, &self.times);
        times.time(&times.hashing, || hasher.update(&buf[..n]));
        self.read += n as u64;
        Ok(n)
    }
}

enum Compressor {
    None(TimedBlobWriter),
    Gzip(flate2::write::GzEncoder<TimedBlobWriter>),
    Zstd(zstd::stream::write::Encoder<'static, TimedBlobWriter>),
}

impl Compressor {
    fn new(out: TimedBlobWriter, compression: Compression) -> io::Result<Compressor> {
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

    fn finish(self) -> io::Result<TimedBlobWriter> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: LayerEntryKind) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind,
            mode: 0o4755,
            uid: 0,
            gid: 0,
            xattrs: Xattrs::new(),
        }
    }

    /// A hardlink entry is a tar link only when its target was written, earlier in the same
    /// layer, from the same bytes; when a later action replaced the target (a directory, other
    /// bytes) or it comes later, the link's own bytes are written instead, so no layer holds a
    /// link to something else.
    #[test]
    fn hardlinks_are_links_only_to_the_file_they_name() {
        let tmp = tempfile::tempdir().unwrap();
        let store = seal_store::Store::open(&tmp.path().join("store"), &mut || {}).unwrap();
        let (one, other) = (tmp.path().join("one"), tmp.path().join("other"));
        std::fs::write(&one, b"one").unwrap();
        std::fs::write(&other, b"other").unwrap();
        let file = |source: &PathBuf, bytes: &[u8]| LayerEntryKind::File {
            source: source.clone(),
            size: bytes.len() as u64,
            blake3: *blake3::hash(bytes).as_bytes(),
        };
        let link = |target: &str| LayerEntryKind::Hardlink {
            target: target.into(),
            source: one.clone(),
            size: 3,
            blake3: *blake3::hash(b"one").as_bytes(),
        };
        let entries = [
            entry("a", file(&one, b"one")),
            entry("b", link("a")),
            entry("c", file(&other, b"other")),
            entry("d", link("c")),
            entry("e", LayerEntryKind::Dir),
            entry("f", link("e")),
            entry("g", link("z")),
            entry("z", file(&one, b"one")),
        ];
        let format = LayerFormat {
            compression: Compression::None,
            source_date_epoch: 0,
        };
        let layer = write_layer(store.blobs(), &entries, format, &AtomicBool::new(false)).unwrap();
        let mut archive = tar::Archive::new(File::open(store.blobs().path(&layer.digest)).unwrap());
        let listing: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut bytes = String::new();
                e.read_to_string(&mut bytes).unwrap();
                let link = e.link_name().unwrap().map(|l| l.display().to_string());
                let h = e.header();
                format!(
                    "{} {:?} {:o} {}{bytes}",
                    e.path().unwrap().display(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    link.map(|l| format!("-> {l}")).unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(
            listing,
            [
                "a Regular 4755 one",
                "b Link 4755 -> a",
                "c Regular 4755 other",
                "d Regular 4755 one",
                "e/ Directory 4755 ",
                "f Regular 4755 one",
                "g Regular 4755 one",
                "z Regular 4755 one",
            ]
        );
    }
}
