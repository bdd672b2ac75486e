//! The RocksDB database: one column family per concern.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `cache` | cache key (32 bytes) | the engine's encoded result record |
//! | `cache` | `used:` + cache key | the record's last use, unix seconds (u64 LE; `gc.rs`) |
//! | `images` | normalised image name | [`ImageRecord`] (JSON) |
//! | `blobs` | digest string | [`BlobRecord`] (JSON) |
//! | `filehash` | absolute path bytes | [`crate::FileHashEntry`] (fixed binary) |
//! | `snapshots` | (reserved) | opened so every store has it; nothing writes it yet |
//! | `layers` | layer blob digest string | marker: the layer's path index is complete |
//! | `layers` | blob digest + `\0` + rootfs path | one entry of that index (`Store::layer_path`) |
//! | `steps` | image name + `\0s\0` + step position | what the name's last build of that step read (`steps.rs`) |
//! | `steps` | image name + `\0f\0` + step position | that step's source file list, when it has one |
//! | `remote` | digest string | [`crate::RemoteBlob`] (JSON): where a blob not yet on disk is |
//! | `reapi` | `layer:`/`chain:` + content key | a layer's or layer chain's REAPI input tree (`executor/remote/input.rs`) |

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, DB};
use serde::{Deserialize, Serialize};

use crate::{Digest, StoreError};

pub(crate) const CF_CACHE: &str = "cache";
pub(crate) const CF_IMAGES: &str = "images";
pub(crate) const CF_BLOBS: &str = "blobs";
pub(crate) const CF_FILEHASH: &str = "filehash";
pub(crate) const CF_SNAPSHOTS: &str = "snapshots";
/// Image collection's records: scans by rootfs, tag resolutions (see `Store::collect_get`).
pub(crate) const CF_COLLECT: &str = "collect";
/// Per-layer path indexes, keyed by layer blob digest (see `Store::layer_path`).
pub(crate) const CF_LAYERS: &str = "layers";
/// Remote execution: REAPI input trees of layers and layer chains, by their content.
pub(crate) const CF_REAPI: &str = "reapi";
/// Per image name and step position, what the last build of the step read (see `steps.rs`).
pub(crate) const CF_STEPS: &str = "steps";
/// Blobs a cache import named but nothing has downloaded yet (see `remote.rs`).
pub(crate) const CF_REMOTE: &str = "remote";
const ALL_CFS: [&str; 10] = [
    CF_CACHE,
    CF_IMAGES,
    CF_BLOBS,
    CF_FILEHASH,
    CF_SNAPSHOTS,
    CF_COLLECT,
    CF_LAYERS,
    CF_REMOTE,
    CF_STEPS,
    CF_REAPI,
];

/// An image name's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The manifest's digest.
    pub manifest: Digest,
    /// Unix seconds when the name was last pointed at this manifest.
    pub tagged_at: u64,
}

/// What the store knows of a blob beyond its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    /// Unix seconds of the last build that produced or reused it (for LRU pruning).
    pub last_used: u64,
}

/// A key and its value, as raw bytes.
pub(crate) type KeyValue = (Vec<u8>, Vec<u8>);

/// The database of a store. A writer store (the flock holder) reads through a RocksDB
/// read-only instance and opens the writable instance only at its first write: a writable open
/// writes a new MANIFEST, CURRENT and OPTIONS file (five fsyncs) and flushes the previous
/// session's WAL, about 10 ms that a no-op build, which writes nothing, never pays. Nothing
/// else writes while the flock is held, so the read-only view is never stale.
pub(crate) struct Db {
    dir: PathBuf,
    /// The read-only instance of a writer store, or the secondary of a read-only view.
    reader: Option<DB>,
    /// The writable instance, once opened (always `None` for a read-only view).
    writer: OnceLock<DB>,
    /// Serialises the writable open.
    opening: Mutex<()>,
    read_only_view: bool,
}

/// Options shared by every instance: tables are opened on the calling thread (the default
/// starts 16 threads per column family at every open) and open reads no table statistics.
fn base_options() -> Options {
    let mut opts = Options::default();
    opts.set_max_file_opening_threads(1);
    opts.set_skip_stats_update_on_db_open(true);
    opts
}

fn descriptors() -> impl Iterator<Item = ColumnFamilyDescriptor> {
    ALL_CFS
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()))
}

impl Db {
    /// Open (or create) the database of a writer store. An existing database is opened
    /// read-only (with its info log in `log_dir`, which the store empties); the writable
    /// instance follows at the first write. `on_wait` is called if a writable open has to wait.
    pub(crate) fn open(
        dir: &Path,
        log_dir: &Path,
        on_wait: &mut dyn FnMut(),
    ) -> Result<Db, StoreError> {
        let mut db = Db {
            dir: dir.to_path_buf(),
            reader: None,
            writer: OnceLock::new(),
            opening: Mutex::new(()),
            read_only_view: false,
        };
        if dir.join("CURRENT").exists() {
            let mut opts = base_options();
            opts.set_db_log_dir(log_dir);
            // Anything a read-only open cannot do (a column family to create, say) falls back
            // to the writable open.
            if let Ok(reader) = DB::open_cf_descriptors_read_only(&opts, dir, descriptors(), false)
            {
                db.reader = Some(reader);
                return Ok(db);
            }
        }
        let writer = open_writable(dir, on_wait)?;
        let _ = db.writer.set(writer);
        Ok(db)
    }

