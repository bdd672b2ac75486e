//! Unpacking layer blobs into snapshot directories, safely.
//!
//! A layer is unpacked once per store, keyed by its diffID, into `snapshots/<diffid>/` in
//! overlayfs' format: an OCI whiteout `.wh.<name>` becomes a 0/0 character device and
//! `.wh..wh..opq` becomes the `trusted.overlay.opaque` xattr, so a stack of snapshots can be
//! mounted as overlay lowerdirs directly. Entries that could escape the snapshot are refused:
//! `..` components, absolute paths, paths through a symlink, hardlinks to outside, and device
//! nodes when not root. The layer is unpacked into a temp directory and renamed into place, so
//! a failure leaves nothing half-written.
//!
//! Everything else an entry says is kept, in the one order that keeps it: owner first (`chown`
//! clears setuid, setgid and `security.capability`), then the mode (setuid, setgid and sticky
//! included), then the extended attributes of its PAX `SCHILY.xattr.*` records
//! ([`crate::xattrs`]: `user.*`, `security.capability`, `trusted.*`; never overlay's own).
//! Directory modes are set last, deepest first, so a read-only directory does not block its own
//! entries. A hardlink entry becomes a hardlink and changes nothing of the inode it shares: its
//! mode, owner and xattrs are its target's (GNU tar's rule; a consistent tar says the same in
//! both headers). Without root, owners, `trusted.*` and `security.capability` are skipped.

use std::fs;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use seal_store::oci::{MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD};
use seal_store::{Digest, Store};

use crate::layer::Layer;
use crate::layers::objects::{FileMeta, ObjectPlacer};
use crate::xattrs::{self, ApplyOptions};
use crate::EngineError;

