//! `seal fsck`: check every record against the blobs it names and every blob against its name;
//! `--repair` drops what is broken.
//!
//! Problems (exit 1): an image name or cache record naming a missing or corrupt blob (or an
//! unreadable record), a blob whose bytes do not hash to its name, a blob that cannot be read,
//! and leftovers of interrupted writes (`tmp/*`, `snapshots/.unpack-*`, strays in `blobs/`);
//! a snapshot object whose bytes or metadata no longer hash to its name (`--repair` deletes it
//! and every snapshot that links it: they are unpacked again when a RUN needs them).
//! Orphans (blobs, snapshots and objects nothing reaches) are listed but are no problem: `prune`
//! frees them. Leftovers are only looked for while no build holds the store, since a running build's
//! temp files look the same.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rocksdb::WriteBatch;

use crate::db::{CF_BLOBS, CF_CACHE, CF_IMAGES};
use crate::gc::{remove_tree, tree_size, used_key, writer_active, UNPACK_PREFIX};
use crate::oci::{ImageConfig, Manifest};
use crate::{verify_file, Digest, Store, StoreError};

/// What is wrong with a blob file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BlobState {
    Ok,
    Corrupt,
    Unreadable(String),
}

/// One problem `fsck` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An image name that cannot be used as it is.
    Image { name: String, reason: String },
    /// A cache record that cannot be used as it is.
    CacheRecord { key: [u8; 32], reason: String },
    /// A blob whose content does not hash to its name.
    CorruptBlob { digest: Digest },
    /// A blob that could not be read (left alone by `--repair`).
    UnreadableBlob { digest: Digest, error: String },
    /// A leftover of an interrupted write (path relative to the store).
    Leftover { path: PathBuf, bytes: u64 },
    /// A snapshot object whose bytes, mode, owner or xattrs do not hash to its name, or that
    /// cannot be read (path relative to the store).
    CorruptObject { path: PathBuf, reason: String },
    /// A snapshot image whose bytes do not hash to its hash xattr, or that cannot be read
    /// (path relative to the store).
    CorruptImage { path: PathBuf, reason: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Image { name, reason } => write!(f, "image {name}: {reason}"),
            Problem::CacheRecord { key, reason } => {
                write!(f, "cache record {}: {reason}", short_key(key))
            }
            Problem::CorruptBlob { digest } => {
                write!(f, "blob {digest}: content does not match its digest")
            }
            Problem::UnreadableBlob { digest, error } => {
                write!(f, "blob {digest}: cannot be read: {error}")
            }
            Problem::Leftover { path, bytes } => {
                write!(f, "leftover {} ({bytes} B)", path.display())
            }
            Problem::CorruptObject { path, reason } => {
                write!(f, "snapshot object {}: {reason}", path.display())
            }
            Problem::CorruptImage { path, reason } => {
                write!(f, "snapshot image {}: {reason}", path.display())
            }
        }
    }
}

impl Problem {
    /// True for what is broken; false for a leftover of an interrupted write, which is
    /// expected after a crash, harms nothing, and goes at the next build (or `--repair`).
    pub fn is_damage(&self) -> bool {
        !matches!(self, Problem::Leftover { .. })
    }
}

/// Something nothing references (`seal prune` frees it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Orphan {
    Blob {
        digest: Digest,
        bytes: u64,
    },
    Snapshot {
        diff_id: Digest,
        bytes: u64,
    },
    /// A snapshot object no snapshot links (path relative to the store).
    Object {
        path: PathBuf,
        bytes: u64,
    },
}

impl fmt::Display for Orphan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Orphan::Blob { digest, bytes } => write!(f, "blob {digest} ({bytes} B)"),
            Orphan::Snapshot { diff_id, bytes } => {
                write!(f, "snapshot {} ({bytes} B)", diff_id.hex())
            }
            Orphan::Object { path, bytes } => {
                write!(f, "snapshot object {} ({bytes} B)", path.display())
            }
        }
    }
}

