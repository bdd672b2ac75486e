//! The RocksDB database: one column family per concern.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `cache` | cache key (32 bytes) | the engine's encoded result record |
//! | `cache` | `used:` + cache key | the record's last use, unix seconds (u64 LE; `gc.rs`) |
//! | `images` | normalised image name | [`ImageRecord`] (JSON) |
//! | `blobs` | digest string | [`BlobRecord`] (JSON) |
//! | `filehash` | absolute path bytes | [`crate::FileHashEntry`] (fixed binary) |
//! | `snapshots` | layer chain id | unpacked directory (later issues) |

use std::path::Path;
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
const ALL_CFS: [&str; 6] = [
    CF_CACHE,
    CF_IMAGES,
    CF_BLOBS,
    CF_FILEHASH,
    CF_SNAPSHOTS,
    CF_COLLECT,
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

pub(crate) struct Db {
    pub(crate) db: DB,
}

impl Db {
    /// Open (or create) the database; waits while another process holds the lock.
    pub(crate) fn open(dir: &Path, on_wait: &mut dyn FnMut()) -> Result<Db, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_keep_log_file_num(2);
        opts.set_max_log_file_size(1 << 20);
        let cfs = || {
            ALL_CFS
                .iter()
                .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()))
        };
        let started = Instant::now();
        let mut warned = false;
        loop {
            match DB::open_cf_descriptors(&opts, dir, cfs()) {
                Ok(db) => return Ok(Db { db }),
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

    /// Open a read-only view beside a possibly running writer: a RocksDB *secondary* instance,
    /// which replays the primary's MANIFEST and tolerates its ongoing writes and compactions.
    /// `scratch` holds the secondary's own info log.
    pub(crate) fn open_secondary(dir: &Path, scratch: &Path) -> Result<Db, StoreError> {
        let mut opts = Options::default();
        opts.set_max_open_files(-1);
        opts.set_keep_log_file_num(1);
        let cfs = ALL_CFS
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors_as_secondary(&opts, dir, scratch, cfs)
            .map_err(|e| StoreError::Db(format!("opening {} read-only: {e}", dir.display())))?;
        db.try_catch_up_with_primary()
            .map_err(|e| StoreError::Db(format!("reading {}: {e}", dir.display())))?;
        Ok(Db { db })
    }

    pub(crate) fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Db(format!("column family {name} is missing")))
    }

    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(db_err)
    }

    pub(crate) fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db.put_cf(self.cf(cf)?, key, value).map_err(db_err)
    }

    pub(crate) fn delete(&self, cf: &str, key: &[u8]) -> Result<(), StoreError> {
        self.db.delete_cf(self.cf(cf)?, key).map_err(db_err)
    }

    pub(crate) fn multi_get(
        &self,
        cf: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let handle = self.cf(cf)?;
        self.db
            .batched_multi_get_cf(handle, keys.iter().map(|k| k.as_slice()), false)
            .into_iter()
            .map(|r| r.map(|v| v.map(|p| p.to_vec())).map_err(db_err))
            .collect()
    }

    pub(crate) fn write_batch(&self, cf: &str, entries: &[KeyValue]) -> Result<(), StoreError> {
        let handle = self.cf(cf)?;
        let mut batch = WriteBatch::default();
        for (k, v) in entries {
            batch.put_cf(handle, k, v);
        }
        self.db.write(batch).map_err(db_err)
    }

    pub(crate) fn scan(&self, cf: &str) -> Result<Vec<KeyValue>, StoreError> {
        let handle = self.cf(cf)?;
        self.db
            .iterator_cf(handle, rocksdb::IteratorMode::Start)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(db_err))
            .collect()
    }
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
