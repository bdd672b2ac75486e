//! Garbage collection: what the store's roots reach, the last-used times of cache records, and
//! `prune`'s mark and sweep (with LRU dropping of cache records).
//!
//! Roots are image names (manifest, config, layers, and the config's diffIDs for snapshots) and
//! cache records (layer blobs, their diffIDs, and an optional base config). A cache record is the
//! engine's JSON `LayerChain`; the store reads only the digests it names, so it stays
//! independent of the engine. Everything else under `blobs/`, `snapshots/` and `tmp/` is garbage.
//!
//! Last-used times live beside the records in the `cache` column family under
//! `used:<32-byte key>` (u64 little-endian unix seconds): records keep their exact bytes, old
//! stores need no migration, and read-only views open no new column family. A record without a
//! time counts as last used when its layer blobs were (the `blobs` column family), else never.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::db::{
    now_unix, BlobRecord, CF_BLOBS, CF_CACHE, CF_IMAGES, CF_LAYERS, CF_REAPI, CF_REMOTE,
};
use crate::{Digest, Store, StoreError};

/// Key prefix of a cache record's last-used time in the `cache` column family.
const USED_PREFIX: &[u8] = b"used:";

/// Last-used times of cache hits recorded without opening the writable database: records of
/// the 32-byte key and the time (u64 LE), appended by [`Store::touch_cache`], folded into the
/// `used:` entries by its next database write, and read by [`Store::roots`] (the later time
/// wins). Best effort, like the times themselves: a torn last record is ignored.
pub(crate) const USED_LOG: &str = "cache-used.log";
const USED_LOG_RECORD: usize = 40;
/// Past this size the log is folded even if that opens the writable database.
const USED_LOG_FOLD_SIZE: u64 = 1 << 20;

fn append_used_log(path: &Path, keys: &[[u8; 32]], secs: u64) -> io::Result<()> {
    use std::io::Write;
    let mut bytes = Vec::with_capacity(keys.len() * USED_LOG_RECORD);
    for k in keys {
        bytes.extend_from_slice(k);
        bytes.extend_from_slice(&secs.to_le_bytes());
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&bytes)
}

/// The latest logged time per key (empty when there is no log).
fn read_used_log(root: &Path) -> BTreeMap<[u8; 32], u64> {
    let mut times = BTreeMap::new();
    let bytes = fs::read(root.join(USED_LOG)).unwrap_or_default();
    for record in bytes.chunks_exact(USED_LOG_RECORD) {
        let (key, secs) = record.split_at(32);
        if let (Ok(key), Ok(secs)) = (<[u8; 32]>::try_from(key), <[u8; 8]>::try_from(secs)) {
            let secs = u64::from_le_bytes(secs);
            let t = times.entry(key).or_insert(secs);
            *t = (*t).max(secs);
        }
    }
    times
}

/// Prefix of the temp directories `snapshot` unpacks into.
pub(crate) const UNPACK_PREFIX: &str = ".unpack-";

/// The key of a cache record's last-used time.
pub(crate) fn used_key(key: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(USED_PREFIX.len() + 32);
    k.extend_from_slice(USED_PREFIX);
    k.extend_from_slice(key);
    k
}

/// A last-used time as stored.
pub(crate) fn used_value(secs: u64) -> Vec<u8> {
    secs.to_le_bytes().to_vec()
}

/// A count of things and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Amount {
    pub count: u64,
    pub bytes: u64,
}

impl Amount {
    /// Count one more thing of `bytes`.
    pub fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// What `prune` may drop besides garbage.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Drop every cache record: keep only what image names reach.
    pub all: bool,
    /// Drop cache records not used within this many seconds.
    pub keep_duration: Option<u64>,
    /// Drop least-recently-used cache records until blobs + snapshots take at most this many
    /// bytes (what image names reach is never dropped, so the total may stay above).
    pub keep_storage: Option<u64>,
    /// Compute and report, delete nothing.
    pub dry_run: bool,
}

/// What `prune` freed (or, on a dry run, would free).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    /// Cache records dropped.
    pub cache_records: u64,
    pub blobs: Amount,
    pub snapshots: Amount,
    /// Snapshot objects no remaining snapshot links (`snapshots/objects/`).
    pub objects: Amount,
    /// Leftover temp files and directories (`tmp/`, `snapshots/.unpack-*`, strays in `blobs/`).
    pub temp: Amount,
}

