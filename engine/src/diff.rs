//! Turning an overlay upper directory into the entries of a layer.
//!
//! overlayfs records a deletion as a 0/0 character device and a replaced directory as an
//! opaque directory (`trusted.overlay.opaque=y`); the OCI layer format spells them
//! `.wh.<name>` and `<dir>/.wh..wh..opq`. Everything else is copied as it is, owner and mode
//! kept.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::context::hash_file;
use crate::layer::{LayerEntry, LayerEntryKind};
use crate::unpack::{OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::EngineError;

/// The layer entries of the changes recorded in `upper`, sorted by path. `warn` hears of what
/// a layer cannot hold, by rootfs path.
pub fn upper_to_entries(
    upper: &Path,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<LayerEntry>, EngineError> {
    let mut out = Vec::new();
    walk(upper, "", &mut out, warn)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(
    root: &Path,
    rel: &str,
    out: &mut Vec<LayerEntry>,
    warn: &mut dyn FnMut(String),
) -> Result<(), EngineError> {
    let dir = root.join(rel);
    let mut names: Vec<String> = Vec::new();
    for entry in fs::read_dir(&dir).map_err(|e| EngineError::io("listing", &dir, e))? {
        let entry = entry.map_err(|e| EngineError::io("listing", &dir, e))?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| EngineError::NonUtf8Path { path: entry.path() })?;
        names.push(name);
    }
    names.sort();
    for name in names {
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
            });
        } else if ft.is_dir() {
            out.push(LayerEntry {
                path: path.clone(),
                kind: LayerEntryKind::Dir,
                mode,
                uid,
                gid,
            });
            if is_opaque(&host) {
                out.push(LayerEntry {
                    path: format!("{path}/{WHITEOUT_OPAQUE}"),
                    kind: LayerEntryKind::Bytes(Vec::new()),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                });
            }
            walk(root, &path, out, warn)?;
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
            });
        } else if ft.is_file() {
            let size = meta.len();
            let blake3 = hash_file(&host, size)?;
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
            });
        } else {
            warn(format!(
                "not recording `{path}`: sockets, fifos and devices created by RUN are dropped"
            ));
        }
    }
    Ok(())
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OVERLAY_OPAQUE_XATTR, &mut buf), Ok(n) if &buf[..n] == b"y")
}
