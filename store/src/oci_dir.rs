//! Writing an image out as an OCI image layout directory (`seal save --format oci-dir`).
//!
//! The layout is written to a temp directory beside the target and renamed into place, so an
//! interrupted save leaves no half-written layout. The target must not exist or be an empty
//! directory. Every blob is verified against its digest while it is copied out of the store.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use crate::load::{HashSink, ANNOTATION_CONTAINERD_NAME};
use crate::oci::{
    to_canonical_json, Descriptor, Index, ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
};
use crate::registry::Platform;
use crate::{Digest, Reference, Store, StoreError};

/// The `oci-layout` file.
pub(crate) const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The `index.json` of a layout holding one image named `name` (the same annotations as
/// `seal save`'s OCI archive: the tag as `ref.name`, the whole name for containerd).
pub(crate) fn layout_index(
    name: &Reference,
    manifest: &Digest,
    size: u64,
    media_type: &str,
) -> Vec<u8> {
    let mut annotations = BTreeMap::new();
    annotations.insert(
        ANNOTATION_REF_NAME.to_string(),
        name.tag_or_latest().to_string(),
    );
    annotations.insert(ANNOTATION_CONTAINERD_NAME.to_string(), name.to_string());
    let media_type = if media_type.is_empty() {
        MEDIA_TYPE_MANIFEST
    } else {
        media_type
    };
    to_canonical_json(&Index {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.into()),
        manifests: vec![Descriptor {
            media_type: media_type.into(),
            digest: manifest.clone(),
            size,
            annotations,
            platform: None,
        }],
    })
}

impl Store {
    /// Write image `name` (for `platforms`; empty: all it has) as an OCI image layout
    /// directory at `out`.
    pub fn save_oci_dir(
        &self,
        name: &Reference,
        platforms: &[Platform],
        out: &Path,
    ) -> Result<(), StoreError> {
        match fs::symlink_metadata(out) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("checking", out, e)),
            Ok(m) => {
                let empty_dir = m.is_dir()
                    && fs::read_dir(out)
                        .map_err(|e| StoreError::io("reading", out, e))?
                        .next()
                        .is_none();
                if !empty_dir {
                    return Err(StoreError::io(
                        "writing the layout",
                        out,
                        io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            "it exists and is not an empty directory",
                        ),
                    ));
                }
            }
        }
        let saved = self.saved_image(name, platforms)?;
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".seal-save-")
            .tempdir_in(parent)
            .map_err(|e| StoreError::io("creating the layout", parent, e))?;
        let io_err = |e: io::Error| StoreError::io("writing the layout", out, e);
        let blobs_dir = tmp.path().join("blobs").join("sha256");
        fs::create_dir_all(&blobs_dir).map_err(io_err)?;
        let mut blobs: Vec<&Descriptor> = Vec::new();
        for (_, _, manifest) in &saved.manifests {
            blobs.extend(manifest.layers.iter());
            blobs.push(&manifest.config);
        }
        blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
        blobs.dedup_by(|a, b| a.digest == b.digest);
        for desc in blobs {
            self.copy_blob_out(&desc.digest, &blobs_dir.join(desc.digest.hex()))?;
        }
        for (digest, bytes, _) in &saved.manifests {
            write_file(&blobs_dir.join(digest.hex()), bytes).map_err(io_err)?;
        }
        write_file(&blobs_dir.join(saved.top.hex()), &saved.top_bytes).map_err(io_err)?;
        let index = layout_index(
            name,
            &saved.top,
            saved.top_bytes.len() as u64,
            &saved.top_media_type,
        );
        write_file(&tmp.path().join("index.json"), &index).map_err(io_err)?;
        write_file(&tmp.path().join("oci-layout"), OCI_LAYOUT).map_err(io_err)?;
        // Directories keep the modes the umask gave them, as the files do.
        for dir in [
            tmp.path().to_path_buf(),
            tmp.path().join("blobs"),
            blobs_dir,
        ] {
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err)?;
        }
        fs::rename(tmp.path(), out)
            .map_err(|e| StoreError::io("renaming the layout into place", out, e))?;
        let _ = tmp.keep();
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Copy a blob out of the store to `dest`, verifying its digest on the way.
    fn copy_blob_out(&self, digest: &Digest, dest: &Path) -> Result<(), StoreError> {
        let mut src = self.blobs().open(digest)?;
        let mut file = File::create(dest).map_err(|e| StoreError::io("creating", dest, e))?;
        let mut hash = HashSink(Sha256::new());
        let mut tee = TeeWriter {
            a: &mut file,
            b: &mut hash,
        };
        io::copy(&mut src, &mut tee).map_err(|e| StoreError::io("copying a blob to", dest, e))?;
        let actual = Digest::from_sha256(hash.0.finalize().into());
        if &actual != digest {
            return Err(StoreError::CorruptBlob {
                expected: digest.clone(),
                actual,
            });
        }
        finish_file(&file).map_err(|e| StoreError::io("syncing", dest, e))
    }
}

/// Write a whole file, synced, mtime 0.
fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    finish_file(&file)
}

fn finish_file(file: &File) -> io::Result<()> {
    file.set_modified(SystemTime::UNIX_EPOCH)?;
    file.sync_all()
}

/// Writes to both.
struct TeeWriter<'a, A, B> {
    a: &'a mut A,
    b: &'a mut B,
}

impl<A: Write, B: Write> Write for TeeWriter<'_, A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.a.write(buf)?;
        self.b.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.a.flush()
    }
}