impl PruneReport {
    /// Bytes freed in all.
    pub fn total_bytes(&self) -> u64 {
        self.blobs.bytes + self.snapshots.bytes + self.objects.bytes + self.temp.bytes
    }
}

/// An image name and what it reaches.
#[derive(Debug, Clone)]
pub(crate) struct ImageRoot {
    pub name: String,
    pub manifest: Option<Digest>,
    pub config: Option<Digest>,
    pub layers: Vec<Digest>,
    pub diff_ids: Vec<Digest>,
    /// For a name pointing at an image index: the index's other platforms' manifests and
    /// configs (`manifest` is the index, `config` and `layers` cover every platform).
    pub platforms: Vec<Digest>,
    /// Why the image could not be followed completely.
    pub damage: Option<String>,
}

/// A cache record and what it reaches.
#[derive(Debug, Clone)]
pub(crate) struct CacheRoot {
    pub key: [u8; 32],
    /// Layer blobs, then the base config.
    pub blobs: Vec<Digest>,
    pub diff_ids: Vec<Digest>,
    pub last_used: u64,
    /// False when the record is not a layer chain (it reaches nothing).
    pub readable: bool,
}

/// Every root of the store.
#[derive(Debug, Default)]
pub(crate) struct Roots {
    pub images: Vec<ImageRoot>,
    pub cache: Vec<CacheRoot>,
    /// `used:` entries whose record is gone.
    pub dangling_used: Vec<Vec<u8>>,
}

impl Roots {
    /// Blobs and diffIDs image names reach.
    pub fn image_marks(&self) -> (BTreeSet<Digest>, BTreeSet<Digest>) {
        let mut blobs = BTreeSet::new();
        let mut diff_ids = BTreeSet::new();
        for image in &self.images {
            blobs.extend(image.manifest.iter().cloned());
            blobs.extend(image.config.iter().cloned());
            blobs.extend(image.layers.iter().cloned());
            blobs.extend(image.platforms.iter().cloned());
            diff_ids.extend(image.diff_ids.iter().cloned());
        }
        (blobs, diff_ids)
    }
}

/// The part of the engine's `LayerChain` the store needs.
#[derive(Deserialize)]
struct ChainRecord {
    layers: Vec<LayerRef>,
    #[serde(default)]
    base_config: Option<Digest>,
}

#[derive(Deserialize)]
struct LayerRef {
    diff_id: Digest,
    digest: Digest,
}

/// The blobs and diffIDs a cache record names, or `None` when it is not a layer chain.
pub(crate) fn parse_cache_record(bytes: &[u8]) -> Option<(Vec<Digest>, Vec<Digest>)> {
    let chain: ChainRecord = serde_json::from_slice(bytes).ok()?;
    let mut blobs: Vec<Digest> = chain.layers.iter().map(|l| l.digest.clone()).collect();
    blobs.extend(chain.base_config);
    let diff_ids = chain.layers.into_iter().map(|l| l.diff_id).collect();
    Some((blobs, diff_ids))
}

/// What is on disk.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    /// Blob files by digest, with their sizes.
    pub blobs: BTreeMap<Digest, u64>,
    /// Snapshot directories by diffID, with their sizes (files they share with the object
    /// store not included: those bytes are the objects').
    pub snapshots: BTreeMap<Digest, (PathBuf, u64)>,
    /// Snapshot images (`snapshots/<diffID>.erofs`) by diffID, with their sizes.
    pub images: BTreeMap<Digest, (PathBuf, u64)>,
    /// The snapshot objects (`snapshots/objects/`).
    pub objects: Vec<crate::objects::ObjectFile>,
    /// Leftovers of interrupted writes: `tmp/*`, `snapshots/.unpack-*`, and anything under
    /// `blobs/sha256/` not named by a digest.
    pub temp: Vec<(PathBuf, u64)>,
}

