//! `seal load`: importing images from OCI archives and layout directories, and from docker
//! archives (`docker save`, `skopeo copy ... docker-archive:`).
//!
//! An archive is untrusted input, and it is never extracted. One pass over the tar indexes its
//! entries (name, kind, where the data starts), refusing absolute names, names with `..`,
//! duplicate names and data that would run past the end of the file. Blobs are then read where
//! they lie (`pread`) and streamed into [`crate::BlobStore::writer`]: every blob is verified
//! against its digest before it is renamed into place, and every layer's decompressed stream
//! against its diffID (a diffID names a snapshot directory, so a lying one must never get in).
//! Links, devices and the like may sit in an archive (skopeo writes legacy `<id>/layer.tar`
//! symlinks) but are never followed: a document or blob that *is* one is refused.
//!
//! Image names are written last, after every blob of every image is stored: a failed load
//! leaves no new name, only verified blobs that nothing names (and the blob writer removes its
//! temp file). A compressed archive or a pipe is first copied (decompressed) into the store's
//! `tmp/`, which is the only place anything outside `blobs/` is written.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::oci::{
    to_canonical_json, Descriptor, ImageConfig, Manifest, MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD, MEDIA_TYPE_MANIFEST,
};
use crate::{BlobWriter, Digest, Reference, Store, StoreError};

/// The largest JSON document (index, manifest, config, manifest.json) a load reads.
pub(crate) const MAX_DOCUMENT: u64 = 16 << 20;
/// The most entries an archive may have.
const MAX_ENTRIES: usize = 1 << 20;
/// How deep indexes may nest (index.json -> image index -> manifest is depth 1).
const MAX_INDEX_DEPTH: usize = 4;

pub(crate) const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const MEDIA_TYPE_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Why a load failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The input is not a valid image archive (or is a hostile one): nothing was named.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(reason: impl Into<String>) -> LoadError {
    LoadError::Invalid(reason.into())
}

/// One image a load named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub name: Reference,
    pub manifest: Digest,
}

/// What a load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// `oci` (archive or layout directory) or `docker-archive`.
    pub format: &'static str,
    pub images: Vec<LoadedImage>,
    /// Entries that were skipped (no name), for the user to see.
    pub warnings: Vec<String>,
    /// Blobs the images consist of, and their bytes.
    pub blobs: usize,
    pub bytes: u64,
}

impl Store {
    /// Import the images of an OCI archive, an OCI layout directory or a docker archive at
    /// `input` (`-` is stdin; a gzip or zstd compressed archive is decompressed first). With
    /// `name`, the input must hold exactly one image, which gets that name (and only that
    /// one); without, every image the input names is imported under its own name.
    pub fn load(&self, input: &Path, name: Option<&Reference>) -> Result<LoadReport, LoadError> {
        let source = Source::open(input, self.blobs().tmp_dir())?;
        let mut import = Import::new(self, &source);
        let has_index = source.lookup("index.json")?.is_some();
        let has_docker = source.lookup("manifest.json")?.is_some();
        let plan = if has_index {
            match import.plan_oci(name)? {
                // A docker archive that also carries an (unnamed) OCI index: use manifest.json.
                OciPlan::Unnamed(_) if has_docker => import.plan_docker(name)?,
                OciPlan::Unnamed(reason) => return Err(invalid(reason)),
                OciPlan::Images(plan) => plan,
            }
        } else if has_docker {
            import.plan_docker(name)?
        } else {
            return Err(invalid(
                "neither an OCI archive or layout (no index.json) nor a docker archive \
                 (no manifest.json)",
            ));
        };
        let mut report = LoadReport {
            format: plan.format,
            warnings: plan.warnings.clone(),
            ..LoadReport::default()
        };
        let mut manifests: BTreeMap<Planned, Digest> = BTreeMap::new();
        for (image_name, what) in &plan.images {
            let digest = match manifests.get(what) {
                Some(d) => d.clone(),
                None => {
                    let d = match what {
                        Planned::Oci(desc) => import.oci_image(desc)?,
                        Planned::Docker(i) => import.docker_image(&plan.docker[*i])?,
                    };
                    manifests.insert(what.clone(), d.clone());
                    d
                }
            };
            report.images.push(LoadedImage {
                name: image_name.clone(),
                manifest: digest,
            });
        }
        // Records only after every blob exists.
        let touched: Vec<(Digest, u64)> = import
            .touched
            .iter()
            .map(|(d, s)| (d.clone(), *s))
            .collect();
        self.touch_blobs(&touched)?;
        for image in &report.images {
            self.set_image(&image.name, &image.manifest)?;
        }
        report.blobs = touched.len();
        report.bytes = touched.iter().map(|(_, s)| s).sum();
        Ok(report)
    }
}

