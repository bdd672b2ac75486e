//! seal's on-disk state: content-addressed blobs, RocksDB records, the file-hash cache, OCI
//! documents and archives, and the registry client (`registry`).
//!
//! A store is a directory:
//!
//! ```text
//! <root>/blobs/sha256/<hex>   OCI blobs (layers, configs, manifests)
//! <root>/db/                  RocksDB: cache, images, blobs, filehash, snapshots, collect, layers,
//!                             steps
//! <root>/tmp/                 blobs being written (cleaned at open)
//! <root>/snapshots/<diffid>/  layers unpacked for RUN (engine::unpack); `.format` says how
//! <root>/snapshots/objects/   each regular file of those snapshots once, by bytes and metadata
//! ```
//!
//! **Architecture Invariant:** a record is written only after every blob it names exists, and
//! a blob only ever appears under its own digest. This crate depends on no other crate of seal
//! and knows nothing of Kubefiles, LLB or the solver.
//!
//! ```no_run
//! let store = seal_store::Store::open(std::path::Path::new("/tmp/seal"), &mut || {}).unwrap();
//! let digest = store.blobs().put(b"hello").unwrap();
//! assert_eq!(store.blobs().read(&digest).unwrap(), b"hello");
//! ```

mod blobs;
mod db;
mod digest;
mod docker_archive;
mod filehash;
mod fsck;
mod gc;
mod index;
mod load;
pub mod objects;
pub mod oci;
mod oci_archive;
mod oci_dir;
pub mod parallel;
mod reference;
pub mod registry;
mod remote;
pub mod s3;
mod saved;
mod steps;
mod usage;

use std::path::{Path, PathBuf};

pub use blobs::{verify_file, BlobStore, BlobWriter, VerifiedBlob};
pub use db::{now_unix, BlobRecord, ImageRecord};
pub use digest::{Digest, InvalidDigest};
pub use filehash::{FileHashEntry, FileStat, RACY_WINDOW_NS};
pub use fsck::{temp_leftovers, FsckReport, Orphan, Problem};
pub use gc::{Amount, PruneOptions, PruneReport};
pub use index::PlatformManifest;
pub use load::{LoadError, LoadReport, LoadedImage};
pub use reference::{InvalidReference, Reference};
pub use registry::{Platform, RegistryError, RegistryOptions, TransferReport};
pub use remote::{BlobFetcher, Presence, RemoteBlob, RemoteSource, StandardFetcher};
pub use steps::StepWrite;
pub use usage::{human_size, Usage};

use db::{Db, CF_BLOBS, CF_CACHE, CF_COLLECT, CF_FILEHASH, CF_IMAGES, CF_LAYERS, CF_REAPI};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Db(String),
    #[error(
        "blob {0} is missing from the store (run `seal fsck --repair` to drop what names it, \
         then build or pull the image again)"
    )]
    MissingBlob(Digest),
    #[error(
        "blob {expected} is corrupt: its content hashes to {actual} (run `seal fsck --repair` \
         to drop it and what names it, then build or pull the image again)"
    )]
    CorruptBlob { expected: Digest, actual: Digest },
    #[error("downloading blob {digest} from {from}: {reason}")]
    Remote {
        digest: Digest,
        from: String,
        reason: String,
    },
    #[error("corrupt store record: {0}")]
    Corrupt(String),
    #[error("no image named {0} in the store")]
    UnknownImage(String),
    /// The image has none (or not all) of the platforms asked for.
    #[error("{0}")]
    NoPlatform(String),
}

