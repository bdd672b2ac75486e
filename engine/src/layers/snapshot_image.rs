//! A layer's snapshot as one file (issue 15): the EROFS image of the tree [`crate::unpack`]
//! would make (`layers/erofs.rs`), at `snapshots/<diffID>.erofs`, which a RUN mounts read-only
//! from the file (Linux ≥ 6.12). A 5,000-file layer costs one inode instead of 5,000, which on
//! a disk that recently freed many inodes is most of a cold RUN's time.
//!
//! An image is written as `snapshots/.unpack-*`, gets the blake3 of its bytes as the xattr
//! [`HASH_XATTR`] (what `seal fsck` checks it against) and is renamed into place only when
//! complete, read-only; the same rules as a snapshot directory's otherwise.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use seal_store::{Digest, Store};
use tempfile::NamedTempFile;

use crate::layer::Layer;
use crate::layers::erofs;
use crate::unpack::{layer_tar, unpack_span, STAGING_PREFIX};
use crate::EngineError;

/// The xattr holding the hex blake3 of an image's bytes.
pub use seal_store::SNAPSHOT_IMAGE_HASH_XATTR as HASH_XATTR;
/// What an image's file name ends with after its diffID.
pub use seal_store::SNAPSHOT_IMAGE_SUFFIX as IMAGE_SUFFIX;

/// A layer with fewer entries than this gets a snapshot directory even where images work: its
/// few inodes cost less, once, than mounting its image costs at every RUN over it (~0.2 ms
/// each on this machine: a RUN over 500 one-file layers took 130 ms as images, 40 ms as
/// directories).
pub const IMAGE_MIN_ENTRIES: usize = 32;

/// Blobs above this size are taken to hold [`IMAGE_MIN_ENTRIES`] entries without counting.
const COUNTED_BLOB_MAX: u64 = 1 << 20;

/// Whether `layer` is worth an image rather than a directory ([`IMAGE_MIN_ENTRIES`]): a small
/// blob's entries are counted, a big one is.
pub fn worth_an_image(store: &Store, layer: &Layer) -> Result<bool, EngineError> {
    if layer.size > COUNTED_BLOB_MAX {
        return Ok(true);
    }
    let mut archive = tar::Archive::new(layer_tar(store, layer)?);
    let entries = archive
        .entries()
        .map_err(|e| EngineError::io("reading a layer", Path::new("<layer>"), e))?;
    Ok(entries.take(IMAGE_MIN_ENTRIES).count() >= IMAGE_MIN_ENTRIES)
}

/// Where the image of a layer lives.
pub fn image_path(store: &Store, diff_id: &Digest) -> PathBuf {
    store
        .root()
        .join("snapshots")
        .join(format!("{}{IMAGE_SUFFIX}", diff_id.hex()))
}

/// The snapshot image of `layer`, writing it first if needed.
pub fn snapshot_image(store: &Store, layer: &Layer) -> Result<PathBuf, EngineError> {
    let path = image_path(store, &layer.diff_id);
    // The step that wrote the layer may still be writing its image.
    crate::layers::snapshot_tee::wait_for(&path);
    if path.is_file() {
        return Ok(path);
    }
    let _span = unpack_span(layer);
    let mut staged = stage(store)?;
    erofs::write_image(layer_tar(store, layer)?, staged.as_file_mut())?;
    place(staged, &path)?;
    Ok(path)
}

/// A new, empty staging file for an image in `snapshots/` (removed on drop).
pub fn stage(store: &Store) -> Result<NamedTempFile, EngineError> {
    let parent = store.root().join("snapshots");
    fs::create_dir_all(&parent).map_err(|e| EngineError::io("creating", &parent, e))?;
    tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempfile_in(&parent)
        .map_err(|e| EngineError::io("creating a snapshot image in", &parent, e))
}

/// Seal a complete image: its hash as [`HASH_XATTR`], read-only, renamed to `path` (unless
/// another build put one there first: theirs is kept, it has the same bytes).
pub fn place(staged: NamedTempFile, path: &Path) -> Result<(), EngineError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |what: &'static str| move |e| EngineError::io(what, path, e);
    let mut file = staged.as_file();
    let hash = hash_of(&mut file).map_err(io("hashing the snapshot image"))?;
    rustix::fs::fsetxattr(
        file,
        HASH_XATTR,
        hash.to_hex().as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| EngineError::io("marking the snapshot image", path, e.into()))?;
    file.set_permissions(fs::Permissions::from_mode(0o444))
        .map_err(io("making the snapshot image read-only"))?;
    match staged.persist_noclobber(path) {
        Ok(_) => Ok(()),
        Err(e) if path.is_file() => {
            drop(e); // another build's image: the staged one is removed
            Ok(())
        }
        Err(e) => Err(EngineError::io(
            "renaming a snapshot image into place",
            path,
            e.error,
        )),
    }
}

/// blake3 of the whole file, from its start.
fn hash_of(file: &mut &fs::File) -> std::io::Result<blake3::Hash> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored, uncompressed layer of `files` one-byte files.
    fn layer_of(store: &Store, files: usize) -> Layer {
        let mut tar = tar::Builder::new(Vec::new());
        for i in 0..files {
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_mode(0o644);
            tar.append_data(&mut header, format!("f{i}"), &b"x"[..])
                .unwrap();
        }
        let bytes = tar.into_inner().unwrap();
        let digest = store.blobs().put(&bytes).unwrap();
        Layer {
            diff_id: digest.clone(),
            digest,
            size: bytes.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            collect_free: false,
        }
    }

    #[test]
    fn only_a_layer_of_many_entries_is_worth_an_image() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), &mut || {}).unwrap();
        assert!(!worth_an_image(&store, &layer_of(&store, 3)).unwrap());
        assert!(!worth_an_image(&store, &layer_of(&store, IMAGE_MIN_ENTRIES - 1)).unwrap());
        assert!(worth_an_image(&store, &layer_of(&store, IMAGE_MIN_ENTRIES)).unwrap());
        let mut big = layer_of(&store, 1);
        big.size = COUNTED_BLOB_MAX + 1;
        assert!(worth_an_image(&store, &big).unwrap(), "not counted");
    }
}