impl Store {
    /// Note that cache records were used now (for `prune`'s LRU order). While the build has
    /// not opened the writable database (a no-op build never does), the times are appended to
    /// [`USED_LOG`] instead; otherwise they are written in one batch that also folds the log in.
    pub fn touch_cache(&self, keys: &[[u8; 32]]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let now = now_unix();
        let log = self.root.join(USED_LOG);
        if !self.db.is_writable_open()
            && fs::metadata(&log).map_or(0, |m| m.len()) < USED_LOG_FOLD_SIZE
            && append_used_log(&log, keys, now).is_ok()
        {
            return Ok(());
        }
        let mut times: BTreeMap<[u8; 32], u64> = read_used_log(&self.root);
        // A logged time never replaces a later one in the database.
        let logged: Vec<[u8; 32]> = times.keys().copied().collect();
        let stored = self
            .db
            .multi_get(CF_CACHE, &logged.iter().map(used_key).collect::<Vec<_>>())?;
        for (key, value) in logged.iter().zip(stored) {
            let secs = value
                .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                .map_or(0, u64::from_le_bytes);
            if secs >= times[key] {
                times.remove(key);
            }
        }
        times.extend(keys.iter().map(|k| (*k, now)));
        let kv: Vec<(Vec<u8>, Vec<u8>)> = times
            .iter()
            .map(|(k, t)| (used_key(k), used_value(*t)))
            .collect();
        self.db.write_batch(CF_CACHE, &kv)?;
        match fs::remove_file(&log) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(StoreError::io("removing", &log, e))
            }
            _ => Ok(()),
        }
    }

    /// Read every root. Damaged images are reported in [`ImageRoot::damage`], not as errors.
    pub(crate) fn roots(&self) -> Result<Roots, StoreError> {
        let mut roots = Roots::default();
        for (k, v) in self.db.scan(CF_IMAGES)? {
            let name = String::from_utf8_lossy(&k).into_owned();
            roots.images.push(self.image_root(name, &v));
        }
        let blob_used: HashMap<Digest, u64> = self
            .db
            .scan(CF_BLOBS)?
            .into_iter()
            .filter_map(|(k, v)| {
                let d = std::str::from_utf8(&k).ok()?.parse().ok()?;
                let r: BlobRecord = serde_json::from_slice(&v).ok()?;
                Some((d, r.last_used))
            })
            .collect();
        let mut used: HashMap<[u8; 32], u64> = HashMap::new();
        let mut records = Vec::new();
        // Records have 32-byte keys, times `used:` + 32 bytes; other keys are left alone.
        for (k, v) in self.db.scan(CF_CACHE)? {
            if let Ok(key) = <[u8; 32]>::try_from(k.as_slice()) {
                records.push((key, v));
            } else if let Some(Ok(key)) = k.strip_prefix(USED_PREFIX).map(<[u8; 32]>::try_from) {
                // A malformed time counts as none (and is overwritten by the next use).
                let secs = <[u8; 8]>::try_from(v.as_slice()).map_or(0, u64::from_le_bytes);
                used.insert(key, secs);
            }
        }
        for (key, secs) in read_used_log(&self.root) {
            let t = used.entry(key).or_insert(secs);
            *t = (*t).max(secs);
        }
        for (key, value) in records {
            let (blobs, diff_ids, readable) = match parse_cache_record(&value) {
                Some((b, d)) => (b, d, true),
                None => (Vec::new(), Vec::new(), false),
            };
            let last_used = used.remove(&key).filter(|&t| t > 0).unwrap_or_else(|| {
                blobs
                    .iter()
                    .filter_map(|b| blob_used.get(b).copied())
                    .max()
                    .unwrap_or(0)
            });
            roots.cache.push(CacheRoot {
                key,
                blobs,
                diff_ids,
                last_used,
                readable,
            });
        }
        roots
            .dangling_used
            .extend(used.into_keys().map(|k| used_key(&k)));
        Ok(roots)
    }

    fn image_root(&self, name: String, record: &[u8]) -> ImageRoot {
        let mut root = ImageRoot {
            name,
            manifest: None,
            config: None,
            layers: Vec::new(),
            diff_ids: Vec::new(),
            platforms: Vec::new(),
            damage: None,
        };
        let record: crate::ImageRecord = match serde_json::from_slice(record) {
            Ok(r) => r,
            Err(e) => {
                root.damage = Some(format!("its record is unreadable: {e}"));
                return root;
            }
        };
        root.manifest = Some(record.manifest.clone());
        let manifests = match self.image_manifests(&record.manifest) {
            Ok(m) => m,
            Err(e) => {
                root.damage = Some(damage("manifest", &record.manifest, e));
                return root;
            }
        };
        let single = manifests.len() == 1 && manifests[0].digest == record.manifest;
        for entry in manifests {
            if !single {
                root.platforms.push(entry.digest.clone());
            }
            let manifest = match self.manifest(&entry.digest) {
                Ok(m) => m,
                Err(e) => {
                    root.damage = Some(damage("manifest", &entry.digest, e));
                    return root;
                }
            };
            if root.config.is_none() {
                root.config = Some(manifest.config.digest.clone());
            } else {
                root.platforms.push(manifest.config.digest.clone());
            }
            root.layers
                .extend(manifest.layers.iter().map(|l| l.digest.clone()));
            match self.config(&manifest.config.digest) {
                Ok(c) => root.diff_ids.extend(c.rootfs.diff_ids),
                Err(e) => root.damage = Some(damage("config", &manifest.config.digest, e)),
            }
        }
        root
    }

    /// True when temp files are leftovers, not a running build's work: this process holds the
    /// store, or nobody does.
    pub(crate) fn leftovers_visible(&self) -> bool {
        self._lock.is_some() || !writer_active(&self.root)
    }

    /// Every blob, snapshot and temp leftover on disk, with sizes.
    pub(crate) fn inventory(&self, with_temp: bool) -> Result<Inventory, StoreError> {
        let mut inv = Inventory::default();
        let dir = &self.root.join("blobs").join("sha256");
        match fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|e| StoreError::io("listing blobs", dir, e))?;
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    let name = entry.file_name();
                    let digest = name
                        .to_str()
                        .and_then(|n| format!("sha256:{n}").parse::<Digest>().ok());
                    match digest {
                        Some(d) if entry.file_type().is_ok_and(|t| t.is_file()) => {
                            inv.blobs.insert(d, size);
                        }
                        _ if with_temp => inv.temp.push((entry.path(), tree_size(&entry.path()))),
                        _ => {}
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("listing blobs", dir, e)),
        }
        let snapshots = self.root.join("snapshots");
        if let Ok(entries) = fs::read_dir(&snapshots) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(UNPACK_PREFIX) {
                    if with_temp {
                        inv.temp.push((entry.path(), tree_size(&entry.path())));
                    }
                } else if let Some(hex) = name.strip_suffix(crate::SNAPSHOT_IMAGE_SUFFIX) {
                    if let Ok(d) = format!("sha256:{hex}").parse::<Digest>() {
                        let path = entry.path();
                        let size = entry.metadata().map_or(0, |m| m.len());
                        inv.images.insert(d, (path, size));
                    }
                } else if let Ok(d) = format!("sha256:{name}").parse::<Digest>() {
                    let path = entry.path();
                    let size = own_size(&path);
                    inv.snapshots.insert(d, (path, size));
                }
            }
        }
        inv.objects = crate::objects::list_objects(&self.root)
            .map_err(|e| StoreError::io("listing snapshot objects", &snapshots, e))?;
        if with_temp {
            if let Ok(entries) = fs::read_dir(self.blobs.tmp_dir()) {
                for entry in entries.flatten() {
                    inv.temp.push((entry.path(), tree_size(&entry.path())));
                }
            }
        }
        inv.temp.sort();
        Ok(inv)
    }

    /// Mark and sweep: delete blobs, snapshots and temp leftovers nothing reaches, after
    /// dropping the cache records `options` asks to drop. Needs the store open for writing,
    /// except for a dry run (which a read-only view can plan: opening for writing already
    /// removes temp leftovers).
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport, StoreError> {
        if self._lock.is_none() && !options.dry_run {
            return Err(StoreError::Db(
                "prune needs the store open for writing".into(),
            ));
        }
        let roots = self.roots()?;
        if let Some(bad) = roots.images.iter().find(|i| i.damage.is_some()) {
            return Err(StoreError::Corrupt(format!(
                "image {} is damaged: {}; run `seal fsck --repair` before pruning",
                bad.name,
                bad.damage.as_deref().unwrap_or_default()
            )));
        }
        let inv = self.inventory(self.leftovers_visible())?;
        let (image_blobs, image_diff_ids) = roots.image_marks();

        // Which cache records stay.
        let now = now_unix();
        let mut keep: Vec<&CacheRoot> = roots
            .cache
            .iter()
            .filter(|_| !options.all)
            .filter(|r| {
                options
                    .keep_duration
                    .is_none_or(|d| r.last_used.saturating_add(d) >= now)
            })
            .collect();
        if let Some(limit) = options.keep_storage {
            keep = lru_fit(keep, limit, &inv, &image_blobs, &image_diff_ids);
        }
        let kept_keys: HashSet<[u8; 32]> = keep.iter().map(|r| r.key).collect();
        let dropped: Vec<&CacheRoot> = roots
            .cache
            .iter()
            .filter(|r| !kept_keys.contains(&r.key))
            .collect();

        // Mark.
        let mut live_blobs = image_blobs;
        let mut live_diff_ids = image_diff_ids;
        for r in &keep {
            live_blobs.extend(r.blobs.iter().cloned());
            live_diff_ids.extend(r.diff_ids.iter().cloned());
        }

        // Sweep plan.
        let mut report = PruneReport {
            dry_run: options.dry_run,
            cache_records: dropped.len() as u64,
            ..PruneReport::default()
        };
        let dead_blobs: Vec<(&Digest, u64)> = inv
            .blobs
            .iter()
            .filter(|(d, _)| !live_blobs.contains(*d))
            .map(|(d, s)| (d, *s))
            .collect();
        for (_, size) in &dead_blobs {
            report.blobs.add(*size);
        }
        let dead_snapshots = unreached(&inv.snapshots, &live_diff_ids);
        let dead_images = unreached(&inv.images, &live_diff_ids);
        for (_, size) in dead_snapshots.iter().chain(&dead_images) {
            report.snapshots.add(*size);
        }
        let doomed: Vec<&Path> = dead_snapshots.iter().map(|(p, _)| p.as_path()).collect();
        let dead_objects = crate::objects::dead_objects(&inv.objects, &doomed);
        for object in &dead_objects {
            report.objects.add(object.size);
        }
        for (_, size) in &inv.temp {
            report.temp.add(*size);
        }
        if options.dry_run {
            return Ok(report);
        }

        // Records first, so no record ever names a deleted blob.
        let cache_cf = self.db.cf(CF_CACHE)?;
        let blobs_cf = self.db.cf(CF_BLOBS)?;
        let mut batch = WriteBatch::default();
        for r in &dropped {
            batch.delete_cf(cache_cf, r.key);
            batch.delete_cf(cache_cf, used_key(&r.key));
        }
        for k in &roots.dangling_used {
            batch.delete_cf(cache_cf, k);
        }
        // What the builds of a removed name read is of no use to anyone now.
        self.drop_steps_of_gone_names(&mut batch)?;
        for (k, _) in self.db.scan(CF_BLOBS)? {
            let gone = std::str::from_utf8(&k)
                .ok()
                .and_then(|s| s.parse::<Digest>().ok())
                .is_none_or(|d| !live_blobs.contains(&d) || !inv.blobs.contains_key(&d));
            if gone {
                batch.delete_cf(blobs_cf, &k);
            }
        }
        // A remote blob nothing needs any more is forgotten (its bytes were never here).
        let remote_cf = self.db.cf(CF_REMOTE)?;
        for (digest, _) in self.remote_blobs()? {
            if !live_blobs.contains(&digest) {
                batch.delete_cf(remote_cf, digest.to_string().as_bytes());
            }
        }
        // A deleted layer's path index goes with it (it is keyed by the blob's digest).
        let layers_cf = self.db.cf(CF_LAYERS)?;
        for (digest, _) in &dead_blobs {
            let id = digest.to_string();
            batch.delete_range_cf(
                layers_cf,
                crate::layer_path_key(&id, ""),
                [id.as_bytes(), &[1]].concat(),
            );
            batch.delete_cf(layers_cf, id.as_bytes());
        }
        // The remote executor's input trees are keyed by layer content, not by blob, so only
        // `--all` reaches them: it drops every one (a later remote RUN re-hashes its layers).
        if options.all {
            let reapi_cf = self.db.cf(CF_REAPI)?;
            batch.delete_range_cf(reapi_cf, b"".as_slice(), [0xffu8].as_slice());
        }
        self.db.write(batch)?;
        for (digest, _) in dead_blobs {
            let path = self.blobs.path(digest);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("deleting a blob", &path, e)),
            }
        }
        for (path, _) in dead_snapshots.into_iter().chain(dead_images) {
            remove_tree(path)?;
        }
        // After the snapshots: an object goes only once nothing links it.
        for object in dead_objects {
            remove_tree(&object.path)?;
        }
        for (path, _) in &inv.temp {
            remove_tree(path)?;
        }
        Ok(report)
    }
}