impl StoreError {
    /// An IO error while doing `what` on `path`.
    pub fn io(what: &'static str, path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Like [`StoreError::io`], but a store error carried inside the IO error (a
    /// [`VerifiedBlob`] found corruption while something else was reading it) comes out as
    /// itself.
    pub fn from_io(what: &'static str, path: &Path, source: std::io::Error) -> StoreError {
        if source
            .get_ref()
            .is_some_and(|inner| inner.is::<StoreError>())
        {
            if let Some(Ok(inner)) = source.into_inner().map(|b| b.downcast::<StoreError>()) {
                return *inner;
            }
            return StoreError::Corrupt(format!("{what} {}", path.display()));
        }
        StoreError::io(what, path, source)
    }

    /// True when the error is a write to a closed pipe (the reader of `seal save -o -` left).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// A layer's path index as stored: (rootfs path, opaque record) pairs in path order.
pub type LayerIndexRecords = Vec<(String, Vec<u8>)>;

/// An open store.
pub struct Store {
    root: PathBuf,
    blobs: BlobStore,
    db: Db,
    /// The exclusive lock on `<root>/lock`, held while the store is open for writing.
    _lock: Option<std::fs::File>,
    /// The scratch directory of a read-only view (removed on drop).
    _scratch: Option<tempfile::TempDir>,
    /// The entries of [`filehash::LOG`], read at the first lookup.
    filehash_log: std::sync::Mutex<Option<std::collections::HashMap<Vec<u8>, Vec<u8>>>>,
    /// What downloads remote blobs ([`Store::set_fetcher`]).
    fetcher: remote::FetcherSlot,
}

impl Store {
    /// Open or create the store at `root`. `on_wait` is called once if another process holds
    /// the database and this one has to wait for it.
    pub fn open(root: &Path, on_wait: &mut dyn FnMut()) -> Result<Store, StoreError> {
        std::fs::create_dir_all(root).map_err(|e| StoreError::io("creating the store", root, e))?;
        // Our own lock before RocksDB's: RocksDB rotates its info log before it takes its
        // lock, so two openers racing on one directory can fail instead of waiting.
        let lock = lock_store(root, on_wait)?;
        let blobs = BlobStore::create(root)
            .map_err(|e| StoreError::io("creating the blob directory", root, e))?;
        let db = Db::open(&root.join("db"), blobs.tmp_dir(), on_wait)?;
        // We hold the store lock, so nothing else is writing temp blobs right now.
        blobs.clean_tmp();
        clean_snapshot_leftovers(root);
        Ok(Store {
            root: root.to_path_buf(),
            blobs,
            db,
            _lock: Some(lock),
            _scratch: None,
            filehash_log: Default::default(),
            fetcher: Default::default(),
        })
    }

    /// Open an existing store read-only without waiting for a build that holds it: reads see
    /// the records committed when the view was opened. For `images`, `inspect`, `save`.
    pub fn open_read_only(root: &Path) -> Result<Store, StoreError> {
        let db_dir = root.join("db");
        if !db_dir.join("CURRENT").exists() {
            return Err(StoreError::Db(format!("no store at {}", root.display())));
        }
        let scratch = tempfile::Builder::new()
            .prefix("seal-ro-")
            .tempdir()
            .map_err(|e| {
                StoreError::io("creating a scratch directory", &std::env::temp_dir(), e)
            })?;
        let db = Db::open_secondary(&db_dir, scratch.path())?;
        let blobs = BlobStore::existing(root);
        Ok(Store {
            root: root.to_path_buf(),
            blobs,
            db,
            _lock: None,
            _scratch: Some(scratch),
            filehash_log: Default::default(),
            fetcher: Default::default(),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob directory.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// A cache record by key.
    pub fn cache_get(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(CF_CACHE, key)
    }

    /// Store a cache record (every blob it names must already exist), used now.
    pub fn cache_put(&self, key: &[u8; 32], record: &[u8]) -> Result<(), StoreError> {
        let used = (gc::used_key(key), gc::used_value(now_unix()));
        self.db
            .write_batch(CF_CACHE, &[(key.to_vec(), record.to_vec()), used])
    }

    /// An image-collection record (what a rootfs's scan found, what a tag resolved to last).
    /// These records name no blob that a build needs: losing one costs a re-scan or a
    /// manifest fetch, so `prune` leaves them alone.
    pub fn collect_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(CF_COLLECT, key.as_bytes())
    }

    /// Store an image-collection record.
    pub fn collect_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.db.put(CF_COLLECT, key.as_bytes(), value)
    }

    /// A remote-execution record: the REAPI tree of a layer or a layer chain (the engine
    /// encodes them, keyed by content). They name no blob a build needs — losing one costs a
    /// re-hash of the layer — so `prune` keeps them, and only `prune --all` drops them all.
    pub fn reapi_tree_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(CF_REAPI, key.as_bytes())
    }

    /// Store a remote-execution record.
    pub fn reapi_tree_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.db.put(CF_REAPI, key.as_bytes(), value)
    }

    /// Whether the path index of the layer blob `layer` is stored (see [`Store::layer_path`]).
    pub fn layer_index_complete(&self, layer: &Digest) -> Result<bool, StoreError> {
        Ok(self
            .db
            .get(CF_LAYERS, layer.to_string().as_bytes())?
            .is_some())
    }

    /// Store the path index of the layer blob `layer`: one opaque record per rootfs path the
    /// layer has an entry for (the engine encodes them), written with the marker that makes
    /// [`Store::layer_index_complete`] true, in one batch. An index is a function of the
    /// layer's content, so rewriting one is harmless; `prune` drops it with its blob.
    pub fn put_layer_index(
        &self,
        layer: &Digest,
        records: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let id = layer.to_string();
        let mut entries: Vec<db::KeyValue> = records
            .iter()
            .map(|(path, record)| (layer_path_key(&id, path), record.clone()))
            .collect();
        entries.push((
            id.into_bytes(),
            (records.len() as u64).to_le_bytes().to_vec(),
        ));
        self.db.write_batch(CF_LAYERS, &entries)
    }

    /// The index record of `path` in the layer blob `layer`, if the layer has an entry there.
    /// A point lookup: a COPY resolves its destination through a few of these per layer
    /// instead of unpacking anything.
    pub fn layer_path(&self, layer: &Digest, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get(CF_LAYERS, &layer_path_key(&layer.to_string(), path))
    }

    /// Every record of the path index of `layer` (`None` when it is not indexed): what a
    /// cache export carries, so the importer can resolve COPY destinations without the layer.
    pub fn layer_index(&self, layer: &Digest) -> Result<Option<LayerIndexRecords>, StoreError> {
        if !self.layer_index_complete(layer)? {
            return Ok(None);
        }
        let prefix = layer_path_key(&layer.to_string(), "");
        let records = self
            .db
            .scan_prefix(CF_LAYERS, &prefix)?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), v))
            .collect();
        Ok(Some(records))
    }

    /// The record of an image name.
    pub fn image(&self, name: &Reference) -> Result<Option<ImageRecord>, StoreError> {
        match self.db.get(CF_IMAGES, name.to_string().as_bytes())? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("image record {name}: {e}"))),
        }
    }

    /// Point `name` at a manifest (which must already be stored). A name already pointing there
    /// keeps its record (and `tagged_at`): a rebuild that changed nothing writes nothing.
    pub fn set_image(&self, name: &Reference, manifest: &Digest) -> Result<(), StoreError> {
        if !self.blobs.contains(manifest) {
            return Err(StoreError::MissingBlob(manifest.clone()));
        }
        if self
            .image(name)
            .is_ok_and(|r| r.is_some_and(|r| &r.manifest == manifest))
        {
            return Ok(());
        }
        let record = ImageRecord {
            manifest: manifest.clone(),
            tagged_at: now_unix(),
        };
        self.db.put(
            CF_IMAGES,
            name.to_string().as_bytes(),
            &oci::to_canonical_json(&record),
        )
    }

    /// Remove an image name (its blobs stay until pruned).
    pub fn remove_image(&self, name: &Reference) -> Result<(), StoreError> {
        self.db.delete(CF_IMAGES, name.to_string().as_bytes())
    }

    /// Every image name with its record, sorted by name.
    pub fn images(&self) -> Result<Vec<(String, ImageRecord)>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.db.scan(CF_IMAGES)? {
            let name = String::from_utf8_lossy(&k).into_owned();
            let record = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("image record {name}: {e}")))?;
            out.push((name, record));
        }
        Ok(out)
    }

    /// Read and parse a manifest blob.
    pub fn manifest(&self, digest: &Digest) -> Result<oci::Manifest, StoreError> {
        let bytes = self.blobs.read(digest)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("manifest {digest}: {e}")))
    }

    /// Read and parse a config blob.
    pub fn config(&self, digest: &Digest) -> Result<oci::ImageConfig, StoreError> {
        let bytes = self.blobs.read(digest)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("config {digest}: {e}")))
    }

    /// Stored file hashes for `paths`, in order (one pass over the database, then the log of
    /// entries recorded without opening it, which are newer).
    pub fn file_hashes(&self, paths: &[PathBuf]) -> Result<Vec<Option<FileHashEntry>>, StoreError> {
        let keys: Vec<Vec<u8>> = paths.iter().map(|p| filehash::key(p)).collect();
        let stored = self.db.multi_get(CF_FILEHASH, &keys)?;
        let mut log = self.filehash_log.lock().unwrap_or_else(|e| e.into_inner());
        let log = log.get_or_insert_with(|| filehash::read_log(&self.root.join(filehash::LOG)));
        Ok(keys
            .iter()
            .zip(stored)
            .map(|(k, v)| {
                log.get(k)
                    .cloned()
                    .or(v)
                    .and_then(|v| FileHashEntry::decode(&v))
            })
            .collect())
    }

    /// Record file hashes. A few, while the database is not open for writing (a `touch`ed
    /// file in an otherwise unchanged build), are appended to [`filehash::LOG`]; otherwise one
    /// batched write that folds the log in first.
    pub fn put_file_hashes(&self, entries: &[(PathBuf, FileHashEntry)]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let kv: Vec<(Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|(p, e)| (filehash::key(p), e.encode()))
            .collect();
        let path = self.root.join(filehash::LOG);
        let mut log = self.filehash_log.lock().unwrap_or_else(|e| e.into_inner());
        if !self.db.is_writable_open()
            && kv.len() <= filehash::LOG_MAX_BATCH
            && std::fs::metadata(&path).map_or(0, |m| m.len()) < filehash::LOG_FOLD_SIZE
            && filehash::append_log(&path, &kv).is_ok()
        {
            if let Some(log) = log.as_mut() {
                log.extend(kv);
            }
            return Ok(());
        }
        self.fold_filehash_log(kv)?;
        *log = Some(std::collections::HashMap::new());
        Ok(())
    }

    /// Write the file-hash log and then `newer` to the database in one batch, and remove the
    /// log. The log's entries are newer than the database's, and `newer` than both.
    fn fold_filehash_log(&self, newer: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        let path = self.root.join(filehash::LOG);
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = filehash::read_log(&path).into_iter().collect();
        batch.extend(newer);
        self.db.write_batch(CF_FILEHASH, &batch)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("removing the file-hash log", &path, e)),
        }
    }

    /// Note that blobs were produced or reused now (for LRU pruning).
    pub fn touch_blobs(&self, blobs: &[(Digest, u64)]) -> Result<(), StoreError> {
        let now = now_unix();
        let kv: Vec<(Vec<u8>, Vec<u8>)> = blobs
            .iter()
            .map(|(d, size)| {
                (
                    d.to_string().into_bytes(),
                    oci::to_canonical_json(&BlobRecord {
                        size: *size,
                        last_used: now,
                    }),
                )
            })
            .collect();
        self.db.write_batch(CF_BLOBS, &kv)
    }
}

