//! A layer's snapshot made while the layer is written (issue 15): the uncompressed tar stream
//! that the layer's diffID is hashed over is also handed to [`crate::unpack`]'s unpacker on a
//! thread of its own (in chunks, up to [`IN_FLIGHT`] bytes ahead of it), which builds the snapshot directory (regular files as links to the
//! store's objects) while the writing thread compresses. The step does not wait for it: the
//! thread finishes in the background (beside the next steps), and whoever needs the snapshot
//! ([`crate::unpack::snapshot`], a RUN) waits for it there ([`wait_for`]); a build waits for
//! all of them before it returns ([`wait_all`]).
//!
//! The snapshot is exactly the one [`crate::unpack::snapshot`] would make of the layer: the
//! same unpacker reads the same bytes (those the diffID covers), objects are named by the same
//! [`crate::layers::objects::ObjectPlacer`] only once complete, and the directory is staged as
//! `snapshots/.unpack-*` and renamed to `snapshots/<diffID>` only once the layer's blob is
//! committed and the unpack read all of its tar. A failed or cancelled layer write, or any
//! failure of the unpack, leaves no snapshot (the staged directory is removed; a crash leaves a
//! `.unpack-*` that `prune`, `fsck` and the next store open know); the layer itself never fails
//! because of the tee.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use seal_store::{Digest, Store};

use crate::layers::objects::ObjectPlacer;
use crate::layers::{erofs, snapshot_image};
use crate::unpack::{self, UnpackOptions};

/// The tar goes to the unpack in chunks of this size (a tar writes 512-byte headers).
const CHUNK: usize = 256 << 10;
/// How far the layer's writer may run ahead of the unpack, which creates a file per entry and
/// is the slower: a step with a small layer never waits for its snapshot, a big one holds at
/// most this much in memory.
pub const IN_FLIGHT: usize = 32 << 20;

/// Snapshots being finished in the background, by the path each will be renamed to.
static PENDING: Mutex<Vec<(PathBuf, JoinHandle<()>)>> = Mutex::new(Vec::new());

/// The writing end of the tar stream to an unpack thread building a layer's snapshot.
#[derive(Debug)]
pub struct SnapshotTee {
    /// `None` once the unpack stopped reading (it failed): the layer goes on without it.
    pipe: Option<ChunkWriter>,
    /// Where the snapshot goes, sent once the layer is committed (dropped: discard it).
    verdict: Option<mpsc::Sender<PathBuf>>,
    worker: Option<JoinHandle<()>>,
    snapshots: PathBuf,
    form: SnapshotForm,
}

/// Which kind of snapshot a tee makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotForm {
    /// `snapshots/<diffID>/`, files linked to objects ([`crate::unpack::snapshot`]).
    Directory,
    /// `snapshots/<diffID>.erofs` ([`crate::layers::snapshot_image`]).
    Image,
}

/// The snapshot being made, under its staging name (removed on drop).
enum Staged {
    Dir(tempfile::TempDir),
    Image(tempfile::NamedTempFile),
}

