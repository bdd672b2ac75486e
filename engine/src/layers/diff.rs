//! Turning an overlay upper directory into the entries of a layer.
//!
//! overlayfs records a deletion as a 0/0 character device and a replaced directory as an
//! opaque directory (`trusted.overlay.opaque=y`); the OCI layer format spells them
//! `.wh.<name>` and `<dir>/.wh..wh..opq`. Everything else is copied as it is: owner, mode
//! (setuid, setgid, sticky), the extended attributes a layer keeps ([`crate::xattrs`]; overlay's
//! own `trusted.overlay.*` bookkeeping never leaves the upper dir), device nodes and fifos. Names
//! of one inode (hardlinks the step made) become one file and hardlink entries to it, the first
//! name in path order holding the bytes.
//!
//! This reads the upper dir as overlayfs writes it with `redirect_dir=off,metacopy=off`
//! (the executor's mount options): every changed file is a full copy and a renamed directory a
//! full directory, so the upper dir alone says what changed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::layer::{LayerEntry, LayerEntryKind, NodeKind};
use crate::layers::file_hash::hash_file;
use crate::unpack::{OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::xattrs;
use crate::EngineError;

/// The layer entries of the changes recorded in `upper`, sorted by path. `warn` hears of what
/// a layer cannot hold, by rootfs path.
pub fn upper_to_entries(
    upper: &Path,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<LayerEntry>, EngineError> {
    let mut out = Vec::new();
    let mut inodes = BTreeMap::new();
    walk(upper, "", &mut out, &mut inodes, warn)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    link_names_of_one_inode(&mut out, &inodes);
    Ok(out)
}

/// Every file after the first (in path order) of an inode with several names (`inodes`: path
/// -> (dev, inode) of each such file) becomes a hardlink to the first.
fn link_names_of_one_inode(entries: &mut [LayerEntry], inodes: &BTreeMap<String, (u64, u64)>) {
    if inodes.is_empty() {
        return;
    }
    let mut first: BTreeMap<(u64, u64), LayerEntryKind> = BTreeMap::new();
    for entry in entries.iter_mut() {
        let Some(inode) = inodes.get(&entry.path) else {
            continue;
        };
        let LayerEntryKind::File {
            source,
            size,
            blake3,
        } = &entry.kind
        else {
            continue;
        };
        match first.get(inode) {
            Some(target) => entry.kind = target.clone(),
            None => {
                let link = LayerEntryKind::Hardlink {
                    target: entry.path.clone(),
                    source: source.clone(),
                    size: *size,
                    blake3: *blake3,
                };
                first.insert(*inode, link);
            }
        }
    }
}

fn walk(
    root: &Path,
    rel: &str,
    out: &mut Vec<LayerEntry>,
    inodes: &mut BTreeMap<String, (u64, u64)>,
    warn: &mut dyn FnMut(String),
) -> Result<(), EngineError> {
    let dir = root.join(rel);
    for name in sorted_names(&dir)? {
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let host = root.join(&path);
        let meta = fs::symlink_metadata(&host)
            .map_err(|e| EngineError::io("reading the metadata of", &host, e))?;
        let ft = meta.file_type();
        let (uid, gid, mode) = (meta.uid(), meta.gid(), meta.mode() & 0o7777);
        if ft.is_char_device() && meta.rdev() == 0 {
            let whiteout = match path.rsplit_once('/') {
                Some((parent, base)) => format!("{parent}/{WHITEOUT_PREFIX}{base}"),
                None => format!("{WHITEOUT_PREFIX}{name}"),
            };
            out.push(LayerEntry {
                path: whiteout,
                kind: LayerEntryKind::Bytes(Vec::new()),
                mode: 0o644,
                uid: 0,
                gid: 0,
                xattrs: Default::default(),
            });
        } else if ft.is_dir() {
            out.push(LayerEntry {
                path: path.clone(),
                kind: LayerEntryKind::Dir,
                mode,
                uid,
                gid,
                xattrs: xattrs::read(&host)?,
            });
            if is_opaque(&host) {
                out.push(LayerEntry {
                    path: format!("{path}/{WHITEOUT_OPAQUE}"),
                    kind: LayerEntryKind::Bytes(Vec::new()),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    xattrs: Default::default(),
                });
            }
            walk(root, &path, out, inodes, warn)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&host)
                .map_err(|e| EngineError::io("reading the symlink", &host, e))?;
            let target = target
                .into_os_string()
                .into_string()
                .map_err(|_| EngineError::NonUtf8Path { path: host.clone() })?;
            out.push(LayerEntry {
                path,
                kind: LayerEntryKind::Symlink { target },
                mode: 0o777,
                uid,
                gid,
                xattrs: xattrs::read(&host)?,
            });
        } else if ft.is_file() {
            let size = meta.len();
            let blake3 = hash_file(&host, size)?;
            if meta.nlink() > 1 {
                inodes.insert(path.clone(), (meta.dev(), meta.ino()));
            }
            let xattrs = xattrs::read(&host)?;
            out.push(LayerEntry {
                path,
                kind: LayerEntryKind::File {
                    source: host,
                    size,
                    blake3,
                },
                mode,
                uid,
                gid,
                xattrs,
            });
        } else if ft.is_socket() {
            warn(format!(
                "not recording `{path}`: a socket is not part of a filesystem image"
            ));
        } else {
            let kind = if ft.is_char_device() {
                NodeKind::Char
            } else if ft.is_block_device() {
                NodeKind::Block
            } else {
                NodeKind::Fifo
            };
            let rdev = meta.rdev() as rustix::fs::Dev;
            out.push(LayerEntry {
                path,
                kind: LayerEntryKind::Node {
                    kind,
                    major: rustix::fs::major(rdev),
                    minor: rustix::fs::minor(rdev),
                },
                mode,
                uid,
                gid,
                xattrs: xattrs::read(&host)?,
            });
        }
    }
    Ok(())
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OVERLAY_OPAQUE_XATTR, &mut buf), Ok(n) if &buf[..n] == b"y")
}