/// Which images a load will import, by name.
pub(crate) struct Plan {
    pub(crate) format: &'static str,
    pub(crate) images: Vec<(Reference, Planned)>,
    pub(crate) warnings: Vec<String>,
    /// The manifest.json entries `Planned::Docker` points into.
    pub(crate) docker: Vec<crate::docker_archive::DockerEntry>,
}

/// The source of one image: a manifest descriptor of an OCI layout, or a manifest.json entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Planned {
    Oci(Desc),
    Docker(usize),
}

enum OciPlan {
    Images(Plan),
    /// index.json names no image (the reason, for the error).
    Unnamed(String),
}

/// A descriptor as found in an index (with the platform our own `Descriptor` does not keep).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Desc {
    #[serde(default)]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexDoc {
    schema_version: u32,
    #[serde(default)]
    manifests: Vec<Desc>,
}

/// Layer compression, from a media type or from magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type names (`None` for a media type that is not a layer
    /// seal can unpack).
    pub(crate) fn of_media_type(media_type: &str) -> Option<Compression> {
        if media_type.ends_with("+zstd") || media_type.ends_with(".tar.zstd") {
            Some(Compression::Zstd)
        } else if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
            Some(Compression::Gzip)
        } else if media_type.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }

    /// Sniff the first bytes of a layer.
    fn of_magic(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type.
    fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => MEDIA_TYPE_LAYER_TAR,
            Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
            Compression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
        }
    }

    /// A reader of the uncompressed stream.
    pub(crate) fn decoder<'a, R: Read + 'a>(self, raw: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(raw),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
        })
    }
}

