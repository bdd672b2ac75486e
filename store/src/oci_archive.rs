//! Writing an image out as an OCI archive (`oci-layout`, `index.json`, `blobs/`) in a tar file.
//!
//! The archive is deterministic (sorted entries, mtime 0). A file is written to a temp file
//! beside the target, then renamed: an interrupted save never leaves a truncated archive
//! behind. `seal save -o -` streams the same bytes to stdout.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::oci::{to_canonical_json, Descriptor, Index, ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX};
use crate::registry::Platform;
use crate::{Digest, Reference, Store, StoreError};

impl Store {
    /// Write image `name` (for `platforms`; empty: all it has) as an OCI archive at `out` (a
    /// temp file beside it, renamed into place; its mode is 0666 less the umask, as any file
    /// the user creates).
    pub fn save_oci_archive(
        &self,
        name: &Reference,
        platforms: &[Platform],
        out: &Path,
    ) -> Result<(), StoreError> {
        let tmp = archive_temp_beside(out)?;
        let mut writer = BufWriter::with_capacity(1 << 20, tmp.as_file());
        self.write_oci_archive(name, platforms, &mut writer, out)?;
        let io_err = |e: io::Error| StoreError::io("writing the archive", out, e);
        writer.flush().map_err(io_err)?;
        drop(writer);
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist(out)
            .map_err(|e| StoreError::io("renaming the archive into place", out, e.error))?;
        Ok(())
    }

    /// Stream image `name` (for `platforms`; empty: all it has) as an OCI archive into `sink`
    /// (`shown` names it in errors). A multi-platform image is its index under `index.json`'s
    /// entry, as registries and `skopeo copy --all` lay it out. Every blob is verified against
    /// its digest and size while it is copied: a corrupt blob fails the write before the
    /// end-of-archive marker, so a reader sees a truncated archive.
    pub fn write_oci_archive(
        &self,
        name: &Reference,
        platforms: &[Platform],
        sink: &mut dyn Write,
        shown: &Path,
    ) -> Result<(), StoreError> {
        let saved = self.saved_image(name, platforms)?;
        let mut annotations = BTreeMap::new();
        annotations.insert(
            ANNOTATION_REF_NAME.to_string(),
            name.tag_or_latest().to_string(),
        );
        annotations.insert("io.containerd.image.name".to_string(), name.to_string());
        let index = Index {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_INDEX.into()),
            manifests: vec![Descriptor {
                media_type: saved.top_media_type.clone(),
                digest: saved.top.clone(),
                size: saved.top_bytes.len() as u64,
                annotations,
                platform: None,
            }],
        };
        let io_err = |e: io::Error| StoreError::from_io("writing the archive", shown, e);
        let mut tar = tar::Builder::new(sink);
        append_bytes(&mut tar, "blobs/", None).map_err(io_err)?;
        append_bytes(&mut tar, "blobs/sha256/", None).map_err(io_err)?;
        // Documents (index, manifests) from memory, configs and layers streamed from the
        // store, all in digest order, each once.
        let mut entries: BTreeMap<Digest, Entry<'_>> = BTreeMap::new();
        entries.insert(saved.top.clone(), Entry::Document(&saved.top_bytes));
        for (digest, bytes, manifest) in &saved.manifests {
            entries.insert(digest.clone(), Entry::Document(bytes));
            for desc in manifest
                .layers
                .iter()
                .chain(std::iter::once(&manifest.config))
            {
                entries
                    .entry(desc.digest.clone())
                    .or_insert(Entry::Blob(desc.size));
            }
        }
        for (digest, entry) in &entries {
            let path = format!("blobs/sha256/{}", digest.hex());
            match entry {
                Entry::Document(bytes) => {
                    append_bytes(&mut tar, &path, Some(bytes)).map_err(io_err)?
                }
                Entry::Blob(size) => {
                    let mut blob = self.blobs().open_verified(digest, *size)?;
                    let mut header = header(&path, tar::EntryType::Regular, 0o644);
                    header.set_size(*size);
                    header.set_cksum();
                    tar.append(&header, &mut blob).map_err(io_err)?;
                    blob.finish()?;
                }
            }
        }
        append_bytes(&mut tar, "index.json", Some(&to_canonical_json(&index))).map_err(io_err)?;
        append_bytes(
            &mut tar,
            "oci-layout",
            Some(br#"{"imageLayoutVersion":"1.0.0"}"#),
        )
        .map_err(io_err)?;
        tar.into_inner().map_err(io_err)?.flush().map_err(io_err)?;
        Ok(())
    }
}

/// One file under `blobs/sha256/` of an archive.
enum Entry<'a> {
    /// A document already in memory.
    Document(&'a [u8]),
    /// A blob of the store, of this size.
    Blob(u64),
}

/// A temp file beside `out` for an archive that is renamed into place once complete; mode
/// 0666 less the umask, as any file the user creates.
pub(crate) fn archive_temp_beside(out: &Path) -> Result<tempfile::NamedTempFile, StoreError> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".seal-save-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| StoreError::io("creating the archive", dir, e))
}

fn header(path: &str, kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    let _ = h.set_path(path);
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: Option<&[u8]>,
) -> io::Result<()> {
    let mut h = match bytes {
        Some(b) => {
            let mut h = header(path, tar::EntryType::Regular, 0o644);
            h.set_size(b.len() as u64);
            h
        }
        None => header(path, tar::EntryType::Directory, 0o755),
    };
    h.set_cksum();
    tar.append(&h, bytes.unwrap_or_default())
}