/// The snapshots (directories or images) whose diffID is not in `live`.
fn unreached<'a>(
    snapshots: &'a BTreeMap<Digest, (PathBuf, u64)>,
    live: &BTreeSet<Digest>,
) -> Vec<&'a (PathBuf, u64)> {
    snapshots
        .iter()
        .filter(|(d, _)| !live.contains(*d))
        .map(|(_, v)| v)
        .collect()
}

/// True while another process holds the store open for writing.
pub(crate) fn writer_active(root: &Path) -> bool {
    let Ok(file) = fs::File::open(root.join("lock")) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(fs::TryLockError::WouldBlock) => true,
        Err(fs::TryLockError::Error(_)) => false,
    }
}

/// Drop the least-recently-used of `keep` until blobs + snapshots fit in `limit` bytes.
fn lru_fit<'a>(
    mut keep: Vec<&'a CacheRoot>,
    limit: u64,
    inv: &Inventory,
    image_blobs: &BTreeSet<Digest>,
    image_diff_ids: &BTreeSet<Digest>,
) -> Vec<&'a CacheRoot> {
    let blob_size = |d: &Digest| inv.blobs.get(d).copied().unwrap_or(0);
    let snap_size = |d: &Digest| {
        inv.snapshots.get(d).map_or(0, |(_, s)| *s) + inv.images.get(d).map_or(0, |(_, s)| *s)
    };
    let mut blob_refs: HashMap<&Digest, usize> = HashMap::new();
    let mut diff_refs: HashMap<&Digest, usize> = HashMap::new();
    for r in &keep {
        for d in unique(&r.blobs) {
            *blob_refs.entry(d).or_default() += 1;
        }
        for d in unique(&r.diff_ids) {
            *diff_refs.entry(d).or_default() += 1;
        }
    }
    let mut total: u64 = image_blobs.iter().map(blob_size).sum::<u64>()
        + image_diff_ids.iter().map(snap_size).sum::<u64>()
        + blob_refs
            .keys()
            .filter(|d| !image_blobs.contains(**d))
            .map(|d| blob_size(d))
            .sum::<u64>()
        + diff_refs
            .keys()
            .filter(|d| !image_diff_ids.contains(**d))
            .map(|d| snap_size(d))
            .sum::<u64>();
    // Oldest first; the key breaks ties so the order is stable.
    keep.sort_by_key(|r| (r.last_used, r.key));
    let mut dropped = 0;
    for r in &keep {
        if total <= limit {
            break;
        }
        dropped += 1;
        for d in unique(&r.blobs) {
            let n = blob_refs.entry(d).or_default();
            *n = n.saturating_sub(1);
            if *n == 0 && !image_blobs.contains(d) {
                total = total.saturating_sub(blob_size(d));
            }
        }
        for d in unique(&r.diff_ids) {
            let n = diff_refs.entry(d).or_default();
            *n = n.saturating_sub(1);
            if *n == 0 && !image_diff_ids.contains(d) {
                total = total.saturating_sub(snap_size(d));
            }
        }
    }
    keep.split_off(dropped)
}