/// What `fsck` found.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    pub images: usize,
    pub cache_records: usize,
    pub blobs: usize,
    /// Blobs a cache import named that are not downloaded (present for every purpose but
    /// their bytes; not missing).
    pub remote_blobs: usize,
    /// Snapshot objects checked.
    pub objects: usize,
    /// Snapshot images checked.
    pub images_checked: usize,
    pub problems: Vec<Problem>,
    pub orphans: Vec<Orphan>,
    /// False when a build held the store, so temp leftovers were not looked for.
    pub leftovers_checked: bool,
}

/// The first 12 hex digits of a cache key.
fn short_key(key: &[u8; 32]) -> String {
    hex::encode(&key[..6])
}

impl Store {
    /// Check the whole store (reads and hashes every blob once).
    pub fn fsck(&self) -> Result<FsckReport, StoreError> {
        let leftovers_checked = self.leftovers_visible();
        let roots = self.roots()?;
        let inv = self.inventory(leftovers_checked)?;
        let states = self.verify_all(inv.blobs.keys().cloned().collect());
        let remote: BTreeSet<Digest> = self.remote_blobs()?.into_iter().map(|(d, _)| d).collect();
        let state_of = |d: &Digest| -> Result<(), String> {
            match states.get(d) {
                None if remote.contains(d) => Ok(()),
                None => Err(format!("{d} is missing")),
                Some(BlobState::Ok) => Ok(()),
                Some(BlobState::Corrupt) => Err(format!("{d} is corrupt")),
                Some(BlobState::Unreadable(e)) => Err(format!("{d} cannot be read: {e}")),
            }
        };
        let mut report = FsckReport {
            images: roots.images.len(),
            cache_records: roots.cache.len(),
            blobs: inv.blobs.len(),
            remote_blobs: remote.len(),
            objects: inv.objects.len(),
            leftovers_checked,
            ..FsckReport::default()
        };

        for (k, v) in self.db.scan(CF_IMAGES)? {
            let name = String::from_utf8_lossy(&k).into_owned();
            for reason in self.check_image(&v, &state_of) {
                report.problems.push(Problem::Image {
                    name: name.clone(),
                    reason,
                });
            }
        }
        for r in &roots.cache {
            if !r.readable {
                report.problems.push(Problem::CacheRecord {
                    key: r.key,
                    reason: "not a layer chain".into(),
                });
            }
            for d in &r.blobs {
                if let Err(e) = state_of(d) {
                    report.problems.push(Problem::CacheRecord {
                        key: r.key,
                        reason: format!("blob {e}"),
                    });
                }
            }
        }
        for (digest, state) in &states {
            match state {
                BlobState::Ok => {}
                BlobState::Corrupt => report.problems.push(Problem::CorruptBlob {
                    digest: digest.clone(),
                }),
                BlobState::Unreadable(error) => report.problems.push(Problem::UnreadableBlob {
                    digest: digest.clone(),
                    error: error.clone(),
                }),
            }
        }
        let relative = |p: &Path| p.strip_prefix(&self.root).unwrap_or(p).to_path_buf();
        for (object, reason) in verify_objects(&inv.objects) {
            report.problems.push(Problem::CorruptObject {
                path: relative(&object.path),
                reason,
            });
        }
        for (path, _) in inv.images.values() {
            report.images_checked += 1;
            if let Err(reason) = verify_image(path) {
                report.problems.push(Problem::CorruptImage {
                    path: relative(path),
                    reason,
                });
            }
        }
        for object in inv
            .objects
            .iter()
            .filter(|o| o.key.is_some() && o.links <= 1)
        {
            report.orphans.push(Orphan::Object {
                path: relative(&object.path),
                bytes: object.size,
            });
        }
        for (path, bytes) in &inv.temp {
            report.problems.push(Problem::Leftover {
                path: path.strip_prefix(&self.root).unwrap_or(path).to_path_buf(),
                bytes: *bytes,
            });
        }

        let (mut live_blobs, mut live_diff_ids) = roots.image_marks();
        for r in &roots.cache {
            live_blobs.extend(r.blobs.iter().cloned());
            live_diff_ids.extend(r.diff_ids.iter().cloned());
        }
        for (digest, bytes) in &inv.blobs {
            if !live_blobs.contains(digest) {
                report.orphans.push(Orphan::Blob {
                    digest: digest.clone(),
                    bytes: *bytes,
                });
            }
        }
        for (diff_id, (_, bytes)) in inv.snapshots.iter().chain(&inv.images) {
            if !live_diff_ids.contains(diff_id) {
                report.orphans.push(Orphan::Snapshot {
                    diff_id: diff_id.clone(),
                    bytes: *bytes,
                });
            }
        }
        Ok(report)
    }