impl Drop for Store {
    /// A build that opened the database for writing anyway folds the file-hash log into it,
    /// so the log stays small. Best effort: the log stays valid if this fails.
    fn drop(&mut self) {
        let path = self.root.join(filehash::LOG);
        if !self.db.is_writable_open() || !path.exists() {
            return;
        }
        if let Err(e) = self.fold_filehash_log(Vec::new()) {
            tracing::warn!("folding {}: {e}", path.display());
        }
    }
}

/// Take the exclusive lock on `<root>/lock`, calling `on_wait` once if another process holds it.
fn lock_store(root: &Path, on_wait: &mut dyn FnMut()) -> Result<std::fs::File, StoreError> {
    let path = root.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io("opening the store lock", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            on_wait();
            file.lock()
                .map_err(|e| StoreError::io("locking the store", &path, e))?;
            Ok(file)
        }
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::io("locking the store", &path, e)),
    }
}

/// What a snapshot directory (`snapshots/<diffID>/`, written by the engine's unpacker) holds.
/// Bump it when unpacking starts keeping something it lost before: a writer that opens a store
/// whose `snapshots/.format` says otherwise removes every snapshot, and each is unpacked again
/// when a RUN needs it (snapshots are a cache of layer blobs).
/// 2: owners set before modes (setuid and setgid kept), xattrs, hardlinks (issue 11).
/// 3: regular files are hardlinks to `snapshots/objects/` (issue 15).
/// 4: a snapshot may instead be one EROFS image, `snapshots/<diffID>.erofs` (issue 15).
pub const SNAPSHOT_FORMAT: &str = "4";