fn unique(digests: &[Digest]) -> BTreeSet<&Digest> {
    digests.iter().collect()
}

/// Why a manifest or config blob could not be read.
pub(crate) fn damage(what: &str, digest: &Digest, e: StoreError) -> String {
    match e {
        StoreError::MissingBlob(_) => format!("its {what} {digest} is missing"),
        StoreError::CorruptBlob { .. } => format!("its {what} {digest} is corrupt"),
        other => format!("its {what} {digest} is unreadable: {other}"),
    }
}

/// Bytes of a file or directory tree (apparent sizes; hard links counted once; symlinks not
/// followed).
/// The bytes of the files under `path` that have no other name: what deleting the tree frees
/// of a snapshot whose shared files are objects.
pub(crate) fn own_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    crate::objects::walk_files(path, &mut |m| {
        if m.nlink() <= 1 {
            total += m.len();
        }
    });
    total
}

pub(crate) fn tree_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    let mut total = 0;
    let mut seen = HashSet::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if m.is_dir() {
                stack.push(entry.path());
            } else if m.nlink() <= 1 || seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

/// Remove a file or a directory tree, making read-only directories writable when needed.
pub(crate) fn remove_tree(path: &Path) -> Result<(), StoreError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("removing", path, e)),
    };
    if !meta.is_dir() {
        return fs::remove_file(path).map_err(|e| StoreError::io("removing", path, e));
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    make_writable(path);
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("removing", path, e)),
    }
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(m) = fs::symlink_metadata(&d) {
            let mode = m.permissions().mode();
            if mode & 0o700 != 0o700 {
                let _ = fs::set_permissions(&d, fs::Permissions::from_mode(mode | 0o700));
            }
        }
        if let Ok(entries) = fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
