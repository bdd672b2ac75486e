//! Reading the input: a tar file indexed in one pass (never extracted) and read in place, or a
//! layout directory; a compressed archive or a pipe is spooled into `tmp/` first.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{clean_path, invalid, Compression, LoadError, MAX_DOCUMENT};
use crate::StoreError;

/// The most entries an archive may have.
const MAX_ENTRIES: usize = 1 << 20;

/// One entry of an indexed tar.
#[derive(Debug, Clone, Copy)]
enum TarEntry {
    File {
        offset: u64,
        size: u64,
    },
    Dir,
    /// Anything that is neither (its kind, for the error if something names it).
    Other(&'static str),
}

/// Where an image is read from.
pub(crate) struct Source {
    kind: SourceKind,
    /// A spooled (decompressed or piped) copy, removed on drop.
    _spool: Option<tempfile::NamedTempFile>,
}

enum SourceKind {
    Tar {
        file: File,
        entries: BTreeMap<String, TarEntry>,
    },
    Dir {
        root: PathBuf,
    },
}

impl Source {
    /// Open `input`: a directory (an OCI layout), `-` (stdin), or a tar file, possibly gzip or
    /// zstd compressed.
    pub(crate) fn open(input: &Path, tmp_dir: &Path) -> Result<Source, LoadError> {
        let io_err = |what: &'static str| move |e: io::Error| StoreError::io(what, input, e);
        if input == Path::new("-") {
            let stdin = io::stdin();
            let (file, spool) = spool(stdin.lock(), tmp_dir)?;
            return Source::tar(file, Some(spool));
        }
        let meta = std::fs::metadata(input).map_err(io_err("reading"))?;
        if meta.is_dir() {
            return Ok(Source {
                kind: SourceKind::Dir {
                    root: input.to_path_buf(),
                },
                _spool: None,
            });
        }
        let file = File::open(input).map_err(io_err("opening"))?;
        if !meta.is_file() {
            let (file, spool) = spool(file, tmp_dir)?;
            return Source::tar(file, Some(spool));
        }
        let mut head = [0u8; 4];
        let n = file.read_at(&mut head, 0).map_err(io_err("reading"))?;
        if Compression::of_magic(&head[..n]) != Compression::None {
            let (file, spool) = spool(file, tmp_dir)?;
            return Source::tar(file, Some(spool));
        }
        Source::tar(file, None)
    }

    fn tar(file: File, spool: Option<tempfile::NamedTempFile>) -> Result<Source, LoadError> {
        let entries = scan_tar(&file)?;
        Ok(Source {
            kind: SourceKind::Tar { file, entries },
            _spool: spool,
        })
    }

    /// The size of the regular file at `rel`; `None` when there is none; an error when `rel`
    /// is a link or another special file (never followed).
    pub(crate) fn lookup(&self, rel: &str) -> Result<Option<u64>, LoadError> {
        match &self.kind {
            SourceKind::Tar { entries, .. } => match entries.get(rel) {
                None | Some(TarEntry::Dir) => Ok(None),
                Some(TarEntry::File { size, .. }) => Ok(Some(*size)),
                Some(TarEntry::Other(kind)) => Err(invalid(format!(
                    "`{rel}` is a {kind} in the archive; refusing to follow it"
                ))),
            },
            SourceKind::Dir { root } => {
                let mut path = root.clone();
                let parts: Vec<&str> = rel.split('/').collect();
                for (i, part) in parts.iter().enumerate() {
                    path.push(part);
                    let meta = match std::fs::symlink_metadata(&path) {
                        Ok(m) => m,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                        Err(e) => return Err(StoreError::io("reading", &path, e).into()),
                    };
                    let last = i + 1 == parts.len();
                    let ft = meta.file_type();
                    if ft.is_symlink() {
                        return Err(invalid(format!(
                            "`{rel}` goes through a symbolic link in the layout; refusing to \
                             follow it"
                        )));
                    }
                    if !last && !ft.is_dir() {
                        return Ok(None);
                    }
                    if last {
                        if ft.is_dir() {
                            return Ok(None);
                        }
                        if !ft.is_file() {
                            return Err(invalid(format!(
                                "`{rel}` is not a regular file in the layout"
                            )));
                        }
                        return Ok(Some(meta.len()));
                    }
                }
                Ok(None)
            }
        }
    }