/// The file name of a snapshot image is its layer's diffID (hex) and this.
pub const SNAPSHOT_IMAGE_SUFFIX: &str = ".erofs";

/// The xattr of a snapshot image holding the hex blake3 of its bytes (`fsck` checks it).
pub const SNAPSHOT_IMAGE_HASH_XATTR: &str = "user.seal.blake3";

/// Remove half-unpacked snapshots (`snapshots/.unpack-*`) a killed process left behind, and
/// every snapshot of another [`SNAPSHOT_FORMAT`]. Only called with the store lock held, so no
/// other process is unpacking or reading a snapshot.
fn clean_snapshot_leftovers(root: &Path) {
    let dir = root.join("snapshots");
    let marker = dir.join(".format");
    let current = std::fs::read_to_string(&marker).is_ok_and(|f| f.trim() == SNAPSHOT_FORMAT);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        let _ = std::fs::create_dir(&dir).and_then(|()| std::fs::write(&marker, SNAPSHOT_FORMAT));
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(".unpack-") || (!current && name != ".format") {
            // Directories, and files: a staged or complete snapshot image.
            let _ = gc::remove_tree(&entry.path());
        }
    }
    if !current {
        let _ = std::fs::write(&marker, SNAPSHOT_FORMAT);
    }
}

/// `<blob digest>\0<path>`: all of one layer's records sort between `<digest>\0` and
/// `<digest>\x01`, apart from every other layer's and from the marker `<digest>`.
pub(crate) fn layer_path_key(layer: &str, path: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(layer.len() + 1 + path.len());
    key.extend_from_slice(layer.as_bytes());
    key.push(0);
    key.extend_from_slice(path.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Snapshots unpacked before issue 11 lost setuid bits and xattrs: a store without the
    /// current `.format` drops them at the next writer's open, and keeps current ones.
    #[test]
    fn snapshots_of_an_older_format_are_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let snapshot = root.join("snapshots").join("ab".repeat(32));
        std::fs::create_dir_all(snapshot.join("usr/bin")).unwrap();
        std::fs::write(snapshot.join("usr/bin/suid"), "lost its setuid bit").unwrap();
        drop(Store::open(&root, &mut || {}).unwrap());
        assert!(!snapshot.exists());
        let marker = root.join("snapshots/.format");
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), SNAPSHOT_FORMAT);

        std::fs::create_dir_all(&snapshot).unwrap();
        drop(Store::open(&root, &mut || {}).unwrap());
        assert!(snapshot.is_dir(), "a current snapshot is kept");

        std::fs::write(&marker, "1").unwrap();
        drop(Store::open(&root, &mut || {}).unwrap());
        assert!(!snapshot.exists());
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), SNAPSHOT_FORMAT);

        // Images are files: a staged one a killed build left goes, a complete one stays until
        // the format changes.
        let staged = root.join("snapshots/.unpack-Ab12cd");
        let image = root.join(format!(
            "snapshots/{}{SNAPSHOT_IMAGE_SUFFIX}",
            "ab".repeat(32)
        ));
        std::fs::write(&staged, "half an image").unwrap();
        std::fs::write(&image, "an image").unwrap();
        drop(Store::open(&root, &mut || {}).unwrap());
        assert!(!staged.exists());
        assert!(image.is_file());
        std::fs::write(&marker, "3").unwrap();
        drop(Store::open(&root, &mut || {}).unwrap());
        assert!(!image.exists());
    }
}