    /// Why an image record cannot be used (empty when it can).
    fn check_image(
        &self,
        record: &[u8],
        state_of: &dyn Fn(&Digest) -> Result<(), String>,
    ) -> Vec<String> {
        let record: crate::ImageRecord = match serde_json::from_slice(record) {
            Ok(r) => r,
            Err(e) => return vec![format!("its record is unreadable: {e}")],
        };
        if let Err(e) = state_of(&record.manifest) {
            return vec![format!("manifest {e}")];
        }
        // A multi-platform image: the index, then each platform's manifest.
        match self.index(&record.manifest) {
            Err(e) => return vec![format!("manifest {} is unreadable: {e}", record.manifest)],
            Ok(Some(index)) => {
                return index
                    .manifests
                    .iter()
                    .flat_map(|entry| {
                        if let Err(e) = state_of(&entry.digest) {
                            return vec![format!("manifest {e}")];
                        }
                        self.check_manifest(&entry.digest, state_of)
                    })
                    .collect();
            }
            Ok(None) => {}
        }
        self.check_manifest(&record.manifest, state_of)
    }

    /// Why one image manifest (already checked as a blob) cannot be used.
    fn check_manifest(
        &self,
        digest: &Digest,
        state_of: &dyn Fn(&Digest) -> Result<(), String>,
    ) -> Vec<String> {
        let manifest: Manifest = match self
            .blobs
            .read(digest)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(m) => m,
            Err(e) => return vec![format!("manifest {digest} is unreadable: {e}")],
        };
        let mut reasons = Vec::new();
        match state_of(&manifest.config.digest) {
            Err(e) => reasons.push(format!("config {e}")),
            Ok(()) => {
                let config: Result<ImageConfig, String> = self
                    .blobs
                    .read(&manifest.config.digest)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
                match config {
                    Err(e) => reasons.push(format!(
                        "config {} is unreadable: {e}",
                        manifest.config.digest
                    )),
                    Ok(c) if c.rootfs.diff_ids.len() != manifest.layers.len() => {
                        reasons.push(format!(
                            "config {} lists {} diffIDs for {} layers",
                            manifest.config.digest,
                            c.rootfs.diff_ids.len(),
                            manifest.layers.len()
                        ))
                    }
                    Ok(_) => {}
                }
            }
        }
        let layers: BTreeSet<&Digest> = manifest.layers.iter().map(|l| &l.digest).collect();
        for layer in layers {
            if let Err(e) = state_of(layer) {
                reasons.push(format!("layer {e}"));
            }
        }
        reasons
    }

    /// Hash every blob in `digests` against its name, on a few threads.
    fn verify_all(&self, digests: Vec<Digest>) -> BTreeMap<Digest, BlobState> {
        let next = AtomicUsize::new(0);
        let out = Mutex::new(BTreeMap::new());
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8)
            .min(digests.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(d) = digests.get(i) else { break };
                    let state = match verify_file(&self.blobs.path(d), d) {
                        Ok(true) => BlobState::Ok,
                        Ok(false) => BlobState::Corrupt,
                        Err(e) => BlobState::Unreadable(e.to_string()),
                    };
                    if let Ok(mut out) = out.lock() {
                        out.insert(d.clone(), state);
                    }
                });
            }
        });
        out.into_inner().unwrap_or_default()
    }

    /// Drop what `report` found broken: image names and cache records first (so no record
    /// names a deleted blob), then corrupt blobs and leftovers. Returns one line per action.
    /// Unreadable blobs are left alone; orphans are left to `prune`.
    pub fn repair(&self, report: &FsckReport) -> Result<Vec<String>, StoreError> {
        if self._lock.is_none() {
            return Err(StoreError::Db(
                "repair needs the store open for writing".into(),
            ));
        }
        let mut done = Vec::new();
        let images: BTreeSet<&str> = report
            .problems
            .iter()
            .filter_map(|p| match p {
                Problem::Image { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let records: BTreeSet<&[u8; 32]> = report
            .problems
            .iter()
            .filter_map(|p| match p {
                Problem::CacheRecord { key, .. } => Some(key),
                _ => None,
            })
            .collect();
        let corrupt: Vec<&Digest> = report
            .problems
            .iter()
            .filter_map(|p| match p {
                Problem::CorruptBlob { digest } => Some(digest),
                _ => None,
            })
            .collect();
        let images_cf = self.db.cf(CF_IMAGES)?;
        let cache_cf = self.db.cf(CF_CACHE)?;
        let blobs_cf = self.db.cf(CF_BLOBS)?;
        let mut batch = WriteBatch::default();
        for name in &images {
            batch.delete_cf(images_cf, name.as_bytes());
            done.push(format!(
                "removed image name {name} (build or load it again)"
            ));
        }
        for key in &records {
            batch.delete_cf(cache_cf, key);
            batch.delete_cf(cache_cf, used_key(key));
            done.push(format!("dropped cache record {}", short_key(key)));
        }
        for digest in &corrupt {
            batch.delete_cf(blobs_cf, digest.to_string().as_bytes());
        }
        self.db.write(batch)?;
        for digest in corrupt {
            remove_tree(&self.blobs.path(digest))?;
            done.push(format!("deleted corrupt blob {digest}"));
        }
        for p in &report.problems {
            if let Problem::Leftover { path, .. } = p {
                remove_tree(&self.root.join(path))?;
                done.push(format!("removed leftover {}", path.display()));
            }
        }
        let bad_objects: Vec<&PathBuf> = report
            .problems
            .iter()
            .filter_map(|p| match p {
                Problem::CorruptObject { path, .. } => Some(path),
                _ => None,
            })
            .collect();
        if !bad_objects.is_empty() {
            done.extend(self.remove_objects_and_their_snapshots(&bad_objects)?);
        }
        for p in &report.problems {
            if let Problem::CorruptImage { path, .. } = p {
                remove_tree(&self.root.join(path))?;
                done.push(format!(
                    "deleted corrupt snapshot image {} (the next RUN writes it again)",
                    path.display()
                ));
            }
        }
        Ok(done)
    }
}

impl Store {
    /// Delete the objects at `paths` (relative to the store) and every snapshot that links one
    /// of them: a snapshot file is the object's inode, so it is as broken.
    fn remove_objects_and_their_snapshots(
        &self,
        paths: &[&PathBuf],
    ) -> Result<Vec<String>, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let mut done = Vec::new();
        let inodes: BTreeSet<(u64, u64)> = paths
            .iter()
            .filter_map(|p| std::fs::symlink_metadata(self.root.join(p)).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        let inv = self.inventory(false)?;
        for (diff_id, (dir, _)) in &inv.snapshots {
            let mut links = false;
            crate::objects::walk_files(dir, &mut |m| {
                links |= inodes.contains(&(m.dev(), m.ino()));
            });
            if links {
                remove_tree(dir)?;
                done.push(format!(
                    "removed snapshot {} (it linked a corrupt object; the next RUN unpacks it again)",
                    diff_id.hex()
                ));
            }
        }
        for path in paths {
            remove_tree(&self.root.join(path))?;
            done.push(format!(
                "deleted corrupt snapshot object {}",
                path.display()
            ));
        }
        Ok(done)
    }
}

/// Whether a snapshot image's bytes hash to its [`crate::SNAPSHOT_IMAGE_HASH_XATTR`].
fn verify_image(path: &Path) -> Result<(), String> {
    let mut buf = [0u8; 64];
    let n = rustix::fs::getxattr(path, crate::SNAPSHOT_IMAGE_HASH_XATTR, &mut buf[..])
        .map_err(|e| format!("has no readable hash xattr: {e}"))?;
    let expected = String::from_utf8_lossy(&buf[..n]).into_owned();
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let mut hasher = blake3::Hasher::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| format!("cannot be read: {e}"))?;
    let actual = hasher.finalize().to_hex();
    if actual.as_str() != expected {
        return Err(format!(
            "its bytes hash to {actual}, its hash xattr says {expected}"
        ));
    }
    Ok(())
}

/// Every object whose content or metadata does not hash to its name, with the reason; on a
/// few threads, as blobs are.
fn verify_objects(
    objects: &[crate::objects::ObjectFile],
) -> Vec<(&crate::objects::ObjectFile, String)> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let results = crate::parallel::map_ordered(
        objects,
        workers,
        |_| false,
        |object| {
            let Some((key, _)) = &object.key else {
                return Some("its name is no object key".to_string());
            };
            match crate::objects::verify_object(&object.path, key) {
                Ok(true) => None,
                Ok(false) => Some("its bytes or metadata do not match its name".to_string()),
                Err(e) => Some(format!("cannot be read: {e}")),
            }
        },
    );
    objects
        .iter()
        .zip(results)
        .filter_map(|(o, r)| r.map(|r| (o, r)))
        .collect()
}