    /// Open a read-only view beside a possibly running writer: a RocksDB *secondary* instance,
    /// which replays the primary's MANIFEST and tolerates its ongoing writes and compactions.
    /// `scratch` holds the secondary's own info log.
    pub(crate) fn open_secondary(dir: &Path, scratch: &Path) -> Result<Db, StoreError> {
        let mut opts = base_options();
        opts.set_max_open_files(-1);
        opts.set_keep_log_file_num(1);
        // A secondary cannot create column families: open those the primary has (a store
        // written by an older seal lacks the newer ones, whose reads then find nothing).
        let existing = DB::list_cf(&opts, dir).unwrap_or_default();
        let present = descriptors().filter(|d| existing.iter().any(|n| n == d.name()));
        let db = DB::open_cf_descriptors_as_secondary(&opts, dir, scratch, present)
            .map_err(|e| StoreError::Db(format!("opening {} read-only: {e}", dir.display())))?;
        db.try_catch_up_with_primary()
            .map_err(|e| StoreError::Db(format!("reading {}: {e}", dir.display())))?;
        Ok(Db {
            dir: dir.to_path_buf(),
            reader: Some(db),
            writer: OnceLock::new(),
            opening: Mutex::new(()),
            read_only_view: true,
        })
    }

    /// Whether the writable instance is open (writes now cost no open).
    pub(crate) fn is_writable_open(&self) -> bool {
        self.writer.get().is_some()
    }

    /// The instance reads go to: the writer once open (it sees its own writes), else the reader.
    fn read_db(&self) -> &DB {
        match (self.writer.get(), &self.reader) {
            (Some(w), _) => w,
            (None, Some(r)) => r,
            (None, None) => unreachable!("a Db always has an instance"),
        }
    }

    /// The writable instance, opened now if need be.
    fn write_db(&self) -> Result<&DB, StoreError> {
        if let Some(w) = self.writer.get() {
            return Ok(w);
        }
        if self.read_only_view {
            return Err(StoreError::Db(format!(
                "{} is open read-only",
                self.dir.display()
            )));
        }
        let _guard = self.opening.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = self.writer.get() {
            return Ok(w);
        }
        let writer = open_writable(&self.dir, &mut || {})?;
        let _ = self.writer.set(writer);
        self.writer
            .get()
            .ok_or_else(|| StoreError::Db("the writable database did not open".into()))
    }

    fn read_cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        cf_of(self.read_db(), name)
    }

    /// A column family of the writable instance, for a [`WriteBatch`] given to [`Db::write`].
    pub(crate) fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        cf_of(self.write_db()?, name)
    }

    /// Apply a batch built with handles from [`Db::cf`].
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.write_db()?.write(batch).map_err(db_err)
    }

    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.read_db();
        // Only a read-only view of an older store lacks a column family: nothing is in it.
        let Some(handle) = db.cf_handle(cf) else {
            return Ok(None);
        };
        db.get_cf(handle, key).map_err(db_err)
    }

    pub(crate) fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.write_db()?
            .put_cf(self.cf(cf)?, key, value)
            .map_err(db_err)
    }

    pub(crate) fn delete(&self, cf: &str, key: &[u8]) -> Result<(), StoreError> {
        self.write_db()?
            .delete_cf(self.cf(cf)?, key)
            .map_err(db_err)
    }

    /// The values of `keys`, in order. One forward pass of an iterator over the keys in sorted
    /// order (re-seeking over gaps): a no-op build looks up every context file, and walking
    /// the sorted table is about six times faster than RocksDB's `MultiGet` of the same keys.
    pub(crate) fn multi_get(
        &self,
        cf: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        /// Entries stepped over before a seek is cheaper.
        const MAX_STEPS: usize = 8;
        let db = self.read_db();
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by(|&a, &b| keys[a].cmp(&keys[b]));
        let mut out = vec![None; keys.len()];
        let mut it = db.raw_iterator_cf(self.read_cf(cf)?);
        let mut positioned = false;
        for i in order {
            let key = keys[i].as_slice();
            if positioned {
                let mut steps = 0;
                while it.key().is_some_and(|k| k < key) {
                    if steps == MAX_STEPS {
                        it.seek(key);
                        break;
                    }
                    it.next();
                    steps += 1;
                }
            } else {
                it.seek(key);
                positioned = true;
            }
            if it.key() == Some(key) {
                out[i] = it.value().map(<[u8]>::to_vec);
            } else if !it.valid() {
                break;
            }
        }
        it.status().map_err(db_err)?;
        Ok(out)
    }

    pub(crate) fn write_batch(&self, cf: &str, entries: &[KeyValue]) -> Result<(), StoreError> {
        let handle = self.cf(cf)?;
        let mut batch = WriteBatch::default();
        for (k, v) in entries {
            batch.put_cf(handle, k, v);
        }
        self.write(batch)
    }

    /// The entries whose key starts with `prefix`, in key order (none when a read-only view
    /// of an older store lacks the column family).
    pub(crate) fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let db = self.read_db();
        let Some(handle) = db.cf_handle(cf) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mode = rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward);
        for item in db.iterator_cf(handle, mode) {
            let (k, v) = item.map_err(db_err)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    pub(crate) fn scan(&self, cf: &str) -> Result<Vec<KeyValue>, StoreError> {
        let handle = self.read_cf(cf)?;
        self.read_db()
            .iterator_cf(handle, rocksdb::IteratorMode::Start)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(db_err))
            .collect()
    }
}