/// The names in `dir`, sorted (a non-UTF-8 name is an error naming its path).
pub(crate) fn sorted_names(dir: &Path) -> Result<Vec<String>, EngineError> {
    let mut names: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| EngineError::io("listing", dir, e))? {
        let entry = entry.map_err(|e| EngineError::io("listing", dir, e))?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| EngineError::NonUtf8Path { path: entry.path() })?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::sync::atomic::AtomicBool;

    use seal_store::Store;

    use super::*;
    use crate::layer::write_layer;
    use crate::llb::{Compression, LayerFormat};
    use crate::unpack::{unpack, UnpackOptions};

    /// `setcap cap_net_raw+ep`: the kernel checks a capability value's layout.
    const CAP_NET_RAW_EP: &[u8] = &[
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    fn set(path: &Path, name: &str, value: &[u8]) {
        rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
    }

    /// A tar member as `path type mode uid:gid [-> link] [xattr=value...]`.
    fn describe(entry: &mut tar::Entry<'_, impl Read>) -> String {
        let h = entry.header().clone();
        let mut line = format!(
            "{} {:?} {:o} {}:{}",
            entry.path().unwrap().display(),
            h.entry_type(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap()
        );
        if let Some(link) = entry.link_name().unwrap() {
            line.push_str(&format!(" -> {}", link.display()));
        }
        for (name, value) in xattrs::from_pax(entry).unwrap() {
            line.push_str(&format!(" {name}={}", String::from_utf8_lossy(&value)));
        }
        line
    }

    /// Issue 11: what a RUN leaves in its upper dir — a setuid file, a file capability and
    /// `user.*` xattrs, a second name of one inode, a setgid directory, a fifo — goes into
    /// the layer (PAX xattrs, a hardlink entry, not two copies), overlay's own xattrs do not,
    /// and unpacking the layer gives the same tree back.
    #[test]
    fn a_run_diff_keeps_modes_xattrs_hardlinks_and_nodes_round_trip() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let upper = tmp.path().join("upper");
        fs::create_dir_all(upper.join("bin")).unwrap();
        fs::create_dir(upper.join("share")).unwrap();
        let tool = upper.join("bin/tool");
        fs::write(&tool, b"tool").unwrap();
        std::os::unix::fs::chown(&tool, Some(1000), Some(42)).unwrap();
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o4750)).unwrap();
        set(&tool, "security.capability", CAP_NET_RAW_EP);
        set(&tool, "user.k", b"v");
        set(&tool, "trusted.overlay.origin", b"lower-handle");
        fs::hard_link(&tool, upper.join("bin/alias")).unwrap();
        fs::hard_link(&tool, upper.join("a-first")).unwrap();
        fs::set_permissions(upper.join("share"), fs::Permissions::from_mode(0o3775)).unwrap();
        set(&upper.join("share"), "trusted.overlay.impure", b"y");
        set(&upper.join("share"), "user.d", b"dir");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("share/pipe"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o640),
            0,
        )
        .unwrap();
        fs::set_permissions(upper.join("share/pipe"), fs::Permissions::from_mode(0o640)).unwrap();

        let entries = upper_to_entries(&upper, &mut |w| panic!("unexpected warning: {w}")).unwrap();
        let store = Store::open(&tmp.path().join("store"), &mut || {}).unwrap();
        let format = LayerFormat {
            compression: Compression::None,
            source_date_epoch: 0,
        };
        let layer = write_layer(store.blobs(), &entries, format, &AtomicBool::new(false)).unwrap();
        let again = write_layer(store.blobs(), &entries, format, &AtomicBool::new(false)).unwrap();
        assert_eq!(layer, again, "the same entries give the same bytes");

        let blob = store.blobs().path(&layer.digest);
        let mut archive = tar::Archive::new(fs::File::open(&blob).unwrap());
        let listing: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| describe(&mut e.unwrap()))
            .collect();
        let xattrs = format!(
            "security.capability={} user.k=v",
            String::from_utf8_lossy(CAP_NET_RAW_EP)
        );
        assert_eq!(
            listing,
            [
                format!("a-first Regular 4750 1000:42 {xattrs}"),
                "bin/ Directory 755 0:0".to_string(),
                format!("bin/alias Link 4750 1000:42 -> a-first {xattrs}"),
                format!("bin/tool Link 4750 1000:42 -> a-first {xattrs}"),
                "share/ Directory 3775 0:0 user.d=dir".to_string(),
                "share/pipe Fifo 640 0:0".to_string(),
            ]
        );

        let back = tmp.path().join("back");
        fs::create_dir(&back).unwrap();
        let options = UnpackOptions {
            privileged: true,
            apply_whiteouts: false,
        };
        unpack(fs::File::open(&blob).unwrap(), &back, &options).unwrap();
        let meta = |rel: &str| fs::symlink_metadata(back.join(rel)).unwrap();
        for name in ["bin/tool", "bin/alias"] {
            assert_eq!(meta(name).ino(), meta("a-first").ino(), "{name}");
        }
        assert_eq!(meta("a-first").nlink(), 3);
        assert_eq!(meta("a-first").mode() & 0o7777, 0o4750);
        assert_eq!((meta("a-first").uid(), meta("a-first").gid()), (1000, 42));
        assert_eq!(meta("share").mode() & 0o7777, 0o3775);
        assert!(meta("share/pipe").file_type().is_fifo());
        let mut expected = xattrs::Xattrs::new();
        expected.insert("security.capability".into(), CAP_NET_RAW_EP.to_vec());
        expected.insert("user.k".into(), b"v".to_vec());
        assert_eq!(xattrs::read(&back.join("bin/tool")).unwrap(), expected);
        assert_eq!(
            upper_to_entries(&back, &mut |w| panic!("unexpected warning: {w}")).unwrap(),
            {
                // The unpacked tree diffs to the same entries, bar the host paths of the bytes.
                let mut e = entries.clone();
                for entry in &mut e {
                    if let LayerEntryKind::File { source, .. }
                    | LayerEntryKind::Hardlink { source, .. } = &mut entry.kind
                    {
                        *source = back.join(source.strip_prefix(&upper).unwrap());
                    }
                }
                e
            }
        );
    }
}