/// Leftovers of interrupted writes (`tmp/*`, `snapshots/.unpack-*`; relative to the store,
/// with sizes). Opening a store for writing removes them, so `fsck --repair` and `prune` list
/// them first to report what went. Empty while another process holds the store.
pub fn temp_leftovers(root: &Path) -> Vec<(PathBuf, u64)> {
    if writer_active(root) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (dir, prefix) in [("tmp", ""), ("snapshots", UNPACK_PREFIX)] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push((Path::new(dir).join(e.file_name()), tree_size(&e.path())));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_repairs_broken_records_blobs_and_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &mut || {}).unwrap();
        let good = store.blobs().put(b"good layer").unwrap();
        let bad = store.blobs().put(b"bad layer").unwrap();
        let record = |d: &Digest| {
            format!(
                r#"{{"layers":[{{"diff_id":"{}","digest":"{d}","size":1,"media_type":"x"}}]}}"#,
                Digest::of(b"t")
            )
        };
        store.cache_put(&[1; 32], record(&good).as_bytes()).unwrap();
        store.cache_put(&[2; 32], record(&bad).as_bytes()).unwrap();
        store
            .cache_put(&[3; 32], record(&Digest::of(b"gone")).as_bytes())
            .unwrap();
        assert_eq!(store.fsck().unwrap().problems.len(), 1, "the missing blob");

        std::fs::write(store.blobs().path(&bad), b"bad layeR").unwrap();
        std::fs::write(dir.path().join("tmp/blob-x"), b"half").unwrap();
        let report = store.fsck().unwrap();
        assert!(report.leftovers_checked);
        let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(report.problems.len(), 4, "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("is corrupt")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("is missing")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("leftover tmp/blob-x")));

        let done = store.repair(&report).unwrap();
        assert_eq!(done.len(), 4, "{done:#?}");
        let after = store.fsck().unwrap();
        assert!(after.problems.is_empty(), "{:#?}", after.problems);
        assert!(store.cache_get(&[1; 32]).unwrap().is_some());
        assert!(store.cache_get(&[2; 32]).unwrap().is_none());
        assert!(!store.blobs().contains(&bad));
    }
}