impl SnapshotTee {
    /// Start the thread making the `form` snapshot of a layer about to be written into
    /// `store`. `None` without root (a snapshot's objects and images carry owners) or when the
    /// thread cannot be started.
    pub fn start(store: &Store, form: SnapshotForm) -> Option<SnapshotTee> {
        let options = UnpackOptions::for_current_user();
        if !options.privileged {
            return None;
        }
        let root = store.root().to_path_buf();
        let snapshots = root.join("snapshots");
        let started = match form {
            SnapshotForm::Directory => std::fs::create_dir_all(&snapshots)
                .and_then(|()| {
                    tempfile::Builder::new()
                        .prefix(unpack::STAGING_PREFIX)
                        .tempdir_in(&snapshots)
                })
                .map(Staged::Dir)
                .map_err(|e| e.to_string()),
            SnapshotForm::Image => snapshot_image::stage(store)
                .map(Staged::Image)
                .map_err(|e| e.to_string()),
        };
        let mut staged = match started {
            Ok(started) => started,
            Err(e) => {
                tracing::debug!("no snapshot beside the layer: {e}");
                return None;
            }
        };
        let (chunks, chunks_rx) = mpsc::sync_channel(IN_FLIGHT / CHUNK);
        let (verdict, verdict_rx) = mpsc::channel::<PathBuf>();
        let span = tracing::info_span!(target: "seal_trace", "snapshot");
        let worker = std::thread::Builder::new()
            .name("seal-snapshot".into())
            .spawn(move || {
                let _span = span.entered();
                let mut reader = ChunkReader {
                    chunks: chunks_rx,
                    chunk: Vec::new(),
                    at: 0,
                };
                let result = match &mut staged {
                    Staged::Dir(dir) => {
                        let mut placer = ObjectPlacer::new(&root);
                        unpack::unpack_into(&mut reader, dir.path(), &options, Some(&mut placer))
                    }
                    Staged::Image(file) => {
                        erofs::write_image(&mut reader, file.as_file_mut()).map(|_| ())
                    }
                };
                // The tar's end-of-archive padding, so the writer never blocks on a full channel.
                let _ = io::copy(&mut reader, &mut io::sink());
                match (result, verdict_rx.recv()) {
                    (Ok(()), Ok(dest)) => place(staged, &dest),
                    (Err(e), _) => tracing::debug!("no snapshot beside the layer: {e}"),
                    // The layer was not written: `staged` is removed on drop.
                    (Ok(()), Err(_)) => {}
                }
            });
        match worker {
            Ok(worker) => Some(SnapshotTee {
                pipe: Some(ChunkWriter {
                    chunk: Vec::with_capacity(CHUNK),
                    chunks,
                }),
                verdict: Some(verdict),
                worker: Some(worker),
                snapshots,
                form,
            }),
            Err(e) => {
                tracing::debug!("no snapshot beside the layer: {e}");
                None
            }
        }
    }

    /// Pass the next bytes of the uncompressed tar on. A failed unpack (it closed its end)
    /// ends the tee, not the layer.
    pub fn write(&mut self, bytes: &[u8]) {
        if let Some(pipe) = &mut self.pipe {
            if pipe.write(bytes).is_err() {
                self.pipe = None;
            }
        }
    }

    /// The layer with this diffID is committed and its whole tar was written: let the unpack
    /// finish in the background and rename its directory to the layer's snapshot (unless one
    /// exists by then). [`wait_for`] that snapshot's directory waits for it.
    pub fn finish(mut self, diff_id: &Digest) {
        let complete = self
            .pipe
            .take()
            .is_some_and(|mut pipe| pipe.flush().is_ok());
        let (Some(verdict), Some(worker)) = (self.verdict.take(), self.worker.take()) else {
            return;
        };
        let dest = match self.form {
            SnapshotForm::Directory => self.snapshots.join(diff_id.hex()),
            SnapshotForm::Image => {
                self.snapshots
                    .join(format!("{}{}", diff_id.hex(), snapshot_image::IMAGE_SUFFIX))
            }
        };
        if complete {
            // A send fails only when the unpack failed and ended: nothing to rename then.
            let _ = verdict.send(dest.clone());
        }
        drop(verdict);
        lock_pending().push((dest, worker));
    }
}

impl Drop for SnapshotTee {
    /// A layer write that failed or was cancelled: the stream ends without the chunk being
    /// filled (the unpack sees the tar end early) and no verdict comes; wait for the thread,
    /// which removes its staged directory.
    fn drop(&mut self) {
        self.pipe = None;
        self.verdict = None;
        if let Some(worker) = self.worker.take() {
            join(worker);
        }
    }
}

/// Rename a complete snapshot to `dest`, unless another build or step put it there first.
fn place(staged: Staged, dest: &Path) {
    let staged = match staged {
        Staged::Dir(staged) => staged,
        Staged::Image(staged) => {
            if let Err(e) = snapshot_image::place(staged, dest) {
                tracing::debug!("no snapshot beside the layer: {e}");
            }
            return;
        }
    };
    let dir = dest;
    if dir.is_dir() {
        return; // `staged` is removed on drop
    }
    let staged = staged.keep();
    if let Err(e) = std::fs::rename(&staged, dir) {
        tracing::debug!("no snapshot beside the layer: renaming it: {e}");
        let _ = std::fs::remove_dir_all(&staged);
    }
}

/// Collects the tar into chunks for the unpack thread.
#[derive(Debug)]
struct ChunkWriter {
    chunk: Vec<u8>,
    chunks: mpsc::SyncSender<Vec<u8>>,
}

/// The unpack is gone (it failed and stopped reading).
struct Gone;

impl ChunkWriter {
    fn write(&mut self, mut bytes: &[u8]) -> Result<(), Gone> {
        while !bytes.is_empty() {
            let n = (CHUNK - self.chunk.len()).min(bytes.len());
            self.chunk.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.chunk.len() == CHUNK {
                self.send()?;
            }
        }
        Ok(())
    }

