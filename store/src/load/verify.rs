//! Verified copying into the store: every blob committed only under its digest, every layer's
//! uncompressed stream checked against its diffID before anything is stored.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};

use sha2::{Digest as _, Sha256};

use super::source::Source;
use super::{invalid, Compression, LoadError};
use crate::{BlobWriter, Digest, Store, StoreError};

/// One load in progress: what it copied so far.
pub(crate) struct Import<'a> {
    pub(crate) store: &'a Store,
    pub(crate) source: &'a Source,
    /// Layers already copied, by (path, compression): digest, size, diffID.
    layers: BTreeMap<(String, Compression), (Digest, u64, Digest)>,
    /// Every blob this load stored or found, for the LRU records.
    pub(super) touched: BTreeMap<Digest, u64>,
}

impl<'a> Import<'a> {
    pub(super) fn new(store: &'a Store, source: &'a Source) -> Import<'a> {
        Import {
            store,
            source,
            layers: BTreeMap::new(),
            touched: BTreeMap::new(),
        }
    }

    /// Commit a written blob, checking it against `expected` (naming `what` when it differs).
    fn commit(
        &mut self,
        writer: BlobWriter,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64), LoadError> {
        let (digest, size) = writer.commit(expected).map_err(|e| match e {
            StoreError::CorruptBlob { expected, actual } => invalid(format!(
                "{what}: the content does not match its digest {expected} (it hashes to \
                 {actual}); refusing it"
            )),
            other => other.into(),
        })?;
        self.touched.insert(digest.clone(), size);
        Ok((digest, size))
    }

    /// Store a small document already read and verified by the caller.
    pub(crate) fn put_document(&mut self, bytes: &[u8], what: &str) -> Result<Digest, LoadError> {
        let digest = Digest::of(bytes);
        let mut w = self.store.blobs().writer()?;
        w.write_all(bytes)
            .map_err(|e| StoreError::io("writing a blob", self.store.blobs().tmp_dir(), e))?;
        Ok(self.commit(w, Some(&digest), what)?.0)
    }

    /// Stream the file at `rel` into the store as a layer: its digest checked against
    /// `expected` (when known), its decompressed stream hashed and checked against the diffID
    /// `want` (before anything is stored). `compression` `None` sniffs it from the magic
    /// bytes. Returns (digest, size, compression).
    pub(crate) fn copy_layer(
        &mut self,
        rel: &str,
        expected: Option<&Digest>,
        declared_size: Option<u64>,
        compression: Option<Compression>,
        want: &Digest,
        what: &str,
    ) -> Result<(Digest, u64, Compression), LoadError> {
        let check = |diff_id: &Digest| {
            if diff_id == want {
                Ok(())
            } else {
                Err(invalid(format!(
                    "{what}: its uncompressed content hashes to {diff_id}, but the config says \
                     diffID {want}; refusing it"
                )))
            }
        };
        let size = self
            .source
            .lookup(rel)?
            .ok_or_else(|| invalid(format!("{what} is missing from the archive (`{rel}`)")))?;
        if let Some(declared) = declared_size {
            if declared != size {
                return Err(invalid(format!(
                    "{what}: the archive holds {size} bytes at `{rel}`, its descriptor says {declared}"
                )));
            }
        }
        let mut raw = BufReader::with_capacity(1 << 18, self.source.open_file(rel, size)?);
        let mut head = Vec::with_capacity(8);
        (&mut raw)
            .take(8)
            .read_to_end(&mut head)
            .map_err(|e| invalid(format!("{what} (`{rel}`): {e}")))?;
        let compression = compression.unwrap_or_else(|| Compression::of_magic(&head));
        if let Some(hit) = self.layers.get(&(rel.to_string(), compression)) {
            let (d, s, diff) = hit.clone();
            check(&diff)?;
            return Ok((d, s, compression));
        }
        let mut writer = self.store.blobs().writer()?;
        let mut diff = HashSink(Sha256::new());
        let mut input = io::Cursor::new(head).chain(raw);
        let result = {
            let mut tee = Tee {
                inner: &mut input,
                out: &mut writer,
                write_error: None,
            };
            let decoded = (|| -> io::Result<()> {
                let mut d = compression.decoder(&mut tee)?;
                io::copy(&mut d, &mut diff)?;
                drop(d);
                // Whatever follows the compressed stream is part of the blob too.
                io::copy(&mut tee, &mut io::sink())?;
                Ok(())
            })();
            match (tee.write_error.take(), decoded) {
                (Some(e), _) => {
                    return Err(
                        StoreError::io("writing a blob", self.store.blobs().tmp_dir(), e).into(),
                    )
                }
                (None, r) => r,
            }
        };
        if let Err(e) = result {
            let how = match compression {
                Compression::None => "",
                Compression::Gzip => " (gzip)",
                Compression::Zstd => " (zstd)",
            };
            let decode_error = invalid(format!("{what} (`{rel}`){how}: {e}"));
            // A tampered blob usually fails to decompress: say that its digest is wrong when
            // it is (a blob that matches its digest is kept: it is valid, only unusable).
            if let Some(expected) = expected {
                let drained = io::copy(
                    &mut Tee {
                        inner: &mut input,
                        out: &mut writer,
                        write_error: None,
                    },
                    &mut io::sink(),
                );
                if drained.is_ok() {
                    self.commit(writer, Some(expected), what)?;
                }
            }
            return Err(decode_error);
        }
        let diff_id = Digest::from_sha256(diff.0.finalize().into());
        check(&diff_id)?;
        let (digest, size) = self.commit(writer, expected, what)?;
        self.layers.insert(
            (rel.to_string(), compression),
            (digest.clone(), size, diff_id),
        );
        Ok((digest, size, compression))
    }
}

/// Everything read through it is also written to a blob.
struct Tee<'w, R> {
    inner: R,
    out: &'w mut BlobWriter,
    write_error: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.write_error = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}

/// A writer that only hashes.
pub(crate) struct HashSink(pub(crate) Sha256);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