pub use seal_llb::collected::{WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
/// The name prefix of a snapshot being unpacked (renamed to its diffID when complete).
pub const STAGING_PREFIX: &str = ".unpack-";
/// The overlayfs xattr that marks an opaque directory.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// The snapshot directory of `layer`, unpacking it first if needed.
pub fn snapshot(store: &Store, layer: &Layer) -> Result<PathBuf, EngineError> {
    let dir = snapshot_path(store, &layer.diff_id);
    // The step that wrote the layer may still be making its snapshot.
    crate::layers::snapshot_tee::wait_for(&dir);
    if dir.is_dir() {
        return Ok(dir);
    }
    let _span = unpack_span(layer);
    let parent = store.root().join("snapshots");
    fs::create_dir_all(&parent).map_err(|e| EngineError::io("creating", &parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(&parent)
        .map_err(|e| EngineError::io("creating a snapshot in", &parent, e))?;
    let options = UnpackOptions::for_current_user();
    // Without root an object could not carry the owner its key names: plain files then.
    let mut objects = options.privileged.then(|| ObjectPlacer::new(store.root()));
    unpack_into(
        layer_tar(store, layer)?,
        tmp.path(),
        &options,
        objects.as_mut(),
    )?;
    let staged = tmp.keep();
    match fs::rename(&staged, &dir) {
        Ok(()) => Ok(dir),
        // Another build unpacked the same layer first: keep theirs.
        Err(_) if dir.is_dir() => {
            let _ = fs::remove_dir_all(&staged);
            Ok(dir)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staged);
            Err(EngineError::io("renaming a snapshot into place", &dir, e))
        }
    }
}

/// The trace slice of making a layer's snapshot (directory or image) from its blob.
pub(crate) fn unpack_span(layer: &Layer) -> tracing::span::EnteredSpan {
    tracing::info_span!(
        target: "seal_trace",
        "unpack",
        layer = %layer.digest,
        bytes = layer.size
    )
    .entered()
}

/// The uncompressed tar of a stored layer. A cache import's layer is downloaded only now,
/// when its bytes are needed.
pub fn layer_tar<'a>(store: &Store, layer: &Layer) -> Result<Box<dyn Read + 'a>, EngineError> {
    store.ensure_local(&layer.digest)?;
    decompress(store.blobs().open(&layer.digest)?, &layer.media_type)
}

/// Where the snapshot of a layer lives.
pub fn snapshot_path(store: &Store, diff_id: &Digest) -> PathBuf {
    store.root().join("snapshots").join(diff_id.hex())
}

/// A reader of the uncompressed tar of a blob with this media type.
pub fn decompress<'a>(blob: fs::File, media_type: &str) -> Result<Box<dyn Read + 'a>, EngineError> {
    let reader = BufReader::with_capacity(1 << 20, blob);
    Ok(
        if media_type == MEDIA_TYPE_LAYER_ZSTD || media_type.ends_with("+zstd") {
            Box::new(
                zstd::stream::read::Decoder::new(reader)
                    .map_err(|e| EngineError::io("decompressing", Path::new("<layer>"), e))?,
            )
        } else if media_type == MEDIA_TYPE_LAYER_GZIP || media_type.ends_with("gzip") {
            Box::new(flate2::read::GzDecoder::new(reader))
        } else {
            Box::new(reader)
        },
    )
}

/// What an unpack may create.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Device nodes and ownership need root.
    pub privileged: bool,
    /// Apply whiteouts (delete what they hide) instead of recording them in overlay format;
    /// for flattening a whole chain into one directory.
    pub apply_whiteouts: bool,
}

impl UnpackOptions {
    /// Overlay-format snapshots, privileged when running as root.
    pub fn for_current_user() -> UnpackOptions {
        UnpackOptions {
            privileged: rustix::process::geteuid().is_root(),
            apply_whiteouts: false,
        }
    }
}

/// Unpack every layer of `layers` (bottom to top) into `dest`, applying whiteouts: the
/// merged rootfs as one plain directory tree.
pub fn flatten(
    store: &seal_store::Store,
    layers: &[Layer],
    dest: &Path,
) -> Result<(), EngineError> {
    let options = UnpackOptions {
        apply_whiteouts: true,
        ..UnpackOptions::for_current_user()
    };
    for layer in layers {
        unpack(layer_tar(store, layer)?, dest, &options)?;
    }
    Ok(())
}

/// Unpack the tar stream `reader` into the existing directory `dest`.
pub fn unpack(reader: impl Read, dest: &Path, options: &UnpackOptions) -> Result<(), EngineError> {
    unpack_into(reader, dest, options, None)
}

/// [`unpack`], with regular files as links to the store's objects when `objects` is given.
pub(crate) fn unpack_into(
    reader: impl Read,
    dest: &Path,
    options: &UnpackOptions,
    mut objects: Option<&mut ObjectPlacer>,
) -> Result<(), EngineError> {
    let mut archive = tar::Archive::new(reader);
    let bad = |path: &str, reason: &str| EngineError::UnsafeLayer {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let entries = archive
        .entries()
        .map_err(|e| EngineError::io("reading a layer", dest, e))?;
    // Directory entries' modes by path (a later entry for the same path wins).
    let mut dirs = std::collections::BTreeMap::new();
    // Paths this layer wrote: its own whiteouts and opaque markers never hide them.
    let mut written: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    // Parent directories already checked to be directories and no symlinks, so the next entry
    // in the same directory costs no `lstat` per path component and no `mkdir` that fails with
    // EEXIST (issue 15's profile: 41k `statx` and 5k failing `mkdir` for 5k files). Anything
    // removed or replaced empties it.
    let mut known_dirs: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| EngineError::io("reading a layer", dest, e))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = safe_relative(&raw)
            .ok_or_else(|| bad(&raw, "the path is absolute or leaves the layer with `..`"))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = dest.join(parent_rel);
        if !known_dirs.contains(parent_rel) {
            ensure_no_symlink_in(dest, parent_rel)
                .map_err(|_| bad(&raw, "the path goes through a symlink"))?;
            fs::create_dir_all(&parent).map_err(|e| EngineError::io("creating", &parent, e))?;
            known_dirs.insert(parent_rel.to_path_buf());
        }
        if name == WHITEOUT_OPAQUE {
            if options.apply_whiteouts {
                if let Ok(children) = fs::read_dir(&parent) {
                    for child in children.flatten() {
                        if !written.contains(&child.path()) && remove_any(&child.path()) {
                            known_dirs.clear();
                        }
                    }
                }
            } else {
                set_opaque(&parent, options)?;
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            // `.wh.`, `.wh..`, `.wh...` would hide `parent/`, `parent/.`, `parent/..`.
            if matches!(hidden, "" | "." | "..") {
                return Err(bad(&raw, "a whiteout that names no entry"));
            }
            let target = parent.join(hidden);
            if written.contains(&target) {
                continue;
            }
            if remove_any(&target) {
                known_dirs.clear();
            }
            if options.apply_whiteouts {
                continue;
            }
            if options.privileged {
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &target,
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::empty(),
                    0,
                )
                .map_err(|e| EngineError::io("creating a whiteout", &target, e.into()))?;
            }
            continue;
        }
        let target = dest.join(&rel);
        written.insert(target.clone());
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let kind = header.entry_type();
        let io_err = |e: io::Error| EngineError::io("unpacking", &target, e);
        let wanted_xattrs = xattrs::from_pax(&mut entry).map_err(io_err)?;
        if !kind.is_dir() && remove_any(&target) {
            known_dirs.clear();
        }
        let mut existed = false;
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => existed = true,
                    Ok(_) => {
                        remove_any(&target);
                        known_dirs.clear();
                    }
                    Err(_) => {}
                }
                fs::create_dir_all(&target).map_err(io_err)?;
                dirs.insert(rel.clone(), mode);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous if objects.is_some() => {
                let size = entry.size();
                let meta = FileMeta {
                    mode,
                    uid: header.uid().unwrap_or(0) as u32,
                    gid: header.gid().unwrap_or(0) as u32,
                    xattrs: &wanted_xattrs,
                };
                if let Some(objects) = objects.as_deref_mut() {
                    objects
                        .place(&mut entry, size, &target, &rel, &meta)
                        .map_err(io_err)?;
                }
                // Owner, mode and xattrs are the object's.
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut file = fs::File::create(&target).map_err(io_err)?;
                io::copy(&mut entry, &mut file).map_err(io_err)?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(io_err)?
                    .ok_or_else(|| bad(&raw, "a symlink without a target"))?;
                std::os::unix::fs::symlink(&*link, &target).map_err(io_err)?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(io_err)?
                    .ok_or_else(|| bad(&raw, "a hardlink without a target"))?;
                let link_rel = safe_relative(&link.to_string_lossy())
                    .ok_or_else(|| bad(&raw, "a hardlink to outside the layer"))?;
                ensure_no_symlink_in(dest, &link_rel)
                    .map_err(|_| bad(&raw, "a hardlink through a symlink"))?;
                fs::hard_link(dest.join(&link_rel), &target).map_err(io_err)?;
                // The inode is the target's, metadata and all.
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                if !options.privileged && kind != tar::EntryType::Fifo {
                    return Err(bad(&raw, "device nodes can only be unpacked as root"));
                }
                let file_type = match kind {
                    tar::EntryType::Char => rustix::fs::FileType::CharacterDevice,
                    tar::EntryType::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &target,
                    file_type,
                    rustix::fs::Mode::from_raw_mode(mode),
                    dev,
                )
                .map_err(|e| io_err(e.into()))?;
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => continue,
            other => return Err(bad(&raw, &format!("unsupported tar entry type {other:?}"))),
        }
        // Owner, then mode, then xattrs: each step would undo a part of the one before it.
        if options.privileged {
            let uid = header.uid().ok().map(|u| u as u32);
            let gid = header.gid().ok().map(|g| g as u32);
            lchown(&target, uid, gid).map_err(io_err)?;
        }
        let symlink = kind == tar::EntryType::Symlink;
        if !symlink && !kind.is_dir() {
            // The target is no symlink (just created), so this chmods the entry itself.
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io_err)?;
        }
        if !wanted_xattrs.is_empty() || existed {
            xattrs::apply(
                &target,
                &wanted_xattrs,
                ApplyOptions {
                    privileged: options.privileged,
                    symlink,
                    existed,
                },
            )?;
        }
    }
    // Directory modes last, so a read-only directory does not block its own entries.
    // Deepest first; a directory that a later entry replaced, or moved under a symlink, is
    // skipped: its mode must not land on whatever the symlink points at.
    for (rel, mode) in dirs.into_iter().rev() {
        let dir = dest.join(&rel);
        let still_a_dir = ensure_no_symlink_in(dest, &rel).is_ok()
            && fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
        if !still_a_dir {
            continue;
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(|e| EngineError::io("setting the mode of", &dir, e))?;
    }
    Ok(())
}