    /// Send what is collected (blocks while [`IN_FLIGHT`] bytes wait for the unpack).
    fn flush(&mut self) -> Result<(), Gone> {
        match self.chunk.is_empty() {
            true => Ok(()),
            false => self.send(),
        }
    }

    fn send(&mut self) -> Result<(), Gone> {
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.chunks.send(full).map_err(|_| Gone)
    }
}

/// The tar as the unpack thread reads it: the chunks in order, then the end of the stream
/// when the writer is dropped.
struct ChunkReader {
    chunks: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.chunks.recv() {
                Ok(chunk) => (self.chunk, self.at) = (chunk, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn lock_pending() -> std::sync::MutexGuard<'static, Vec<(PathBuf, JoinHandle<()>)>> {
    PENDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn join(worker: JoinHandle<()>) {
    if worker.join().is_err() {
        tracing::warn!("the snapshot thread of a layer panicked");
    }
}

/// Wait until no snapshot bound for `dir` is being finished in the background.
pub fn wait_for(dir: &Path) {
    let mine: Vec<JoinHandle<()>> = {
        let mut pending = lock_pending();
        let (mine, rest) = pending.drain(..).partition(|(d, _)| d == dir);
        *pending = rest;
        mine.into_iter().map(|(_, worker)| worker).collect()
    };
    mine.into_iter().for_each(join);
}

/// Wait for every snapshot being finished in the background (a build's end: no thread of it
/// is cut short when the process exits).
pub fn wait_all() {
    let all: Vec<(PathBuf, JoinHandle<()>)> = lock_pending().drain(..).collect();
    all.into_iter().for_each(|(_, worker)| join(worker));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::sync::atomic::AtomicBool;

    use seal_store::Store;

    use super::SnapshotForm;
    use crate::layer::{write_layer, write_layer_with_snapshot, Layer, LayerEntry, LayerEntryKind};
    use crate::layers::snapshot_image::{image_path, snapshot_image, HASH_XATTR};
    use crate::llb::{Compression, LayerFormat};
    use crate::unpack::{snapshot, snapshot_path};
    use crate::xattrs::Xattrs;

    fn privileged() -> bool {
        let root = rustix::process::geteuid().is_root();
        if !root {
            eprintln!("skipped: a snapshot's owners and objects need root");
        }
        root
    }

    /// A layer of [`entries`] written with its `form` snapshot into the store `teed`, and a
    /// store `plain` to write it again without one; `None` (skipped) without root.
    struct Teed {
        tmp: tempfile::TempDir,
        teed: Store,
        plain: Store,
        entries: Vec<LayerEntry>,
        layer: Layer,
    }

    fn teed(form: SnapshotForm) -> Option<Teed> {
        if !privileged() {
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let teed = Store::open(&tmp.path().join("teed"), &mut || {}).unwrap();
        let plain = Store::open(&tmp.path().join("plain"), &mut || {}).unwrap();
        let entries = entries(tmp.path());
        let cancel = AtomicBool::new(false);
        let layer = write_layer_with_snapshot(&teed, &entries, FORMAT, &cancel, form).unwrap();
        Some(Teed {
            tmp,
            teed,
            plain,
            entries,
            layer,
        })
    }

    const FORMAT: LayerFormat = LayerFormat {
        compression: Compression::Zstd,
        source_date_epoch: 0,
    };

    fn entry(path: &str, kind: LayerEntryKind, mode: u32, uid: u32) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind,
            mode,
            uid,
            gid: uid,
            xattrs: Xattrs::new(),
        }
    }

    /// A layer with what a snapshot must keep: setuid, owners, an xattr, a hardlink, a
    /// symlink, a whiteout, a read-only directory, and equal bytes under other metadata.
    fn entries(dir: &Path) -> Vec<LayerEntry> {
        let source = dir.join("source");
        std::fs::write(&source, b"same bytes\n").unwrap();
        let file = || LayerEntryKind::File {
            source: source.clone(),
            size: 11,
            blake3: *blake3::hash(b"same bytes\n").as_bytes(),
        };
        let mut with_xattr = entry("d/x", file(), 0o644, 0);
        with_xattr.xattrs.insert("user.k".into(), b"v".to_vec());
        vec![
            entry("d", LayerEntryKind::Dir, 0o755, 0),
            entry("d/a", file(), 0o644, 0),
            entry("d/b", file(), 0o644, 0),
            entry(
                "d/hard",
                LayerEntryKind::Hardlink {
                    target: "d/a".into(),
                    source: source.clone(),
                    size: 11,
                    blake3: *blake3::hash(b"same bytes\n").as_bytes(),
                },
                0o644,
                0,
            ),
            entry("d/suid", file(), 0o4755, 0),
            entry("d/user", file(), 0o644, 1000),
            entry(
                "d/link",
                LayerEntryKind::Symlink { target: "a".into() },
                0o777,
                0,
            ),
            entry(".wh.gone", LayerEntryKind::Bytes(Vec::new()), 0o644, 0),
            with_xattr,
            entry("ro", LayerEntryKind::Dir, 0o555, 7),
            entry("ro/f", LayerEntryKind::Bytes(b"ro\n".to_vec()), 0o444, 7),
        ]
    }

    /// Every entry under `dir`: type, mode, owner, size, bytes or target, xattrs, and which
    /// other paths share its inode.
    fn describe(dir: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut by_inode: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let path = e.unwrap().path();
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                let m = std::fs::symlink_metadata(&path).unwrap();
                let content = if m.is_file() {
                    by_inode.entry(m.ino()).or_default().push(rel.clone());
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned()
                } else if m.is_symlink() {
                    std::fs::read_link(&path).unwrap().display().to_string()
                } else {
                    if m.is_dir() {
                        stack.push(path.clone());
                    }
                    String::new()
                };
                let xattrs = crate::xattrs::read(&path).unwrap_or_default();
                out.insert(
                    rel,
                    format!(
                        "{:o} {}:{} {} {content:?} {xattrs:?}",
                        m.mode(),
                        m.uid(),
                        m.gid(),
                        m.len()
                    ),
                );
            }
        }
        for paths in by_inode.into_values().filter(|p| p.len() > 1) {
            out.insert(format!("link {}", paths.join(" ")), String::new());
        }
        out
    }