/// Clean a path found in an archive (or named by its manifest.json): `./` and empty
/// components dropped; absolute paths and `..` refused.
pub(crate) fn clean_path(raw: &str) -> Result<String, String> {
    if raw.starts_with('/') {
        return Err(format!("`{raw}`: it is an absolute path"));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("`{raw}`: it leads outside the archive (`..`)")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The path of a blob in an OCI layout.
pub(crate) fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// `docker`/`oci` platform name of this machine's architecture.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// Sources: a tar file indexed once, or a layout directory.

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

// ---------------------------------------------------------------------------------------------
// Copying into the store.

/// One load in progress: what it copied so far.
pub(crate) struct Import<'a> {
    pub(crate) store: &'a Store,
    pub(crate) source: &'a Source,
    /// Layers already copied, by (path, compression): digest, size, diffID.
    layers: BTreeMap<(String, Compression), (Digest, u64, Digest)>,
    /// Every blob this load stored or found, for the LRU records.
    touched: BTreeMap<Digest, u64>,
}

impl<'a> Import<'a> {
    fn new(store: &'a Store, source: &'a Source) -> Import<'a> {
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

    // -----------------------------------------------------------------------------------------
    // OCI layouts.

    /// Read a blob of the layout (a small document), verifying size and digest.
    fn oci_document(&self, desc: &Desc, what: &str) -> Result<Vec<u8>, LoadError> {
        let rel = blob_path(&desc.digest);
        let size = self.source.lookup(&rel)?.ok_or_else(|| {
            invalid(format!(
                "{what} {} is missing from the archive (`{rel}`)",
                desc.digest
            ))
        })?;
        if size != desc.size {
            return Err(invalid(format!(
                "{what} {}: the archive holds {size} bytes, its descriptor says {}",
                desc.digest, desc.size
            )));
        }
        let bytes = self.source.document(&rel, what)?;
        let actual = Digest::of(&bytes);
        if actual != desc.digest {
            return Err(invalid(format!(
                "{what} {}: the content does not match its digest (it hashes to {actual}); \
                 refusing it",
                desc.digest
            )));
        }
        Ok(bytes)
    }

    /// Decide which manifests of index.json to import, under which names.
    fn plan_oci(&self, name: Option<&Reference>) -> Result<OciPlan, LoadError> {
        if let Some(size) = self.source.lookup("oci-layout")? {
            let bytes = self.source.document("oci-layout", "oci-layout")?;
            let layout: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| invalid(format!("oci-layout is not JSON: {e}")))?;
            let version = layout["imageLayoutVersion"].as_str().unwrap_or_default();
            if !version.starts_with("1.") {
                return Err(invalid(format!(
                    "oci-layout ({size} bytes) has imageLayoutVersion `{version}`, not 1.x"
                )));
            }
        }
        let bytes = self.source.document("index.json", "the index")?;
        let index: IndexDoc = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("index.json is not a valid image index: {e}")))?;
        if index.schema_version != 2 {
            return Err(invalid(format!(
                "index.json has schemaVersion {}, not 2",
                index.schema_version
            )));
        }
        if index.manifests.is_empty() {
            return Ok(OciPlan::Unnamed("index.json lists no image".into()));
        }
        let mut plan = Plan {
            format: "oci",
            images: Vec::new(),
            warnings: Vec::new(),
            docker: Vec::new(),
        };
        if let Some(name) = name {
            if index.manifests.len() != 1 {
                let list: Vec<String> = index.manifests.iter().map(describe).collect();
                return Err(invalid(format!(
                    "the archive holds {} images ({}); -t names exactly one, so load without -t",
                    index.manifests.len(),
                    list.join(", ")
                )));
            }
            let desc = self.resolve(&index.manifests[0], 0)?;
            plan.images.push((name.clone(), Planned::Oci(desc)));
            return Ok(OciPlan::Images(plan));
        }
        let mut names: BTreeMap<Reference, Digest> = BTreeMap::new();
        for entry in &index.manifests {
            let Some(image_name) = oci_name(entry)? else {
                plan.warnings.push(format!(
                    "skipping {}: it has no image name (load it alone with -t NAME)",
                    describe(entry)
                ));
                continue;
            };
            if let Some(other) = names.get(&image_name) {
                if other != &entry.digest {
                    return Err(invalid(format!(
                        "index.json names two different images {image_name}"
                    )));
                }
                continue;
            }
            names.insert(image_name.clone(), entry.digest.clone());
            let desc = self.resolve(entry, 0)?;
            plan.images.push((image_name, Planned::Oci(desc)));
        }
        if plan.images.is_empty() {
            return Ok(OciPlan::Unnamed(format!(
                "no image in index.json has a name ({ANNOTATION_CONTAINERD_NAME} or a full \
                 org.opencontainers.image.ref.name); give one with -t NAME"
            )));
        }
        Ok(OciPlan::Images(plan))
    }

    /// Follow image indexes down to the manifest for this platform.
    fn resolve(&self, desc: &Desc, depth: usize) -> Result<Desc, LoadError> {
        match desc.media_type.as_str() {
            MEDIA_TYPE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => Ok(desc.clone()),
            MEDIA_TYPE_INDEX | MEDIA_TYPE_DOCKER_LIST => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(invalid(format!(
                        "image indexes nest more than {MAX_INDEX_DEPTH} deep"
                    )));
                }
                let bytes = self.oci_document(desc, "image index")?;
                let index: IndexDoc = serde_json::from_slice(&bytes).map_err(|e| {
                    invalid(format!(
                        "image index {} is not a valid image index: {e}",
                        desc.digest
                    ))
                })?;
                let chosen = choose_platform(&index.manifests)
                    .map_err(|e| invalid(format!("image index {}: {e}", desc.digest)))?;
                self.resolve(chosen, depth + 1)
            }
            "" => Err(invalid(format!(
                "descriptor {} has no mediaType",
                desc.digest
            ))),
            other => Err(invalid(format!(
                "{} has media type `{other}`, which is not an image manifest or index",
                desc.digest
            ))),
        }
    }

    /// Copy one image (manifest, config, layers) into the store; returns the manifest digest.
    fn oci_image(&mut self, desc: &Desc) -> Result<Digest, LoadError> {
        let manifest_bytes = self.oci_document(desc, "manifest")?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            invalid(format!(
                "manifest {} is not a valid image manifest: {e}",
                desc.digest
            ))
        })?;
        if manifest.schema_version != 2 {
            return Err(invalid(format!(
                "manifest {} has schemaVersion {}, not 2",
                desc.digest, manifest.schema_version
            )));
        }
        let config_desc = desc_of(&manifest.config);
        if !matches!(
            config_desc.media_type.as_str(),
            MEDIA_TYPE_CONFIG | MEDIA_TYPE_DOCKER_CONFIG
        ) {
            return Err(invalid(format!(
                "manifest {}: config media type `{}` is not an image config (an artifact, not \
                 an image?)",
                desc.digest, config_desc.media_type
            )));
        }
        let config_bytes = self.oci_document(&config_desc, "config")?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
            invalid(format!(
                "config {} is not a valid image config: {e}",
                config_desc.digest
            ))
        })?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(invalid(format!(
                "manifest {} has {} layers but its config lists {} diffIDs",
                desc.digest,
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        for (layer, want) in manifest.layers.iter().zip(diff_ids) {
            let compression = Compression::of_media_type(&layer.media_type).ok_or_else(|| {
                invalid(format!(
                    "layer {} has media type `{}`, which seal cannot unpack",
                    layer.digest, layer.media_type
                ))
            })?;
            self.copy_layer(
                &blob_path(&layer.digest),
                Some(&layer.digest),
                Some(layer.size),
                Some(compression),
                want,
                &format!("layer {}", layer.digest),
            )?;
        }
        self.put_document(&config_bytes, &format!("config {}", config_desc.digest))?;
        self.put_document(&manifest_bytes, &format!("manifest {}", desc.digest))
    }
}

/// A descriptor of our own types, as an index descriptor.
fn desc_of(d: &Descriptor) -> Desc {
    Desc {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: d.annotations.clone(),
        platform: None,
    }
}

/// The name an index.json entry gives its image: the containerd name, else a ref.name that is
/// a whole reference (a bare tag like `v1` is not a name).
fn oci_name(desc: &Desc) -> Result<Option<Reference>, LoadError> {
    let raw = match desc.annotations.get(ANNOTATION_CONTAINERD_NAME) {
        Some(n) => n,
        None => match desc.annotations.get(crate::oci::ANNOTATION_REF_NAME) {
            Some(r) if r.contains('/') || r.contains(':') => r,
            _ => return Ok(None),
        },
    };
    Reference::parse_cluster_image(raw)
        .map(Some)
        .map_err(|e| invalid(format!("index.json: {e}")))
}

/// How an index entry is shown in messages.
fn describe(desc: &Desc) -> String {
    match desc
        .annotations
        .get(ANNOTATION_CONTAINERD_NAME)
        .or_else(|| desc.annotations.get(crate::oci::ANNOTATION_REF_NAME))
    {
        Some(n) => format!("{} ({n})", desc.digest),
        None => desc.digest.to_string(),
    }
}

/// The entry of an image index for this machine (linux and its architecture).
fn choose_platform(entries: &[Desc]) -> Result<&Desc, String> {
    if let [only] = entries {
        if only.platform.is_none() {
            return Ok(only);
        }
    }
    let arch = host_architecture();
    let matching: Vec<&Desc> = entries
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .collect();
    let preferred = matching.iter().find(|d| {
        let variant = d.platform.as_ref().and_then(|p| p.variant.as_deref());
        match arch {
            "arm64" => matches!(variant, None | Some("v8")),
            _ => variant.is_none(),
        }
    });
    match preferred.or(matching.first()) {
        Some(d) => Ok(d),
        None => {
            let available: BTreeSet<String> = entries
                .iter()
                .map(|d| match &d.platform {
                    Some(p) => match &p.variant {
                        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                        None => format!("{}/{}", p.os, p.architecture),
                    },
                    None => "unknown".into(),
                })
                .collect();
            Err(format!(
                "no manifest for linux/{arch} (it has: {})",
                available.into_iter().collect::<Vec<_>>().join(", ")
            ))
        }
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

/// The canonical bytes of an OCI manifest for `config` and `layers`.
pub(crate) fn oci_manifest(config: Descriptor, layers: Vec<Descriptor>) -> Vec<u8> {
    to_canonical_json(&Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST.into(),
        config,
        layers,
        annotations: BTreeMap::new(),
    })
}

/// An OCI layer descriptor for a blob of this compression.
pub(crate) fn layer_descriptor(compression: Compression, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: compression.oci_media_type().into(),
        digest,
        size,
        annotations: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(clean_path("./index.json").unwrap(), "index.json");
        assert_eq!(clean_path("blobs//sha256/./x").unwrap(), "blobs/sha256/x");
        assert_eq!(clean_path("./").unwrap(), "");
        assert!(clean_path("/etc/passwd").is_err());
        assert!(clean_path("../x").is_err());
        assert!(clean_path("a/../../x").is_err());
    }

    #[test]
    fn media_types_and_magic() {
        assert_eq!(
            Compression::of_media_type(MEDIA_TYPE_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::of_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::of_media_type(MEDIA_TYPE_DOCKER_LAYER_TAR),
            Some(Compression::None)
        );
        assert_eq!(Compression::of_media_type("application/json"), None);
        assert_eq!(Compression::of_magic(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::of_magic(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::of_magic(b"ustar"), Compression::None);
    }

    fn desc(arch: &str, variant: Option<&str>) -> Desc {
        Desc {
            media_type: MEDIA_TYPE_MANIFEST.into(),
            digest: Digest::of(arch.as_bytes()),
            size: 1,
            annotations: BTreeMap::new(),
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(Into::into),
            }),
        }
    }

    #[test]
    fn the_host_platform_is_chosen() {
        let host = host_architecture();
        let entries = vec![desc("s390x", None), desc(host, None), desc("riscv64", None)];
        assert_eq!(choose_platform(&entries).unwrap(), &entries[1]);
        let err = choose_platform(&entries[..1]).unwrap_err();
        assert!(err.contains("linux/s390x"), "{err}");
    }
}