/// The path as a clean relative path, or `None` when it is absolute or leaves with `..`.
pub(crate) fn safe_relative(raw: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Err when any existing component of `rel` under `dest` is a symlink.
fn ensure_no_symlink_in(dest: &Path, rel: &Path) -> Result<(), ()> {
    let mut current = dest.to_path_buf();
    for component in rel.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => return Err(()),
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Remove whatever is at `path`; true when something was there.
fn remove_any(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
            true
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
            true
        }
        Err(_) => false,
    }
}

fn set_opaque(dir: &Path, options: &UnpackOptions) -> Result<(), EngineError> {
    if !options.privileged {
        return Ok(());
    }
    rustix::fs::lsetxattr(
        dir,
        OVERLAY_OPAQUE_XATTR,
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| EngineError::io("marking an opaque directory", dir, e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            // Write the raw name so hostile paths survive the builder's own checks.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn unpack_err(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> String {
        unpack_err_with(
            entries,
            &UnpackOptions {
                privileged: true,
                apply_whiteouts: false,
            },
        )
    }

    fn unpack_err_with(
        entries: &[(&str, tar::EntryType, &[u8], Option<&str>)],
        options: &UnpackOptions,
    ) -> String {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("snap");
        fs::create_dir(&dest).unwrap();
        let err = unpack(&tar_of(entries)[..], &dest, options).unwrap_err();
        // Nothing outside the snapshot directory was touched.
        let outside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(outside, ["snap"]);
        err.to_string()
    }

    #[test]
    fn hostile_entries_are_refused() {
        use tar::EntryType as T;
        assert!(unpack_err(&[("../evil", T::Regular, b"x", None)]).contains("leaves the layer"));
        assert!(unpack_err(&[("/abs", T::Regular, b"x", None)]).contains("absolute"));
        assert!(unpack_err(&[
            ("link", T::Symlink, b"", Some("..")),
            ("link/evil", T::Regular, b"x", None)
        ])
        .contains("symlink"));
        assert!(
            unpack_err(&[("hard", T::Link, b"", Some("../../etc/passwd"))]).contains("outside")
        );
    }

    /// Found by fuzzing (fuzz/fuzz_targets/layer_unpacker.rs): `.wh.`, `.wh..` and `.wh...`
    /// hide no entry but `<parent>/`, `<parent>/.` and `<parent>/..`, so the whiteout removed the
    /// snapshot itself or the directory above it.
    #[test]
    fn whiteouts_of_no_name_are_refused() {
        for name in [".wh.", ".wh..", ".wh...", "d/.wh...", "d/.wh."] {
            for (privileged, apply_whiteouts) in [(false, false), (false, true), (true, false)] {
                let options = UnpackOptions {
                    privileged,
                    apply_whiteouts,
                };
                let err = unpack_err_with(
                    &[
                        ("d/", tar::EntryType::Directory, b"", None),
                        (name, tar::EntryType::Regular, b"", None),
                    ],
                    &options,
                );
                assert!(err.contains("names no entry"), "{name} {options:?}: {err}");
            }
        }
    }

    /// A directory that a later entry replaced with a symlink must not get its mode through
    /// the symlink: `d/` then `d -> ..` chmodded the directory above the snapshot, and `a/`,
    /// `a/b/`, `a -> /x` would chmod `/x/b`.
    #[test]
    fn directory_modes_are_not_set_through_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        use tar::EntryType as T;
        for entries in [
            &[
                ("d/", T::Directory, &b""[..], None),
                ("d", T::Symlink, b"", Some("..")),
            ][..],
            &[
                ("a/", T::Directory, b"", None),
                ("a/snap/", T::Directory, b"", None),
                ("a", T::Symlink, b"", Some("..")),
            ],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("snap");
            fs::create_dir(&dest).unwrap();
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode();
            let before = (mode(dir.path()), mode(&dest));
            let _ = unpack(
                &tar_of(entries)[..],
                &dest,
                &UnpackOptions {
                    privileged: false,
                    apply_whiteouts: false,
                },
            );
            assert_eq!((mode(dir.path()), mode(&dest)), before, "{entries:?}");
        }
    }

    /// One entry of [`tar_with`]: path, type, mode, uid, link target, xattrs.
    type Spec<'a> = (
        &'a str,
        tar::EntryType,
        u32,
        u64,
        Option<&'a str>,
        &'a [(&'a str, &'a [u8])],
    );

    /// A tar whose entries carry owners, modes, link targets and PAX xattr records.
    fn tar_with(entries: &[Spec<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, mode, uid, link, xattrs) in entries {
            let records: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("{}{k}", xattrs::PAX_XATTR_PREFIX), *v))
                .collect();
            b.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_uid(*uid);
            h.set_gid(*uid);
            let data: &[u8] = if *kind == tar::EntryType::Regular {
                b"#!/bin/sh\n"
            } else {
                b""
            };
            h.set_size(data.len() as u64);
            match link {
                Some(l) => b.append_link(&mut h, path, l).unwrap(),
                None => b.append_data(&mut h, path, data).unwrap(),
            }
        }
        b.into_inner().unwrap()
    }

    fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 256];
        let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    /// Issue 11: `chmod 4755` then `lchown` lost the setuid bit, and chown clears
    /// `security.capability` too, so the order is owner, mode, xattrs. A hardlink entry shares
    /// its target's inode and changes none of its metadata; overlay's own xattrs from a layer
    /// are never set (a `redirect` would steer the next RUN's mount).
    #[test]
    fn owner_then_mode_then_xattrs_and_hardlinks_keep_the_inode() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        use tar::EntryType as T;
        if !UnpackOptions::for_current_user().privileged {
            return;
        }
        let cap: &[u8] = &[
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let tar = tar_with(&[
            ("bin/", T::Directory, 0o755, 0, None, &[]),
            ("bin/suid", T::Regular, 0o4755, 1000, None, &[]),
            ("bin/sgid", T::Regular, 0o2711, 1000, None, &[]),
            (
                "bin/ping",
                T::Regular,
                0o755,
                1000,
                None,
                &[("security.capability", cap), ("user.a", b"1")],
            ),
            ("bin/alias", T::Link, 0o644, 0, Some("bin/suid"), &[]),
            (
                "share/",
                T::Directory,
                0o2775,
                42,
                None,
                &[
                    ("user.d", b"dir"),
                    ("trusted.overlay.redirect", b"/etc"),
                    ("user.overlay.opaque", b"y"),
                ],
            ),
            ("drop/", T::Directory, 0o1777, 0, None, &[]),
            ("ro/", T::Directory, 0o555, 0, None, &[]),
            ("ro/f", T::Regular, 0o444, 7, None, &[]),
        ]);
        // Flattened, as a snapshot of plain files, and as a snapshot of links to objects.
        for (apply_whiteouts, with_objects) in [(true, false), (false, false), (false, true)] {
            let store = tempfile::tempdir().unwrap();
            let mut objects = ObjectPlacer::new(store.path());
            let dir = tempfile::tempdir().unwrap();
            let options = UnpackOptions {
                privileged: true,
                apply_whiteouts,
            };
            unpack_into(
                &tar[..],
                dir.path(),
                &options,
                with_objects.then_some(&mut objects),
            )
            .unwrap();
            let meta = |rel: &str| fs::symlink_metadata(dir.path().join(rel)).unwrap();
            let described = |rel: &str| {
                let m = meta(rel);
                format!(
                    "{:o} {}:{}",
                    m.permissions().mode() & 0o7777,
                    m.uid(),
                    m.gid()
                )
            };
            assert_eq!(described("bin/suid"), "4755 1000:1000");
            assert_eq!(described("bin/sgid"), "2711 1000:1000");
            assert_eq!(described("bin/alias"), "4755 1000:1000");
            assert_eq!(meta("bin/alias").ino(), meta("bin/suid").ino());
            // Two names, and the object's own when there is one.
            let names = if with_objects { 3 } else { 2 };
            assert_eq!(meta("bin/suid").nlink(), names);
            assert_eq!(described("share"), "2775 42:42");
            assert_eq!(described("drop"), "1777 0:0");
            assert_eq!(described("ro"), "555 0:0");
            assert_eq!(described("ro/f"), "444 7:7");
            // The same bytes under other metadata never share an inode (issue 15).
            let inodes: std::collections::BTreeSet<u64> =
                ["bin/suid", "bin/sgid", "bin/ping", "ro/f"]
                    .iter()
                    .map(|f| meta(f).ino())
                    .collect();
            assert_eq!(inodes.len(), 4);
            if with_objects {
                // Unpacked again (another layer with the same files): links, not copies.
                let again = tempfile::tempdir().unwrap();
                let mut objects = ObjectPlacer::new(store.path());
                unpack_into(&tar[..], again.path(), &options, Some(&mut objects)).unwrap();
                let ino = fs::symlink_metadata(again.path().join("ro/f"))
                    .unwrap()
                    .ino();
                assert_eq!(ino, meta("ro/f").ino());
            }
            let ping = dir.path().join("bin/ping");
            assert_eq!(
                get_xattr(&ping, "security.capability").as_deref(),
                Some(cap)
            );
            assert_eq!(get_xattr(&ping, "user.a").as_deref(), Some(&b"1"[..]));
            let share = dir.path().join("share");
            assert_eq!(get_xattr(&share, "user.d").as_deref(), Some(&b"dir"[..]));
            assert_eq!(get_xattr(&share, "trusted.overlay.redirect"), None);
            assert_eq!(get_xattr(&share, "user.overlay.opaque"), None);
        }
    }

    /// Without root, modes (setuid included) and `user.*` xattrs are kept; owners,
    /// `trusted.*` and capabilities cannot be and are skipped rather than failing the layer.
    #[test]
    fn unprivileged_unpack_keeps_modes_and_user_xattrs() {
        use std::os::unix::fs::PermissionsExt;
        use tar::EntryType as T;
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_with(&[(
            "f",
            T::Regular,
            0o4755,
            0,
            None,
            &[("user.a", b"1"), ("trusted.t", b"2")],
        )]);
        let options = UnpackOptions {
            privileged: false,
            apply_whiteouts: true,
        };
        unpack(&tar[..], dir.path(), &options).unwrap();
        let f = dir.path().join("f");
        let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o4755);
        assert_eq!(get_xattr(&f, "user.a").as_deref(), Some(&b"1"[..]));
        assert_eq!(get_xattr(&f, "trusted.t"), None);
    }

    #[test]
    fn whiteouts_become_overlay_markers() {
        use std::os::unix::fs::FileTypeExt;
        if !UnpackOptions::for_current_user().privileged {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            ("d/", tar::EntryType::Directory, b"", None),
            ("d/.wh..wh..opq", tar::EntryType::Regular, b"", None),
            (".wh.gone", tar::EntryType::Regular, b"", None),
            ("d/f", tar::EntryType::Regular, b"hi", None),
        ]);
        unpack(
            &tar[..],
            dir.path(),
            &UnpackOptions {
                privileged: true,
                apply_whiteouts: false,
            },
        )
        .unwrap();
        assert_eq!(fs::read(dir.path().join("d/f")).unwrap(), b"hi");
        let gone = fs::symlink_metadata(dir.path().join("gone")).unwrap();
        assert!(gone.file_type().is_char_device());
        let mut buf = [0u8; 4];
        let n =
            rustix::fs::lgetxattr(dir.path().join("d"), OVERLAY_OPAQUE_XATTR, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"y");
    }
}