impl Drop for Db {
    /// A writer flushes its memtables before closing, so the next open (read-only, see [`Db`])
    /// replays an empty WAL instead of this session's writes (a cold build's file hashes are
    /// megabytes). Best effort: what is not flushed is still in the WAL.
    fn drop(&mut self) {
        if let Some(writer) = self.writer.get() {
            let handles: Vec<_> = ALL_CFS.iter().filter_map(|n| writer.cf_handle(n)).collect();
            let mut opts = rocksdb::FlushOptions::default();
            opts.set_wait(true);
            if let Err(e) = writer.flush_cfs_opt(&handles, &opts) {
                tracing::warn!("flushing {}: {e}", self.dir.display());
            }
        }
    }
}

/// The writable open; waits while another process holds RocksDB's lock.
fn open_writable(dir: &Path, on_wait: &mut dyn FnMut()) -> Result<DB, StoreError> {
    let _span = tracing::info_span!(target: "seal_trace", "store: open for writing").entered();
    let mut opts = base_options();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_keep_log_file_num(2);
    opts.set_max_log_file_size(1 << 20);
    let started = Instant::now();
    let mut warned = false;
    loop {
        match DB::open_cf_descriptors(&opts, dir, descriptors()) {
            Ok(db) => return Ok(db),
            Err(e) if is_lock_error(&e) && started.elapsed() < Duration::from_secs(3600) => {
                if !warned {
                    on_wait();
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(StoreError::Db(format!("opening {}: {e}", dir.display()))),
        }
    }
}

fn cf_of<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::Db(format!("column family {name} is missing")))
}

fn is_lock_error(e: &rocksdb::Error) -> bool {
    let s = e.to_string();
    s.contains("lock") && (s.contains("LOCK") || s.contains("Resource temporarily unavailable"))
}

fn db_err(e: rocksdb::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

/// Unix seconds now.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_match_point_gets_and_writes_open_the_writer_lazily() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        let logs = tmp.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        {
            let db = Db::open(&dir, &logs, &mut || {}).unwrap();
            assert!(db.is_writable_open(), "a new database is created writable");
            // Present keys with gaps of absent ones, long runs and a shared prefix.
            let kv: Vec<KeyValue> = (0..500u32)
                .filter(|i| i % 3 != 0 && !(100..140).contains(i))
                .map(|i| {
                    (
                        format!("/ctx/{i:04}").into_bytes(),
                        i.to_le_bytes().to_vec(),
                    )
                })
                .collect();
            db.write_batch(CF_FILEHASH, &kv).unwrap();
        }
        let db = Db::open(&dir, &logs, &mut || {}).unwrap();
        assert!(
            !db.is_writable_open(),
            "an existing database opens read-only"
        );
        let mut keys: Vec<Vec<u8>> = (0..520u32)
            .rev()
            .map(|i| format!("/ctx/{i:04}").into_bytes())
            .collect();
        keys.extend([
            b"/ctx/0007".to_vec(),
            b"/a".to_vec(),
            b"/z".to_vec(),
            vec![],
        ]);
        let got = db.multi_get(CF_FILEHASH, &keys).unwrap();
        for (k, v) in keys.iter().zip(&got) {
            assert_eq!(
                v,
                &db.get(CF_FILEHASH, k).unwrap(),
                "{}",
                String::from_utf8_lossy(k)
            );
        }
        assert_eq!(
            got.iter().filter(|v| v.is_some()).count(),
            500 - 167 - 27 + 1
        );
        db.put(CF_IMAGES, b"name", b"x").unwrap();
        assert!(db.is_writable_open());
        assert_eq!(
            db.get(CF_IMAGES, b"name").unwrap().as_deref(),
            Some(&b"x"[..])
        );
        assert_eq!(db.multi_get(CF_FILEHASH, &keys).unwrap(), got);
    }
}
