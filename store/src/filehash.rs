//! The file-hash cache: (dev, inode, size, mtime, ctime) of a path -> blake3 of its bytes.
//!
//! A no-op rebuild stats the context and reads no file content: every file whose stat tuple
//! matches its entry reuses the stored hash. The "racy git" rule keeps that honest: an entry
//! whose file was modified close to (or after) the moment the entry was hashed is not trusted,
//! because a same-size rewrite within the filesystem's timestamp granularity would leave the
//! tuple unchanged. Such files are hashed again until an entry is recorded well after their
//! last modification.

use std::path::Path;

/// How close (in nanoseconds) a modification may be to the hashing moment before the entry is
/// distrusted. Generous on purpose: kernel timestamps come from a coarse clock.
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// The stat fields that identify a file's content version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileStat {
    /// The stat tuple of `meta`.
    pub fn of(meta: &std::fs::Metadata) -> FileStat {
        use std::os::unix::fs::MetadataExt;
        FileStat {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }
}

/// A stored file hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHashEntry {
    pub stat: FileStat,
    /// When the hashing scan started (nanoseconds since the epoch).
    pub hashed_at_ns: i128,
    pub blake3: [u8; 32],
}

const ENCODED_LEN: usize = 8 * 3 + 16 * 3 + 32;

impl FileHashEntry {
    /// The stored hash, if it can be trusted for a file whose stat is now `stat`.
    pub fn hash_if_valid(&self, stat: &FileStat) -> Option<[u8; 32]> {
        let racy = stat.mtime_ns.max(stat.ctime_ns) + RACY_WINDOW_NS >= self.hashed_at_ns;
        (self.stat == *stat && !racy).then_some(self.blake3)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(ENCODED_LEN);
        v.extend_from_slice(&self.stat.dev.to_le_bytes());
        v.extend_from_slice(&self.stat.ino.to_le_bytes());
        v.extend_from_slice(&self.stat.size.to_le_bytes());
        v.extend_from_slice(&self.stat.mtime_ns.to_le_bytes());
        v.extend_from_slice(&self.stat.ctime_ns.to_le_bytes());
        v.extend_from_slice(&self.hashed_at_ns.to_le_bytes());
        v.extend_from_slice(&self.blake3);
        v
    }

    pub(crate) fn decode(v: &[u8]) -> Option<FileHashEntry> {
        if v.len() != ENCODED_LEN {
            return None;
        }
        let u64_at = |i: usize| {
            v.get(i..i + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let i128_at = |i: usize| {
            v.get(i..i + 16)
                .and_then(|s| s.try_into().ok())
                .map(i128::from_le_bytes)
        };
        Some(FileHashEntry {
            stat: FileStat {
                dev: u64_at(0)?,
                ino: u64_at(8)?,
                size: u64_at(16)?,
                mtime_ns: i128_at(24)?,
                ctime_ns: i128_at(40)?,
            },
            hashed_at_ns: i128_at(56)?,
            blake3: v.get(72..104)?.try_into().ok()?,
        })
    }
}

/// The key of a path in the `filehash` column family.
pub(crate) fn key(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

/// File hashes recorded without opening the writable database: a build whose only writes are a
/// few re-hashed files (a `touch`) appends them here instead of paying RocksDB's writable open
/// and flush. Entries here are always newer than the database's: lookups prefer them, and the
/// next write of file hashes to the database folds the whole log into the same batch first.
/// Records are `u32 LE key length, key, value` (values have a fixed length); a torn last
/// record (a crash mid-append) is ignored.
pub(crate) const LOG: &str = "filehash.log";
/// At most this many entries per build go to the log; more go to the database.
pub(crate) const LOG_MAX_BATCH: usize = 256;
/// Past this size the log is folded into the database.
pub(crate) const LOG_FOLD_SIZE: u64 = 1 << 20;

pub(crate) fn append_log(path: &Path, entries: &[(Vec<u8>, Vec<u8>)]) -> std::io::Result<()> {
    use std::io::Write;
    let mut bytes = Vec::new();
    for (k, v) in entries {
        bytes.extend_from_slice(&(k.len() as u32).to_le_bytes());
        bytes.extend_from_slice(k);
        bytes.extend_from_slice(v);
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&bytes)
}

/// The log's entries, later ones winning (empty when there is no log).
pub(crate) fn read_log(path: &Path) -> std::collections::HashMap<Vec<u8>, Vec<u8>> {
    let mut out = std::collections::HashMap::new();
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut rest = bytes.as_slice();
    while rest.len() >= 4 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(record) = rest.get(4..4 + len + ENCODED_LEN) else {
            break;
        };
        let (key, value) = record.split_at(len);
        out.insert(key.to_vec(), value.to_vec());
        rest = &rest[4 + len + ENCODED_LEN..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mtime_s: i128) -> FileStat {
        FileStat {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: mtime_s * 1_000_000_000,
            ctime_ns: mtime_s * 1_000_000_000,
        }
    }

    #[test]
    fn the_log_keeps_the_latest_entry_and_ignores_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(LOG);
        let entry = |b: u8| {
            FileHashEntry {
                stat: FileStat {
                    dev: 1,
                    ino: 2,
                    size: 3,
                    mtime_ns: 4,
                    ctime_ns: 5,
                },
                hashed_at_ns: 6,
                blake3: [b; 32],
            }
            .encode()
        };
        append_log(
            &log,
            &[(b"/a".to_vec(), entry(1)), (b"/b".to_vec(), entry(2))],
        )
        .unwrap();
        append_log(&log, &[(b"/a".to_vec(), entry(3))]).unwrap();
        // A crash mid-append leaves a partial record.
        let mut torn = std::fs::read(&log).unwrap();
        torn.extend_from_slice(&[2, 0, 0, 0, b'/', b'c', 9]);
        std::fs::write(&log, torn).unwrap();
        let read = read_log(&log);
        assert_eq!(read.len(), 2);
        assert_eq!(read[b"/a".as_slice()], entry(3));
        assert_eq!(read[b"/b".as_slice()], entry(2));
        assert!(read_log(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn round_trip() {
        let e = FileHashEntry {
            stat: stat(5),
            hashed_at_ns: 99,
            blake3: [7; 32],
        };
        assert_eq!(FileHashEntry::decode(&e.encode()), Some(e));
        assert_eq!(FileHashEntry::decode(&[1, 2, 3]), None);
    }

    #[test]
    fn racy_entries_are_not_trusted() {
        let hashed_at = 100 * 1_000_000_000;
        let old = FileHashEntry {
            stat: stat(10),
            hashed_at_ns: hashed_at,
            blake3: [1; 32],
        };
        assert_eq!(old.hash_if_valid(&stat(10)), Some([1; 32]));
        // Modified in the same second the scan started: a same-size rewrite could hide here.
        let racy = FileHashEntry {
            stat: stat(100),
            hashed_at_ns: hashed_at,
            blake3: [1; 32],
        };
        assert_eq!(racy.hash_if_valid(&stat(100)), None);
        // Any change of the tuple invalidates.
        let mut other = stat(10);
        other.ctime_ns += 1;
        assert_eq!(old.hash_if_valid(&other), None);
    }
}
