//! `seal du`: the store's space by kind, classified with the same marks `prune` uses.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::gc::{tree_size, Amount};
use crate::{Digest, Store, StoreError};

/// The store's disk usage by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Image names.
    pub images: u64,
    /// Cache records.
    pub cache_records: u64,
    /// Blobs reachable from image names (manifests, configs, layers).
    pub image_blobs: Amount,
    /// Blobs reachable only from cache records (`prune --all` frees them).
    pub cache_blobs: Amount,
    /// Blobs reachable from nothing (`prune` frees them).
    pub unreferenced_blobs: Amount,
    /// Unpacked layers under `snapshots/`.
    pub snapshots: Amount,
    /// The part of `snapshots` no reachable layer needs (`prune` frees it).
    pub unreferenced_snapshots: Amount,
    /// Blobs known by a cache import and not downloaded: on no disk, so not in the total.
    pub remote_blobs: Amount,
    /// Snapshot objects: each regular file of the snapshots once (`snapshots/objects/`).
    pub objects: Amount,
    /// Leftovers of interrupted writes (`prune` frees them; not counted while a build runs).
    pub temp: Amount,
    /// The RocksDB directory (count: files).
    pub metadata: Amount,
    /// What a plain `seal prune` would free, in bytes.
    pub reclaimable: u64,
    /// Images that could not be followed completely (see `seal fsck`).
    pub damaged_images: Vec<String>,
}

impl Usage {
    /// Every byte counted.
    pub fn total_bytes(&self) -> u64 {
        self.image_blobs.bytes
            + self.cache_blobs.bytes
            + self.unreferenced_blobs.bytes
            + self.snapshots.bytes
            + self.objects.bytes
            + self.temp.bytes
            + self.metadata.bytes
    }
}

impl Store {
    /// Classify every blob and snapshot by what reaches it.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let roots = self.roots()?;
        let inv = self.inventory(self.leftovers_visible())?;
        let (image_blobs, image_diff_ids) = roots.image_marks();
        let mut cache_blobs: BTreeSet<&Digest> = BTreeSet::new();
        let mut cache_diff_ids: BTreeSet<&Digest> = BTreeSet::new();
        for r in &roots.cache {
            cache_blobs.extend(&r.blobs);
            cache_diff_ids.extend(&r.diff_ids);
        }
        let mut usage = Usage {
            images: roots.images.len() as u64,
            cache_records: roots.cache.len() as u64,
            damaged_images: roots
                .images
                .iter()
                .filter_map(|i| i.damage.as_ref().map(|d| format!("{}: {d}", i.name)))
                .collect(),
            ..Usage::default()
        };
        for (digest, size) in &inv.blobs {
            if image_blobs.contains(digest) {
                usage.image_blobs.add(*size);
            } else if cache_blobs.contains(digest) {
                usage.cache_blobs.add(*size);
            } else {
                usage.unreferenced_blobs.add(*size);
            }
        }
        for (diff_id, (_, size)) in inv.snapshots.iter().chain(&inv.images) {
            usage.snapshots.add(*size);
            if !image_diff_ids.contains(diff_id) && !cache_diff_ids.contains(diff_id) {
                usage.unreferenced_snapshots.add(*size);
            }
        }
        for (_, size) in &inv.temp {
            usage.temp.add(*size);
        }
        for (_, blob) in self.remote_blobs()? {
            usage.remote_blobs.add(blob.size);
        }
        let unreferenced: Vec<&Path> = inv
            .snapshots
            .iter()
            .filter(|(d, _)| !image_diff_ids.contains(*d) && !cache_diff_ids.contains(*d))
            .map(|(_, (path, _))| path.as_path())
            .collect();
        let dead_objects: u64 = crate::objects::dead_objects(&inv.objects, &unreferenced)
            .iter()
            .map(|o| o.size)
            .sum();
        for object in &inv.objects {
            usage.objects.add(object.size);
        }
        usage.metadata = dir_files(&self.root.join("db"));
        usage.reclaimable = usage.unreferenced_blobs.bytes
            + usage.unreferenced_snapshots.bytes
            + dead_objects
            + usage.temp.bytes;
        Ok(usage)
    }
}

/// Files and bytes of a flat directory (RocksDB keeps no subdirectories).
fn dir_files(dir: &Path) -> Amount {
    let mut amount = Amount::default();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            amount.add(tree_size(&entry.path()));
        }
    }
    amount
}

/// `1.5 MiB`: bytes in binary units with one decimal (`695 B` below 1 KiB), as `seal images`,
/// `du`, `load` and build progress print sizes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn human_sizes() {
        assert_eq!(super::human_size(695), "695 B");
        assert_eq!(super::human_size(1536), "1.5 KiB");
        assert_eq!(super::human_size(3 << 30), "3.0 GiB");
    }
    use super::*;
    use crate::gc::PruneOptions;

    #[test]
    fn usage_agrees_with_prune() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &mut || {}).unwrap();
        let layer = store.blobs().put(b"cached layer").unwrap();
        store.blobs().put(b"garbage").unwrap();
        let record = format!(
            r#"{{"layers":[{{"diff_id":"{}","digest":"{layer}","size":12,"media_type":"x"}}]}}"#,
            Digest::of(b"tar")
        );
        store.cache_put(&[1; 32], record.as_bytes()).unwrap();
        let before = store.usage().unwrap();
        assert_eq!(before.cache_records, 1);
        assert_eq!(
            before.cache_blobs,
            Amount {
                count: 1,
                bytes: 12
            }
        );
        assert_eq!(before.unreferenced_blobs, Amount { count: 1, bytes: 7 });
        assert_eq!(before.reclaimable, 7);
        let pruned = store.prune(&PruneOptions::default()).unwrap();
        assert_eq!(pruned.total_bytes(), before.reclaimable);
        let after = store.usage().unwrap();
        assert_eq!(after.unreferenced_blobs, Amount::default());
        assert_eq!(after.cache_blobs, before.cache_blobs);
    }
}