    /// Open the regular file at `rel` (which [`Source::lookup`] found, with `size` bytes). The
    /// reader yields exactly `size` bytes or fails with "truncated".
    pub(crate) fn open_file(&self, rel: &str, size: u64) -> Result<Box<dyn Read + '_>, LoadError> {
        match &self.kind {
            SourceKind::Tar { file, entries } => match entries.get(rel) {
                Some(TarEntry::File { offset, size }) => Ok(Box::new(At {
                    file,
                    pos: *offset,
                    end: offset + size,
                })),
                _ => Err(invalid(format!("`{rel}` is missing from the archive"))),
            },
            SourceKind::Dir { root } => {
                let path = root.join(rel);
                let file = File::open(&path).map_err(|e| StoreError::io("opening", &path, e))?;
                Ok(Box::new(At {
                    file,
                    pos: 0,
                    end: size,
                }))
            }
        }
    }

    /// Read a (small) JSON document whole.
    pub(crate) fn document(&self, rel: &str, what: &str) -> Result<Vec<u8>, LoadError> {
        let size = self
            .lookup(rel)?
            .ok_or_else(|| invalid(format!("{what} `{rel}` is missing")))?;
        if size > MAX_DOCUMENT {
            return Err(invalid(format!(
                "{what} `{rel}` is {size} bytes, more than the {MAX_DOCUMENT} a JSON document may have"
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        self.open_file(rel, size)?
            .read_to_end(&mut bytes)
            .map_err(|e| invalid(format!("reading {what} `{rel}`: {e}")))?;
        Ok(bytes)
    }
}

/// Copy a stream into a temp file in `tmp_dir`, decompressing gzip or zstd.
fn spool(reader: impl Read, tmp_dir: &Path) -> Result<(File, tempfile::NamedTempFile), LoadError> {
    let mut tmp = tempfile::Builder::new()
        .prefix("load-")
        .tempfile_in(tmp_dir)
        .map_err(|e| StoreError::io("creating a temporary file", tmp_dir, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let head = reader
        .fill_buf()
        .map_err(|e| invalid(format!("reading the input: {e}")))?;
    let compression = Compression::of_magic(head);
    let mut decoded = compression
        .decoder(reader)
        .map_err(|e| invalid(format!("reading the input: {e}")))?;
    io::copy(&mut decoded, tmp.as_file_mut()).map_err(|e| {
        invalid(format!(
            "reading the input ({compression:?} compression): {e}"
        ))
    })?;
    let file = tmp
        .reopen()
        .map_err(|e| StoreError::io("reopening", tmp.path(), e))?;
    Ok((file, tmp))
}

/// Index every entry of a tar without reading file data.
fn scan_tar(file: &File) -> Result<BTreeMap<String, TarEntry>, LoadError> {
    let len = file
        .metadata()
        .map_err(|e| invalid(format!("reading the archive: {e}")))?
        .len();
    let not_tar = |e: io::Error| invalid(format!("not a valid tar archive: {e}"));
    let mut archive = tar::Archive::new(file);
    let mut entries = BTreeMap::new();
    for entry in archive.entries_with_seek().map_err(not_tar)? {
        let entry = entry.map_err(not_tar)?;
        if entries.len() >= MAX_ENTRIES {
            return Err(invalid(format!(
                "the archive has more than {MAX_ENTRIES} entries"
            )));
        }
        let raw = entry.path_bytes();
        let name = std::str::from_utf8(&raw).map_err(|_| {
            invalid(format!(
                "entry `{}` is not UTF-8",
                String::from_utf8_lossy(&raw)
            ))
        })?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let path = clean_path(name).map_err(|e| invalid(format!("refusing entry {e}")))?;
        let record = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                let offset = entry.raw_file_position();
                if offset.checked_add(size).is_none_or(|end| end > len) {
                    return Err(invalid(format!(
                        "entry `{name}` declares {size} bytes, past the end of the archive \
                         ({len} bytes): truncated or corrupt"
                    )));
                }
                if path.is_empty() {
                    return Err(invalid("a file entry has an empty name"));
                }
                TarEntry::File { offset, size }
            }
            tar::EntryType::Directory => TarEntry::Dir,
            tar::EntryType::Symlink => TarEntry::Other("symbolic link"),
            tar::EntryType::Link => TarEntry::Other("hard link"),
            tar::EntryType::Char | tar::EntryType::Block => TarEntry::Other("device"),
            tar::EntryType::Fifo => TarEntry::Other("fifo"),
            _ => TarEntry::Other("special entry"),
        };
        match (entries.get(&path), record) {
            (None, _) => {
                entries.insert(path, record);
            }
            (Some(TarEntry::Dir), TarEntry::Dir) => {}
            _ => return Err(invalid(format!("`{path}` appears twice in the archive"))),
        }
    }
    Ok(entries)
}

/// A reader of `file[pos..end]` by `pread`, failing when the file ends early.
struct At<F> {
    file: F,
    pos: u64,
    end: u64,
}

impl<F: Borrow<File>> Read for At<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.borrow().read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the input is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}