    /// The snapshot written beside a layer is the one unpacking the layer gives, bit for bit
    /// of metadata; its files are links to objects, and a file with the same bytes and path
    /// but another mode or owner in another layer gets an inode of its own, never the first
    /// one's metadata through a link.
    #[test]
    fn the_snapshot_beside_a_layer_is_the_unpacked_one() {
        let Some(Teed {
            tmp,
            teed,
            plain,
            entries,
            layer,
        }) = teed(SnapshotForm::Directory)
        else {
            return;
        };
        let cancel = AtomicBool::new(false);
        let made = snapshot_path(&teed, &layer.diff_id);
        super::wait_for(&made);
        assert!(
            made.is_dir(),
            "the layer's snapshot is there before any RUN"
        );
        let again = write_layer(plain.blobs(), &entries, FORMAT, &cancel).unwrap();
        assert_eq!(again, layer, "the tee changes nothing of the layer");
        let unpacked = snapshot(&plain, &again).unwrap();
        let (teed_tree, unpacked_tree) = (describe(&made), describe(&unpacked));
        assert_eq!(teed_tree, unpacked_tree);
        assert!(
            teed_tree.contains_key("link d/a d/hard") || teed_tree.contains_key("link d/hard d/a")
        );
        assert!(
            teed_tree["d/suid"].starts_with("104755 0:0 11 "),
            "{teed_tree:#?}"
        );
        assert!(teed_tree["d/user"].starts_with("100644 1000:1000 "));
        assert!(teed_tree["d/x"].contains("user.k"), "{teed_tree:#?}");
        let nlink = |p: &str| std::fs::metadata(made.join(p)).unwrap().nlink();
        assert_eq!(nlink("d/b"), 2, "the file and its object");
        assert_eq!(nlink("d/a"), 3, "two names and the object");
        let report = teed.fsck().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.objects >= 5, "{report:?}");

