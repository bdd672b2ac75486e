//! Content-addressed blobs under `blobs/sha256/<hex>`.
//!
//! A blob is written to a temp file in `tmp/`, fsynced, checked against its expected digest and
//! renamed into place, so a crash never leaves a blob under a wrong name. Readers of small blobs
//! (manifests, configs) verify the digest on every read; exports stream big ones through
//! [`VerifiedBlob`].
//!
//! **The verified mark.** A blob's mtime is set to the epoch when it is committed (its content
//! was just hashed) or after [`BlobStore::check`] hashed it. Any write to the file moves the
//! mtime, so a blob still carrying the mark has not been written since it was verified: a
//! cache hit can trust it for the price of one `stat` instead of re-reading gigabytes, and a
//! blob without the mark is hashed before it is trusted. (Bit rot under an unchanged mtime is
//! what `seal fsck` is for.)

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use crate::{Digest, StoreError};

/// The blob directory of a store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    pub(crate) fn create(root: &Path) -> io::Result<BlobStore> {
        let dir = root.join("blobs").join("sha256");
        let tmp = root.join("tmp");
        fs::create_dir_all(&dir)?;
        fs::create_dir_all(&tmp)?;
        Ok(BlobStore { dir, tmp })
    }

    /// The blob directory of an existing store, created by nobody (read-only views).
    pub(crate) fn existing(root: &Path) -> BlobStore {
        BlobStore {
            dir: root.join("blobs").join("sha256"),
            tmp: root.join("tmp"),
        }
    }

    /// The store's scratch directory (same filesystem as the blobs; emptied at open).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Where the blob lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// True when the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Size in bytes of a present blob.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.path(digest)).ok().map(|m| m.len())
    }

    /// Start writing a new blob.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.tmp)
            .map_err(|e| StoreError::io("creating a temporary blob", &self.tmp, e))?;
        Ok(BlobWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            size: 0,
            written_back: 0,
            dir: self.dir.clone(),
        })
    }

    /// Store `bytes` and return their digest (a no-op when present with the verified mark).
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if fs::metadata(self.path(&digest))
            .is_ok_and(|m| m.len() == bytes.len() as u64 && is_marked(&m))
        {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(bytes)
            .map_err(|e| StoreError::io("writing a blob", &self.tmp, e))?;
        w.commit(Some(&digest))?;
        Ok(digest)
    }

    /// Read a whole (small) blob and verify its digest.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.path(digest);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(digest.clone()),
            _ => StoreError::io("reading a blob", &path, e),
        })?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(StoreError::CorruptBlob {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Open a blob for streaming (the caller verifies if it needs to).
    pub fn open(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(digest.clone()),
            _ => StoreError::io("opening a blob", &path, e),
        })
    }

    /// Open a blob for streaming out of the store, verified as it is read: reading it to the
    /// end fails (an [`io::Error`] wrapping [`StoreError::CorruptBlob`]) when its bytes do not
    /// hash to `digest` or are not `size` long. [`VerifiedBlob::finish`] reads what a consumer
    /// left and says the same.
    pub fn open_verified(&self, digest: &Digest, size: u64) -> Result<VerifiedBlob, StoreError> {
        Ok(VerifiedBlob {
            file: self.open(digest)?,
            expected: digest.clone(),
            size,
            read: 0,
            hasher: Sha256::new(),
            verdict: None,
        })
    }

    /// Make sure a blob is present and uncorrupted: free when it carries the verified mark
    /// (see the module doc) and has `size` bytes (when given), else hashed, and marked when it
    /// is good (best effort: a read-only store stays unmarked and is hashed again next time).
    pub fn check(&self, digest: &Digest, size: Option<u64>) -> Result<(), StoreError> {
        let path = self.path(digest);
        let meta = fs::metadata(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(digest.clone()),
            _ => StoreError::io("reading the metadata of a blob", &path, e),
        })?;
        let size_ok = size.is_none_or(|s| s == meta.len());
        if size_ok && is_marked(&meta) {
            return Ok(());
        }
        let actual = hash_file(&path)?;
        if &actual != digest || !size_ok {
            return Err(StoreError::CorruptBlob {
                expected: digest.clone(),
                actual,
            });
        }
        if let Ok(file) = File::open(&path) {
            let _ = file.set_modified(SystemTime::UNIX_EPOCH);
        }
        Ok(())
    }

    /// Every blob digest present (for listings and GC).
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        let entries =
            fs::read_dir(&self.dir).map_err(|e| StoreError::io("listing blobs", &self.dir, e))?;
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str() {
                if let Ok(d) = format!("sha256:{name}").parse() {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove leftovers of killed processes from `tmp/`.
    pub(crate) fn clean_tmp(&self) {
        if let Ok(entries) = fs::read_dir(&self.tmp) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    let _ = fs::remove_dir_all(&path);
                } else {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }
}

/// A blob being written: hashes as it goes, lands under its digest on [`BlobWriter::commit`].
/// Dropping it without committing deletes the temp file.
pub struct BlobWriter {
    out: BufWriter<tempfile::NamedTempFile>,
    hasher: Sha256,
    size: u64,
    /// Bytes handed to the kernel's writeback so far (see [`WRITEBACK_CHUNK`]).
    written_back: u64,
    dir: PathBuf,
}

/// A big blob's pages are handed to writeback every this many bytes while it is written, so
/// the disk works while seal hashes and compresses, and the fsync at commit only waits for
/// the tail (a 1 GiB layer's fsync otherwise waits for all of it at once).
const WRITEBACK_CHUNK: u64 = 8 << 20;

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flush, fsync, verify against `expected` (when given) and rename into place.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64), StoreError> {
        let BlobWriter {
            out,
            hasher,
            size,
            dir,
            ..
        } = self;
        let digest = Digest::from_sha256(hasher.finalize().into());
        if let Some(expected) = expected {
            if expected != &digest {
                return Err(StoreError::CorruptBlob {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let file = out
            .into_inner()
            .map_err(|e| StoreError::io("flushing a blob", &dir, e.into_error()))?;
        let target = dir.join(digest.hex());
        // A present blob with the verified mark stays; one without it may be the corrupt copy
        // a re-run step is writing again, and is replaced by these verified bytes.
        if fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() == size && is_marked(&m)) {
            return Ok((digest, size));
        }
        // Best effort: without the mark the blob is only hashed again before it is trusted.
        let _ = file.as_file().set_modified(SystemTime::UNIX_EPOCH);
        file.as_file()
            .sync_all()
            .map_err(|e| StoreError::io("syncing a blob", file.path(), e))?;
        file.persist(&target)
            .map_err(|e| StoreError::io("renaming a blob into place", &target, e.error))?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        let on_disk = self.size - self.out.buffer().len() as u64;
        if on_disk - self.written_back >= WRITEBACK_CHUNK {
            start_writeback(self.out.get_ref().as_file(), self.written_back, on_disk);
            self.written_back = on_disk;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Start asynchronous writeback of `file`'s bytes `start..end` (`sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`): nothing waits, the pages stay cached for whoever reads the blob
/// next (a RUN unpacking it, say). Best effort: the fsync at commit is what makes the blob
/// durable.
fn start_writeback(file: &File, start: u64, end: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(start), i64::try_from(end - start)) else {
        return;
    };
    // SAFETY: the fd is open for the whole call (borrowed from `file`); sync_file_range only
    // reads its integer arguments and touches no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// A blob being read out of the store, hashed as it goes (see [`BlobStore::open_verified`]).
pub struct VerifiedBlob {
    file: File,
    expected: Digest,
    size: u64,
    read: u64,
    hasher: Sha256,
    /// Once read to the end: `Ok`, or the digest the bytes actually have.
    verdict: Option<Result<(), Digest>>,
}

impl VerifiedBlob {
    /// Read what is left and check the whole blob (also after a consumer saw the error).
    pub fn finish(mut self) -> Result<(), StoreError> {
        let copied = io::copy(&mut self, &mut io::sink());
        if let Some(Err(actual)) = self.verdict.take() {
            return Err(StoreError::CorruptBlob {
                expected: self.expected,
                actual,
            });
        }
        copied.map_err(|e| {
            StoreError::from_io(
                "reading a blob",
                &PathBuf::from(self.expected.to_string()),
                e,
            )
        })?;
        Ok(())
    }

    fn corrupt(&self, actual: Digest) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            StoreError::CorruptBlob {
                expected: self.expected.clone(),
                actual,
            },
        )
    }
}

impl Read for VerifiedBlob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.verdict {
            Some(Ok(())) => return Ok(0),
            Some(Err(actual)) => return Err(self.corrupt(actual.clone())),
            None => {}
        }
        let n = self.file.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if n == 0 || self.read > self.size {
            let actual = Digest::from_sha256(std::mem::take(&mut self.hasher).finalize().into());
            if actual != self.expected || self.read != self.size {
                self.verdict = Some(Err(actual.clone()));
                return Err(self.corrupt(actual));
            }
            self.verdict = Some(Ok(()));
        }
        Ok(n)
    }
}

/// True when a blob carries the verified mark (mtime at the epoch).
fn is_marked(meta: &fs::Metadata) -> bool {
    meta.modified().is_ok_and(|t| t == SystemTime::UNIX_EPOCH)
}

/// Verify a blob by streaming it (for big layers and fsck).
pub fn verify_file(path: &Path, expected: &Digest) -> Result<bool, StoreError> {
    Ok(&hash_file(path)? == expected)
}

/// The sha256 digest of a file's content, streamed.
fn hash_file(path: &Path) -> Result<Digest, StoreError> {
    let mut file = File::open(path).map_err(|e| StoreError::io("opening a blob", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| StoreError::io("reading a blob", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Digest::from_sha256(hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::create(dir.path()).unwrap();
        let d = blobs.put(b"hello").unwrap();
        assert_eq!(blobs.read(&d).unwrap(), b"hello");
        assert!(verify_file(&blobs.path(&d), &d).unwrap());
        fs::write(blobs.path(&d), b"hellO").unwrap();
        assert!(matches!(
            blobs.read(&d),
            Err(StoreError::CorruptBlob { .. })
        ));
        assert!(!verify_file(&blobs.path(&d), &d).unwrap());
    }

    #[test]
    fn check_trusts_the_mark_and_a_commit_replaces_an_unmarked_corrupt_copy() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::create(dir.path()).unwrap();
        let d = blobs.put(b"hello").unwrap();
        blobs.check(&d, Some(5)).unwrap();
        // Written since it was verified: the mark is gone, the hash tells.
        fs::write(blobs.path(&d), b"hellO").unwrap();
        assert!(matches!(
            blobs.check(&d, Some(5)),
            Err(StoreError::CorruptBlob { .. })
        ));
        // Writing the same bytes again repairs it.
        let mut w = blobs.writer().unwrap();
        w.write_all(b"hello").unwrap();
        w.commit(Some(&d)).unwrap();
        assert_eq!(fs::read(blobs.path(&d)).unwrap(), b"hello");
        blobs.check(&d, Some(5)).unwrap();
        // A good blob without the mark is hashed once, then marked.
        let file = File::options().write(true).open(blobs.path(&d)).unwrap();
        file.set_modified(SystemTime::now()).unwrap();
        blobs.check(&d, None).unwrap();
        assert!(is_marked(&fs::metadata(blobs.path(&d)).unwrap()));
        // A wrong size is corruption even under the mark.
        assert!(matches!(
            blobs.check(&d, Some(6)),
            Err(StoreError::CorruptBlob { .. })
        ));
        fs::remove_file(blobs.path(&d)).unwrap();
        assert!(matches!(
            blobs.check(&d, None),
            Err(StoreError::MissingBlob(_))
        ));
    }

    #[test]
    fn a_verified_read_fails_on_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::create(dir.path()).unwrap();
        let d = blobs.put(b"hello").unwrap();
        let mut out = Vec::new();
        let mut good = blobs.open_verified(&d, 5).unwrap();
        good.read_to_end(&mut out).unwrap();
        good.finish().unwrap();
        fs::write(blobs.path(&d), b"hellO").unwrap();
        let mut bad = blobs.open_verified(&d, 5).unwrap();
        assert!(bad.read_to_end(&mut Vec::new()).is_err());
        let bad = blobs.open_verified(&d, 5).unwrap();
        assert!(matches!(bad.finish(), Err(StoreError::CorruptBlob { .. })));
        fs::write(blobs.path(&d), b"hello!").unwrap();
        let long = blobs.open_verified(&d, 5).unwrap();
        assert!(matches!(long.finish(), Err(StoreError::CorruptBlob { .. })));
    }

    #[test]
    fn a_writer_with_the_wrong_digest_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::create(dir.path()).unwrap();
        let mut w = blobs.writer().unwrap();
        w.write_all(b"abc").unwrap();
        let wrong = Digest::of(b"abd");
        assert!(w.commit(Some(&wrong)).is_err());
        assert!(blobs.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