        // The same path and bytes, another mode and owner: not the first layer's inode.
        let source = tmp.path().join("source");
        let file = LayerEntryKind::File {
            source,
            size: 11,
            blake3: *blake3::hash(b"same bytes\n").as_bytes(),
        };
        let other = [
            entry("d", LayerEntryKind::Dir, 0o755, 0),
            entry("d/b", file.clone(), 0o4711, 0),
            entry("d/user", file, 0o644, 1001),
        ];
        let second =
            write_layer_with_snapshot(&teed, &other, FORMAT, &cancel, SnapshotForm::Directory)
                .unwrap();
        let second = snapshot_path(&teed, &second.diff_id);
        super::wait_for(&second);
        let m = |dir: &Path, p: &str| std::fs::symlink_metadata(dir.join(p)).unwrap();
        assert_ne!(m(&second, "d/b").ino(), m(&made, "d/b").ino());
        assert_eq!(m(&second, "d/b").mode() & 0o7777, 0o4711);
        assert_eq!(m(&made, "d/b").mode() & 0o7777, 0o644);
        assert_ne!(m(&second, "d/user").ino(), m(&made, "d/user").ino());
        assert_eq!(m(&second, "d/user").uid(), 1001);
        // The same path, bytes and metadata: one inode.
        let same = [entries[0].clone(), entries[1].clone()];
        let third =
            write_layer_with_snapshot(&teed, &same, FORMAT, &cancel, SnapshotForm::Directory)
                .unwrap();
        let third = snapshot_path(&teed, &third.diff_id);
        super::wait_for(&third);
        assert_eq!(m(&third, "d/a").ino(), m(&made, "d/a").ino());
        assert!(teed.fsck().unwrap().problems.is_empty());
    }

    /// A layer whose write fails half-way (a source file changed under it) leaves no snapshot
    /// under any name and no staging directory; the objects its unpack had named are complete
    /// (fsck finds nothing wrong) and linked by nothing, so `prune` removes them.
    #[test]
    fn a_failed_layer_leaves_no_snapshot() {
        if !privileged() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("store"), &mut || {}).unwrap();
        let mut entries = entries(tmp.path());
        // Enough good files before the bad one that chunks of the tar reached the unpack and
        // it named objects.
        let good: Vec<LayerEntry> = (0..200)
            .map(|i| {
                let source = tmp.path().join(format!("s{i}"));
                let bytes = format!("file {i}\n").repeat(500);
                std::fs::write(&source, &bytes).unwrap();
                entry(
                    &format!("a{i:03}"),
                    LayerEntryKind::File {
                        source,
                        size: bytes.len() as u64,
                        blake3: *blake3::hash(bytes.as_bytes()).as_bytes(),
                    },
                    0o644,
                    0,
                )
            })
            .collect();
        std::fs::write(tmp.path().join("source"), b"edited!!!!\n").unwrap();
        entries.splice(0..0, good);
        let err = write_layer_with_snapshot(
            &store,
            &entries,
            FORMAT,
            &AtomicBool::new(false),
            SnapshotForm::Directory,
        )
        .unwrap_err();
        assert!(
            matches!(err, crate::EngineError::FileChanged { .. }),
            "{err}"
        );
        let mut snapshots: Vec<String> = std::fs::read_dir(store.root().join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        snapshots.sort();
        assert_eq!(
            snapshots,
            [".format", "objects"],
            "no snapshot, nothing staged"
        );
        let report = store.fsck().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.objects > 0, "the unpack had named objects");
        let pruned = store.prune(&Default::default()).unwrap();
        assert_eq!(pruned.objects.count, report.objects as u64, "{pruned:?}");
        assert_eq!(store.fsck().unwrap().objects, 0);
    }

    /// The image written beside a layer is, byte for byte, the one written later from the
    /// layer's blob, and carries the hash of its bytes; no directory and no object is made.
    #[test]
    fn the_image_beside_a_layer_is_the_one_its_blob_gives() {
        let Some(Teed {
            tmp: _stores,
            teed,
            plain,
            entries,
            layer,
        }) = teed(SnapshotForm::Image)
        else {
            return;
        };
        let cancel = AtomicBool::new(false);
        let made = image_path(&teed, &layer.diff_id);
        super::wait_for(&made);
        assert!(made.is_file());
        assert!(!snapshot_path(&teed, &layer.diff_id).exists());
        assert!(!teed.root().join("snapshots/objects").exists());
        let hash = rustix::fs::getxattr(&made, HASH_XATTR, &mut [0u8; 64][..]).unwrap();
        assert_eq!(hash, 64);
        assert_eq!(made.metadata().unwrap().mode() & 0o777, 0o444);

        let again = write_layer(plain.blobs(), &entries, FORMAT, &cancel).unwrap();
        assert_eq!(again.diff_id, layer.diff_id);
        let from_blob = snapshot_image(&plain, &again).unwrap();
        assert_eq!(
            std::fs::read(&made).unwrap(),
            std::fs::read(&from_blob).unwrap()
        );
        let report = teed.fsck().unwrap();
        assert_eq!(report.images_checked, 1);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
